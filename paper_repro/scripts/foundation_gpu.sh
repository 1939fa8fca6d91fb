#!/usr/bin/env bash
# Foundation acceptance run on one GPU: rocket (WRN-16-1 light + WRN-40-1 booster,
# group_bottom sharing) vs the WRN-16-1 light net alone, same budget, run side by side.
#
# Usage: bash paper_repro/scripts/foundation_gpu.sh OUTDIR TRAIN_SECONDS
#   Probes the epoch time of both jobs running together (2 epochs each), then picks
#   the largest number of epochs E that fits TRAIN_SECONDS and runs both for E
#   epochs with the paper's step schedule scaled to E (x0.2 at 30/60/80%).
# Needs: CIFAR-10 npz under $ROCKET_DATA_DIR/cifar10, jax+flax+optax+orbax+ml_collections.
set -euo pipefail
out=${1:?OUTDIR}; budget=${2:?TRAIN_SECONDS}
mkdir -p "$out"
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.4 PYTHONUNBUFFERED=1
common=(--config=configs/cifar10.py --config.progress_bar=False)
run() {  # name epochs workdir extra...
  local name=$1 epochs=$2 wd=$3; shift 3
  python3 -m rocket.main "${common[@]}" --config.num_epochs="$epochs" --workdir="$wd" "$@"
}
python3 -c "from rocket.data import cifar10; cifar10.load()"  # decode + cache once
t0=$(date +%s)
run rocket 2 /tmp/probe_rocket --config.method=rocket > /tmp/probe_rocket.log 2>&1 &
run light 2 /tmp/probe_light --config.method=light > /tmp/probe_light.log 2>&1 &
wait || { cat /tmp/probe_*.log; exit 1; }
cat /tmp/probe_rocket.log /tmp/probe_light.log > "$out/probe.log"
probe=$(python3 - <<'PY'
import json
def epoch_time(path):
  r = [json.loads(l) for l in open(path)]
  return r[1]["wall_time_s"] - r[0]["wall_time_s"]
print(max(epoch_time("/tmp/probe_rocket/metrics.jsonl"), epoch_time("/tmp/probe_light/metrics.jsonl")))
PY
)
left=$(( budget - ($(date +%s) - t0) ))
epochs=$(python3 -c "print(max(1, int(($left - 60) / ($probe * 1.05))))")
echo "probe: $probe s/epoch with both jobs running; $left s left -> $epochs epochs" | tee "$out/plan.txt"
s=$(date +%s)
wd=${WORK:-/tmp/foundation_gpu}
run rocket "$epochs" "$wd/rocket" --config.method=rocket > "$out/rocket.log" 2>&1 &
run light "$epochs" "$wd/light" --config.method=light > "$out/light.log" 2>&1 &
wait
echo "both runs done in $(( $(date +%s) - s )) s" | tee -a "$out/plan.txt"
cp "$wd/rocket/metrics.jsonl" "$out/rocket_metrics.jsonl"
cp "$wd/light/metrics.jsonl" "$out/light_metrics.jsonl"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> "$out/plan.txt" || true
