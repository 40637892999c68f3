#!/usr/bin/env bash
# Rerun every benchmark that runs on a CPU, one after another, keeping each one's output.
#
#   bash benchmarks/run_all.sh           # the sizes BENCHMARKS.md quotes (~20 min idle, 2 cores)
#   bash benchmarks/run_all.sh --quick   # every script once at a small size (a few minutes):
#                                        # proves they run; its numbers are not figures
#
# Full runs write benchmarks/results/NAME.txt (the raw output BENCHMARKS.md cites); quick
# runs write to a temporary folder (printed), so they never replace a committed figure.
# Not here: startup.py (needs --before, a second source tree: see BENCHMARKS.md §9),
# slurm_latency.py (needs the Slurm kit of tests/hpo/runtime/kit.py) and the GPU runs
# (benchmarks/gpu_run.sh on a GPU machine). PostgreSQL must answer at 127.0.0.1:5432.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
case "${1:-}" in
--quick) quick=1 ;;
"") ;;
*)
    echo "usage: bash benchmarks/run_all.sh [--quick]" >&2
    exit 2
    ;;
esac
if [ "$quick" = 1 ]; then
    out=$(mktemp -d -t hpo-bench-quick-XXXX)
else
    out=benchmarks/results
fi
mkdir -p "$out"
echo "== commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%FT%TZ), output in $out"
run() {
    local name=$1
    shift
    echo "== $name $* ($(uptime))"
    python3 "benchmarks/$name.py" "$@" 2>&1 | tee "$out/$name.txt"
}
if [ "$quick" = 1 ]; then
    run train_speed --repeats 1 --epochs 1
    run overhead --trials 2 --epochs 1 --repeats 1 --skip-instrumented
    run scaling --workers 1,2 --zero-trials 20 --sleep-trials-per-worker 1
    run sampler_cost --sizes 20 --repeats 2 --samplers random,tpe
    run storage_profile --backends sqlite,postgresql --sizes 60 --full-max 60 --window 10 \
        --profiled 5 --profile-sizes 0 --variants hpo,optuna,optuna-hpo-storage
    run keep_cost --trials 8 --window 4 --repeats 1
    run load_postgres --workers 2 --trials 20
    run connections --workers 2 --trials 4 --epochs 1
    run proxy_fleet --workers 4 --trials 40 --baseline-workers 2
    run own_model --trials 2 --rounds 1
    run data_cache --quick
    run cnn_head --quick
    run replay_speed --quick
else
    run train_speed --repeats 7 --epochs 2
    run overhead --trials 30 --epochs 12 --repeats 2 --skip-instrumented
    run scaling --zero-trials 100 --sleep-trials-per-worker 4
    run sampler_cost --repeats 3 --postgres
    run storage_profile --backends postgresql,sqlite --sizes 1000,3000 --profile-sizes 0 \
        --full-max 3000 --variants hpo,optuna,optuna-hpo-storage
    run keep_cost --trials 40 --repeats 3
    run load_postgres
    run connections --workers 32 --trials 320
    run proxy_fleet --workers 64 --trials 1000 --baseline-workers 32
    run own_model --trials 8 --rounds 3
    run data_cache
    run cnn_head
    run replay_speed --arms random,tpe,tpe+hyperband --seeds 2
fi
echo "== done $(date -u +%FT%TZ) ($(uptime)); output in $out"
