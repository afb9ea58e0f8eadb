#!/usr/bin/env bash
# `make bench`: every benchmark, each printing ratios against a baseline measured in the same run.
# Figures are only comparable within one run: the machines are shared and noisy.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export RAY_USAGE_STATS_ENABLED=0
failed=()
run() {
  local name=$1; shift
  echo; echo "=== $name: $*"
  "$@" || failed+=("$name")
}
bash bench/venv_bench.sh
run transform $PY bench/bench_transform.py --repeats 3
run build $PY bench/bench_build.py
run fetch $PY bench/bench_fetch.py
run neardup $PY bench/bench_neardup.py
run incremental $PY bench/bench_incremental.py
run consensus $PY bench/bench_consensus.py
run loader $PY bench/bench_loader.py
run get $PY bench/bench_get.py
echo
if [ ${#failed[@]} -gt 0 ]; then echo "bench: failed: ${failed[*]}"; exit 1; fi
echo "bench: all benchmarks ran"
