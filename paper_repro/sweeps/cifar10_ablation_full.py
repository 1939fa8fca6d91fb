"""Paper Tables 2 and 3 at full scale: gradient block, sharing and hint loss, for both sharing
schemes of the paper (WRN-16-1 light + WRN-40-1 booster).

    python -m rocket.sweep --config=paper_repro/configs/paper.py:cifar10 \
        --sweep=paper_repro/sweeps/cifar10_ablation_full.py --workdir=/tmp/sweeps/cifar10_ablation_full

Run names: ``*_b`` interval sharing (b) (``share=interval``), ``*_a`` bottom sharing (a)
(``share=bottom``: the light net is the booster's first two groups, so row (a) has its own
light-alone run ``light_a``). Table 2 columns: base (``light_b`` / ``light_a``), no gradient
block (``rocket_*-gb_off``), no sharing (``rocket_b-share_none``, row (b) only: ``share=none``
trains the WRN-16-1 of ``config.light``, so bottom's two-group net has no unshared variant here;
ours shares nothing, the official ``param_share=False`` still shares the stem conv), rocket. The
official README's commands for these columns pass ``--grad_block False`` / ``--param_share
False`` to flags parsed with ``type=bool``, which leaves both True; our runs really turn them off.
The "no joint training" column (booster first, then the light net initialised from its layers
and trained towards its fixed logits) has no counterpart here. Table 3: hint = MSE of logits
(``rocket_*``), MSE of softmax (``*-hint_l2_softmax``), KD (``*-hint_kd_kl``). The paper states
neither the temperature nor the weights of the last two; we use T=4 with weight 1 for KD (the T^2
factor keeps its gradient at the scale of the logit MSE) and weight 1 for the softmax MSE, now
summed over classes (the weight 10 of our earlier class-mean form, divided by the 10 classes:
the same effective weight; its gradient is smaller than the logit MSE's by the softmax
Jacobian), as paper_repro/sweeps/ablation_cifar10.py does. ``*-gb_strict`` is our second reading
of the gradient block (README); the paper has no separate number for it. 13 runs x 3 seeds.
"""

PAIR = {"light.depth": 16, "light.width": 1, "booster.depth": 40, "booster.width": 1}
VARIANTS = {
    "": {},
    "-gb_off": {"gradient_block": "off"},
    "-gb_strict": {"gradient_block": "strict"},
    "-hint_kd_kl": {"hint.kind": "kd_kl", "hint.temperature": 4.0, "hint.weight": 1.0},
    # summed over classes: 1.0 = the earlier class-mean form's 10.0 on CIFAR-10
    "-hint_l2_softmax": {"hint.kind": "l2_softmax", "hint.weight": 1.0},
}


def get_sweep():
  runs = [
      dict(name="rocket_b-share_none", overrides={**PAIR, "method": "rocket", "share": "none"}),
  ]
  for share, tag in (("interval", "b"), ("bottom", "a")):
    runs.append(dict(name=f"light_{tag}", overrides={**PAIR, "method": "light", "share": share}))
    for suffix, ov in VARIANTS.items():
      runs.append(dict(name=f"rocket_{tag}{suffix}",
                       overrides={**PAIR, "method": "rocket", "share": share, **ov}))
  return dict(seeds=(0, 1, 2), runs=runs)
