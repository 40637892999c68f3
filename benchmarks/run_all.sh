#!/usr/bin/env bash
# Run every benchmark in turn (~17 min on an idle 2-core machine) with the sizes used for
# BENCHMARKS.md, keeping each one's output in benchmarks/results/NAME.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p benchmarks/results
run() {
    local name=$1
    shift
    echo "== $name $* ($(uptime))"
    python3 "benchmarks/$name.py" "$@" 2>&1 | tee "benchmarks/results/$name.txt"
}
run train_speed --repeats 7 --epochs 2
run overhead --trials 8 --epochs 2 --repeats 4
run scaling --zero-trials 100 --sleep-trials-per-worker 4
run sampler_cost --repeats 3 --postgres
run proxy_fleet --workers 64 --trials 1000 --baseline-workers 32
run keep_cost --trials 40 --repeats 3
run own_model --trials 8 --rounds 3
