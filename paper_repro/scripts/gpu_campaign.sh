#!/usr/bin/env bash
# The GPU campaign on a device machine of this workplace (see paper_repro/README.md):
#
#   bash paper_repro/scripts/gpu_campaign.sh OUTDIR BUDGET_S [gpu_campaign flags...]
#
# Installs the wheels the GPU image lacks (.whl/: ml_collections), points the data at the carried
# CIFAR-10 copy (.devdata/cifar10), records the device and versions, then runs
# `python -m paper_repro.gpu_campaign --budget_s=BUDGET_S --out=OUTDIR`, its console teed to
# OUTDIR/console.log.
set -uo pipefail
out=${1:?OUTDIR}; budget=${2:?BUDGET_S}; shift 2
mkdir -p "$out"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export ROCKET_DATA_DIR=${ROCKET_DATA_DIR:-$PWD/.devdata} ROCKET_CACHE_DIR=${ROCKET_CACHE_DIR:-/tmp/cache}
export PYTHONUNBUFFERED=1
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  python3 -c "import jax, flax, optax, orbax.checkpoint as o; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"
} 2>&1 | tee "$out/device.txt"
python3 -m paper_repro.gpu_campaign --budget_s="$budget" --out="$out" "$@" 2>&1 | tee "$out/console.log"
