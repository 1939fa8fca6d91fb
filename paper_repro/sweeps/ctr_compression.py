"""CTR: embedding compression along rows, columns and bits, for the light net alone and the
rocket-trained light net.  Post-training int8 rows are added by the export step
(``python -m rocket.ctr.export``), see paper_repro/README.md.

    python -m rocket.sweep --config=configs/ctr_frappe.py --config.progress_bar=False \
        --sweep=paper_repro/sweeps/ctr_compression.py --workdir=/tmp/sweeps/ctr_frappe_compression
"""

COMPRESSIONS = {
    "fp32": {},
    "hash1k": {"embedding.rows": "hash", "embedding.buckets": 1000},
    "qr1k": {"embedding.rows": "qr", "embedding.buckets": 1000},
    "auto_dims": {"embedding.dims": "auto"},
    "dim8": {"embedding.dim": 8},
    "rank4": {"embedding.rank": 4},
    "bf16": {"embedding.dtype": "bfloat16"},
    "fp16": {"embedding.dtype": "float16"},
    "int8_qat": {"embedding.qat": True},
    "qr1k_auto_bf16": {"embedding.rows": "qr", "embedding.buckets": 1000, "embedding.dims": "auto",
                       "embedding.dtype": "bfloat16"},
}


def get_sweep():
  runs = []
  for name, ov in COMPRESSIONS.items():
    runs.append(dict(name=f"light-{name}", overrides={"method": "light", **ov}))
    runs.append(dict(name=f"rocket-{name}", overrides={"method": "rocket", **ov}))
  return dict(seeds=(0, 1, 2), runs=runs)
