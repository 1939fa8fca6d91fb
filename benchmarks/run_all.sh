#!/usr/bin/env bash
# Runs every benchmark at full size, keeping stdout and JSON in benchmarks/results/.
#   bash benchmarks/run_all.sh              # all
#   bash benchmarks/run_all.sh train_step   # some, by script name
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results
mkdir -p "$out"
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  names=(train_step cotrain_vs_separate input_pipeline kd_vs_rocket_time profile_cpu)
fi
for name in "${names[@]}"; do
  echo "== $name ($(date -u '+%F %T') UTC, load $(cut -d' ' -f1 /proc/loadavg))"
  python -m "benchmarks.$name" --json_out="$out/$name.json" 2>&1 | tee "$out/$name.txt"
done
