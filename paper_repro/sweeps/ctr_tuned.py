"""CTR at a tuned operating point: crosses sized from the data, model selection with patience.

The light net alone, the booster alone, rocket, and two measures against an overfitting booster
dragging the shared embedding (the hint ramped in over 2 epochs; dropout 0.3 in the booster).
Use with a CTR base config and the tuned fields on the command line, e.g.:

    python -m rocket.sweep --config=configs/ctr_frappe.py --config.features.cross_buckets=0 \
        --config.num_epochs=8 --config.select.patience=6 --config.progress_bar=False \
        --config.tensorboard=False --sweep=paper_repro/sweeps/ctr_tuned.py --workdir=/tmp/ctr_tuned

(MovieLens: ``configs/ctr_movielens.py``, ``--config.num_epochs=4``,
``--only=light,booster,rocket``.) ``features.cross_buckets=0`` gives each hashed cross
distinct-training-values / 0.25 rows; ``select.patience=6`` stops after 6 evaluations (3 epochs)
without a better validation AUC of the served net.
"""


def get_sweep():
  rocket = {"method": "rocket"}
  runs = [
      dict(name="light", overrides={"method": "light"}),
      dict(name="rocket", overrides=rocket),
      dict(name="rocket_hint_warmup2", overrides={**rocket, "hint.warmup_epochs": 2.0}),
      dict(name="rocket_booster_dropout0.3", overrides={**rocket, "booster.dropout": 0.3}),
      dict(name="booster", overrides={"method": "booster"}),
  ]
  return dict(seeds=(0, 1, 2), runs=runs)
