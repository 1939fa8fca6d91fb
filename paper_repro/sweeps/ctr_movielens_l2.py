"""MovieLens-100k at the regularised operating point (``configs/ctr_movielens.py:tuned``: no crosses,
embedding L2 1e-2 on the looked-up rows, up to 20 epochs, patience 8), where the booster alone beats
the light net alone by ~0.009 AUC, so co-training has something to transfer. Light alone, booster
alone, rocket at the paper's lambda 0.03 and at our earlier CTR default 0.1, rocket without sharing
(hint only), KD from the finished booster, and the paper's Table 5 pairing: a DIN booster and a DIN
light net over each user's 20 most recent earlier liked items; and the light net with BatchNorm,
alone and in rocket; rocket with the booster's own layers at 0.3x the learning rate; the DIN pair
with Table 5's FC shapes scaled to our input width; and rocket with the booster detached from the
shared embedding an epoch after its best validation AUC::

    python -m rocket.sweep --config=configs/ctr_movielens.py:tuned --config.progress_bar=False \
        --config.tensorboard=False --sweep=paper_repro/sweeps/ctr_movielens_l2.py --workdir=/tmp/ml_l2
"""


def get_sweep():
  din = {"features.history": 20, "features.history_of": "liked", "light.kind": "din",
         "booster.kind": "din", "booster.cross_layers": 0}
  t5 = {"light.hidden": "56,22", "booster.hidden": "200,100,67,50,25"}
  runs = [
      dict(name="light", overrides={"method": "light"}),
      dict(name="booster", overrides={"method": "booster"}),
      dict(name="rocket", overrides={"method": "rocket", "hint.weight": 0.03}),
      dict(name="rocket_hint0.1", overrides={"method": "rocket", "hint.weight": 0.1}),
      dict(name="rocket_share_none", overrides={"method": "rocket", "hint.weight": 0.03,
                                                "share": "none"}),
      dict(name="kd", overrides={"method": "kd"}, teacher="booster"),
      dict(name="din_light", overrides={"method": "light", **din}),
      dict(name="din_booster", overrides={"method": "booster", **din}),
      dict(name="din_rocket", overrides={"method": "rocket", "hint.weight": 0.03, **din}),
      # BatchNorm before the light net's hidden ReLU (the booster does worse with it)
      dict(name="light_bn", overrides={"method": "light", "light.batch_norm": True}),
      dict(name="rocket_bn", overrides={"method": "rocket", "hint.weight": 0.03,
                                        "light.batch_norm": True}),
      # a separate, lower learning rate for the booster's own layers (optim.booster_lr_scale)
      dict(name="rocket_blr0.3", overrides={"method": "rocket", "hint.weight": 0.03,
                                            "optim.booster_lr_scale": 0.3}),
      dict(name="rocket_bn_blr0.3", overrides={"method": "rocket", "hint.weight": 0.03,
                                               "light.batch_norm": True,
                                               "optim.booster_lr_scale": 0.3}),
      # Table 5's FC shapes scaled to our input width (10 fields x 16 = 160 against its 576, x0.28):
      # light 576x200x80 -> 56x22, booster 576x720x360x240x180x90 -> 200x100x67x50x25, DIN both
      dict(name="din_t5_light", overrides={"method": "light", **din, **t5}),
      dict(name="din_t5_booster", overrides={"method": "booster", **din, **t5}),
      dict(name="din_t5_rocket", overrides={"method": "rocket", "hint.weight": 0.03, **din, **t5}),
      # the booster stops moving the shared embedding once its validation AUC has not improved
      # for an epoch (4 evaluations; select.detach_booster_after)
      dict(name="rocket_detach", overrides={"method": "rocket", "hint.weight": 0.03,
                                            "select.detach_booster_after": 4}),
      dict(name="rocket_bn_detach", overrides={"method": "rocket", "hint.weight": 0.03,
                                               "light.batch_norm": True,
                                               "select.detach_booster_after": 4}),
  ]
  return dict(seeds=(0, 1, 2), runs=runs)
