#!/usr/bin/env bash
# Everything measured on a lent GPU machine, in one call (see BENCHMARKS.md, section GPU).
# The machine has no network: the wheels of what its python lacks travel in .whl/ and
# the Fashion-MNIST files in .data/ (both git-ignored), filled here beforehand:
#   pip download -d .whl --only-binary=:all: --python-version 3.12 \
#       --platform manylinux2014_x86_64 optuna sqlalchemy alembic colorlog greenlet \
#       optuna-dashboard bottle plotly
#   mkdir -p .data && cp -r /usr/share/datasets/fashion-mnist .data/
# Results go to $OUT (or ./gpu-results). TOTAL_SECONDS (default 480) bounds the whole run,
# so that a device call's limit is not reached before $OUT is sent back: each step gets what
# is left (at most STEP_SECONDS), and a step with under 30 s left is skipped, named.
#   STEPS="graph packing" TOTAL_SECONDS=300 bash benchmarks/gpu_run.sh   # a rerun of two
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-results}
mkdir -p "$out"
deadline=$((SECONDS + ${TOTAL_SECONDS:-480}))
if ! python3 -c "import optuna, sqlalchemy, optuna_dashboard" 2>/dev/null; then
    python3 -m pip install -q --no-index --find-links .whl optuna sqlalchemy optuna-dashboard \
        >"$out/pip.txt" 2>&1 || { tail "$out/pip.txt"; exit 1; }
fi
export PYTHONPATH=$PWD HPO_DATA=$PWD/.data
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
step() {  # step NAME COMMAND...: run within the time left, keep the output, show its tail
    local name=$1; shift
    local left=$((deadline - SECONDS)) cap=${STEP_SECONDS:-540}
    if [ "$left" -lt 30 ]; then
        echo "== $name: skipped, ${left} s left of TOTAL_SECONDS" | tee "$out/$name.txt"
        return
    fi
    [ "$left" -lt "$cap" ] && cap=$left
    echo "== $name: $* (at most $cap s)"
    timeout "$cap" "$@" >"$out/$name.txt" 2>&1
    echo "   exit $?"; tail -n "${TAIL:-25}" "$out/$name.txt"
}
for s in ${STEPS:-tests speed graph fused packing}; do
    case $s in
        tests) step tests python3 -m pytest -q -p no:cacheprovider -m gpu tests ;;
        speed) step speed python3 benchmarks/train_speed.py --device cuda ${SPEED_ARGS:-} ;;
        graph) step graph python3 benchmarks/train_speed.py --device cuda --graph \
            ${GRAPH_ARGS:---repeats 3} ;;
        fused) step fused python3 benchmarks/fused_speed.py --device cuda \
            ${FUSED_ARGS:---max-train 12000 --epochs 1 --repeats 3} ;;
        packing) step packing python3 benchmarks/gpu_packing.py ${PACKING_ARGS:-} ;;
    esac
done
