#!/usr/bin/env bash
# Rerun every benchmark that runs on a CPU, one after another, then check the new figures
# against the committed ones (benchmarks/check_figures.py).
#
#   bash benchmarks/run_all.sh            # the sizes BENCHMARKS.md quotes (~20 min idle, 2 cores);
#                                         # output in a new folder, checked against
#                                         # benchmarks/results/ (exit 1 if a figure differs)
#   bash benchmarks/run_all.sh --update   # the same, written into a new benchmarks/results/run-N
#                                         # beside the committed runs: BENCHMARKS.md pools
#                                         # them (three or more runs of one machine, so that
#                                         # a figure's spread holds what changes from run to
#                                         # run)
#   bash benchmarks/run_all.sh --quick    # every script once at a small size (a few minutes):
#                                         # proves they run; its numbers are not figures
#
# Not here: the GPU runs (benchmarks/gpu_run.sh on a GPU machine; fused_speed.py's figure
# is a GPU one, so it runs here in --quick only, to prove it runs). PostgreSQL must answer at
# 127.0.0.1:5432; the Slurm latency runs where Slurm is installed (bash .ci/install-slurm, as
# root) and is skipped otherwise; start-up compares this tree with the tree before the layers
# (commit 3a40409, taken with git archive).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-check}
case "$mode" in
--quick) out=$(mktemp -d -t hpo-bench-quick-XXXX) ;;
--update)
    # A new committed run beside the others (BENCHMARKS.md pools them); one machine's only.
    python3 benchmarks/check_figures.py --can-add
    n=1
    while [ -e "benchmarks/results/run-$n" ]; do n=$((n + 1)); done
    out=benchmarks/results/run-$n
    ;;
check) out=$(mktemp -d -t hpo-bench-XXXX) ;;
*)
    echo "usage: bash benchmarks/run_all.sh [--quick | --update]" >&2
    exit 2
    ;;
esac
mkdir -p "$out"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    commit="$commit with uncommitted changes"
fi
echo "== commit $commit, $(date -u +%FT%TZ), output in $out"
# The run's provenance, read back by check_figures.py --table (BENCHMARKS.md quotes it).
{
    echo "commit: $commit"
    echo "started: $(date -u +%FT%TZ)"
    python3 -c 'import sys; sys.path.insert(0, "benchmarks"); import _machine; print(_machine.banner("run_all"))'
} >"$out/run.txt"
run() { # run FILE SCRIPT ARGS...: benchmarks/SCRIPT.py's output, also kept in $out/FILE.txt
    local file=$1 name=$2
    shift 2
    echo "== $name $* ($(uptime))"
    python3 "benchmarks/$name.py" "$@" 2>&1 | tee "$out/$file.txt"
}
if [ "$mode" = --quick ]; then
    run train_speed train_speed --repeats 1 --epochs 1
    run overhead overhead --trials 2 --epochs 1 --repeats 1 --skip-instrumented
    run scaling scaling --workers 1,2 --zero-trials 20 --sleep-trials-per-worker 1
    run sampler_cost sampler_cost --sizes 20 --repeats 2 --samplers random,tpe
    run storage_profile storage_profile --backends sqlite,postgresql --sizes 60 --full-max 60 \
        --window 10 --profiled 5 --profile-sizes 0 --variants hpo,optuna,optuna-hpo-storage
    run keep_cost keep_cost --trials 8 --window 4 --repeats 1
    run load_postgres load_postgres --workers 2 --trials 20
    run connections connections --workers 2 --trials 4 --epochs 1
    run proxy_fleet proxy_fleet --workers 4 --trials 40 --baseline-workers 2
    run own_model own_model --trials 2 --rounds 1
    run data_cache data_cache --quick
    run cnn_head cnn_head --quick
    run replay_speed replay_speed --quick
    run fused_speed fused_speed --ks 1,2 --max-train 300 --max-val 200 --epochs 1 --repeats 1
else
    run train_speed train_speed --repeats 5 --epochs 1
    run overhead overhead --trials 8 --epochs 1 --repeats 3 --skip-instrumented
    run overhead_no_diagnostics overhead --trials 8 --epochs 1 --repeats 3 --skip-instrumented \
        --no-diagnostics
    run scaling scaling --workers 1,2,4 --zero-trials 150 --sleep-trials-per-worker 8 --rounds 4
    run sampler_cost sampler_cost --sizes 100,1000 --repeats 7 --postgres \
        --samplers random,tpe,gp --cap-seconds 5
    run storage_profile storage_profile --backends sqlite,postgresql --sizes 300 --full-max 300 \
        --window 50 --profiled 20 --profile-sizes 0 --variants hpo,optuna,optuna-hpo-storage \
        --rounds 4
    run keep_cost keep_cost --trials 40 --repeats 3
    run load_postgres load_postgres
    run connections connections --workers 16 --trials 160
    run proxy_fleet proxy_fleet --workers 32 --trials 500 --baseline-workers 16
    run own_model own_model --trials 20 --rounds 4
    run data_cache data_cache
    run cnn_head cnn_head
    run replay_speed replay_speed --arms random,tpe,tpe+hyperband --seeds 3 --rounds 4
    before=$(mktemp -d -t hpo-before-XXXX)
    git archive 3a40409 | tar -x -C "$before"
    run startup startup --before "$before" --repeats 5
    rm -rf "$before"
    if command -v slurmctld >/dev/null && [ "$(id -u)" = 0 ]; then
        run slurm_latency slurm_latency --runs 3
    else
        echo "== slurm_latency skipped: Slurm is not installed here, or this is not root"
    fi
fi
echo "finished: $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/run.txt"
echo "== done $(date -u +%FT%TZ) ($(uptime)); output in $out"
if [ "$mode" = check ]; then
    python3 benchmarks/check_figures.py "$out" | tee "$out/check.txt"
    exit "${PIPESTATUS[0]}"
fi
