#!/usr/bin/env bash
# Several runs side by side on one GPU with the same epoch budget, sized to a time budget.
#
# Usage: bash paper_repro/scripts/gpu_parallel.sh OUTDIR TRAIN_SECONDS NAME="--config.x=1 ..." ...
#   Every NAME gets `python -m rocket.main --config=configs/cifar10.py <flags>`. All runs
#   first train 2 epochs together (a probe of the per-epoch time with all of them on
#   the GPU), then the largest epoch count E that fits TRAIN_SECONDS is chosen and all
#   runs train E epochs (the step schedule scales with E). OUTDIR gets plan.txt,
#   NAME.log and NAME_metrics.jsonl for each run.
set -euo pipefail
out=${1:?OUTDIR}; budget=${2:?TRAIN_SECONDS}; shift 2
mkdir -p "$out"
n=$#
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=$(python3 -c "print(round(0.9 / $n, 3))")
wd=${WORK:-/tmp/gpu_parallel}
python3 -c "from rocket.data import cifar10; cifar10.load()"  # decode + cache once
launch() {  # epochs root
  local epochs=$1 root=$2 spec name flags
  for spec in "${runs[@]}"; do
    name=${spec%%=*}; flags=${spec#*=}
    # shellcheck disable=SC2086
    python3 -m rocket.main --config=configs/cifar10.py --config.progress_bar=False \
      --config.num_epochs="$epochs" --workdir="$root/$name" $flags > "$root/$name.log" 2>&1 &
  done
  wait
}
runs=("$@")
t0=$(date +%s)
mkdir -p /tmp/probe && launch 2 /tmp/probe
probe=$(python3 - "${runs[@]}" <<'PY'
import json, sys
times = []
for spec in sys.argv[1:]:
  r = [json.loads(l) for l in open(f"/tmp/probe/{spec.split('=')[0]}/metrics.jsonl")]
  times.append(r[1]["wall_time_s"] - r[0]["wall_time_s"])
print(max(times))
PY
) || { tail -n 30 /tmp/probe/*.log; exit 1; }
left=$(( budget - ($(date +%s) - t0) ))
epochs=$(python3 -c "print(max(1, int(($left - 60) / ($probe * 1.05))))")
echo "probe: $probe s/epoch with $n runs on the GPU; $left s left -> $epochs epochs" | tee "$out/plan.txt"
s=$(date +%s)
mkdir -p "$wd" && launch "$epochs" "$wd"
echo "all runs done in $(( $(date +%s) - s )) s" | tee -a "$out/plan.txt"
for spec in "${runs[@]}"; do
  name=${spec%%=*}
  cp "$wd/$name/metrics.jsonl" "$out/${name}_metrics.jsonl" || true
  tail -n 3 "$wd/$name.log" >> "$out/tails.log" || true
done
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> "$out/plan.txt" || true
