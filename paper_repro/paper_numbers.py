"""Numbers published in the Rocket Launching paper, with where each was found.

Paper: G. Zhou, Y. Fan, R. Cui, W. Bian, X. Zhu, K. Gai. *Rocket Launching: A Universal and
Efficient Framework for Training Well-performing Light Net.* AAAI 2018, arXiv:1708.04106 (v3 is the
AAAI version). Table and figure numbers below are those of v3.

How the numbers were read (no copy of the PDF was reachable from this project):

* Tables 1-5 and the training-time figures: from a complete Chinese translation of
  arXiv:1708.04106v3 (its header reads "AAAI 2018 (arXiv:1708.04106v3 [stat.ML], 2018-03-15)"),
  stored in the `search` tool's code corpus (file id 58531980524; the tool did not return its
  repository). The tables are kept there as numbers, not images. They agree with every
  difference the paper's text states: 0.9 points gain of rocket over the light net alone for
  WRN-16-1(b) (8.77 -> 7.87), 0.63 points from the gradient block (8.50 -> 7.87), 0.19 points
  from parameter sharing (8.06 -> 7.87), 1.29 points on SVHN (3.58 -> 2.29) and 10.4 points on
  CIFAR-100 (43.7 -> 33.3).
* GAUC +0.3 % for the light net on the Alibaba display-ads data: also in the first author's
  Zhihu post (zhuanlan.zhihu.com/p/28625922, mirrored in GitHub Leo-xxx/Rocket-Launching,
  "Rocket Training 一种提升轻量网络性能的训练方法.md").
* Hyper-parameters: the paper's CIFAR-10 and SVHN paragraphs (same translation), plus the
  official code, GitHub zhougr1993/Rocket-Launching (README.md, the argparse defaults and the
  optimizer of rocket_interval.py, and the json_stats lines of logs/*/log.txt). Each entry says
  which.

Not found, left out on purpose:

* Figure 4 (light-net depth sweep): the paper gives it as a plot only; no values are stated in
  the text, so none are listed here (see ``DEPTH_FIGURE4``).
* Training budget of the SVHN runs (total epochs) and the batch size used for SVHN: not stated.
* Whether the CTR numbers are averages over several runs: not stated.
* The paper reports no AT+KD result; the ``at_kd`` runs of our sweeps have no paper counterpart.

Errors are test error in %, lower is better. CIFAR-10/100 and SVHN results are, per the paper,
the median of 3 runs with different seeds.

Naming: the paper's two sharing schemes for WRN (its Fig. 2) are "(a) bottom rocket net" and
"(b) interval rocket net"; in our configs ``share="bottom"`` and ``share="interval"``, as the
official code (GitHub zhougr1993/Rocket-Launching, ``rocket_bottom.py`` and
``rocket_interval.py``) builds them:

* interval (b): every convolution of the light WRN-d-k is the booster's (the stem and the first
  (d-4)/6 blocks of each booster group); the light net has its own batch norms in every block and
  its own head. WRN-16-1 light + WRN-40-1 booster: the light net owns no convolution kernel.
* bottom (a): the light net is the booster's stem and its whole first two groups (convolutions
  shared, own batch norms, own head on the 32k channels), *not* a WRN-16: 136,090 parameters
  for a WRN-40-1 booster. Its "base" (light alone) is that two-group net trained alone. Row (a)
  of Table 1 as read here is labelled WRN-16-1 (0.2M), and ``light_net`` below keeps that label.

What the official code does where the paper's text is silent (more in paper_repro/README.md):

* The hint is ``gamma * ((z_b - z_l)**2).sum() / batch``: summed over classes, gamma = 0.03.
* KD is ``2 * alpha * T^2 / C * KL`` (``F.kl_div`` averaged over batch x classes) plus
  ``(1 - alpha) * CE``; rocket+KD adds that KD term, from a *pre-trained* booster-sized teacher,
  to the full rocket loss. AT is weighted by beta (not beta / 2).
* The Table 2 flags ``--grad_block False`` / ``--param_share False`` of its README are parsed with
  ``type=bool``, and ``bool("False")`` is True: as written, those commands turn nothing off. With
  ``param_share`` really False the stem convolution is still shared.
* The base, AT, KD and booster-alone numbers of the interval rows of Table 1 are those of the AT
  paper (Zagoruyko & Komodakis 2017, its Table 1), not new runs.
"""

PAPER = ("Zhou et al., Rocket Launching: A Universal and Efficient Framework for Training "
         "Well-performing Light Net, AAAI 2018, arXiv:1708.04106v3")

# Our config's ``share`` value -> the paper's row tag. (``none`` is the "no sharing" column of the
# interval row; the retired ``group_bottom`` shared only the first block of each group and has no
# row.)
SHARE_TAG = {"bottom": "a", "interval": "b"}

# --------------------------------------------------------------------------- Table 1

# arXiv:1708.04106v3, Sec. "Experiments", subsection on CIFAR-10, Table 1 "Comparison of
# classification performance (test error) on CIFAR-10". Columns (footnotes of the table):
#   base        light net trained alone
#   at          attention transfer from the booster-sized teacher
#   kd          knowledge distillation from it
#   rocket      the light net of rocket launching
#   rocket_kd   rocket launching + KD (KD uses the probabilities of a pre-trained booster)
#   booster_cotrained  the booster net co-trained in rocket launching
#   booster_only  the booster (WRN-40-k) trained alone
# "0.2M" etc. are the paper's parameter counts. The paper gives no AT result for row (a)
# (footnote 6 of Table 1). In row (a) the official light net is the booster's first two groups
# (136,090 parameters), whatever the "WRN-16-1" label says. The base, at, kd and booster_only
# values of the two interval rows equal the AT paper's Table 1 (Zagoruyko & Komodakis 2017).
CIFAR10_TABLE1 = {
    "citation": "arXiv:1708.04106v3, Experiments on CIFAR-10, Table 1",
    "dataset": "CIFAR-10 (official)",
    "metric": "test error (%)",
    "rows": [
        {"light_net": "WRN-16-1", "booster_net": "WRN-40-1", "share": "b", "light_params": "0.2M",
         "booster_params": "0.6M", "base": 8.77, "at": 8.25, "kd": 8.39, "rocket": 7.87,
         "rocket_kd": 7.52, "booster_cotrained": 6.64, "booster_only": 6.58},
        {"light_net": "WRN-16-2", "booster_net": "WRN-40-2", "share": "b", "light_params": "0.7M",
         "booster_params": "2.2M", "base": 6.31, "at": 5.85, "kd": 6.08, "rocket": 5.67,
         "rocket_kd": 5.64, "booster_cotrained": 5.20, "booster_only": 5.23},
        {"light_net": "WRN-16-1", "booster_net": "WRN-40-1", "share": "a", "light_params": "0.2M",
         "booster_params": "0.6M", "base": 8.69, "kd": 8.34, "rocket": 7.85, "rocket_kd": 7.51,
         "booster_cotrained": 7.27, "booster_only": 6.58},
    ],
}

# --------------------------------------------------------------------------- Table 2

# arXiv:1708.04106v3, Sec. "Experiments", subsection on the parts of the framework, Table 2
# (CIFAR-10, test error). Columns: base (light alone), no_gb (rocket without gradient block),
# no_sharing (rocket without parameter sharing), no_joint_training (booster trained first, the
# light net initialised from some of its layers and trained with the hint towards the fixed
# booster logits), rocket. The official README gives these runs as ``--grad_block False`` /
# ``--param_share False``, flags parsed with ``type=bool`` (so True as written): how the published
# no_gb / no_sharing numbers were produced is therefore not known from the code.
CIFAR10_TABLE2 = {
    "citation": "arXiv:1708.04106v3, Experiments, performance of each part of the framework, Table 2",
    "dataset": "CIFAR-10 (official)",
    "metric": "test error (%)",
    "rows": [
        {"light_net": "WRN-16-1", "booster_net": "WRN-40-1", "share": "b", "base": 8.77, "no_gb": 8.50,
         "no_sharing": 8.06, "no_joint_training": 8.04, "rocket": 7.87},
        {"light_net": "WRN-16-1", "booster_net": "WRN-40-1", "share": "a", "base": 8.69, "no_gb": 8.30,
         "no_sharing": 8.23, "no_joint_training": 8.23, "rocket": 7.85},
    ],
}

# --------------------------------------------------------------------------- Table 3

# arXiv:1708.04106v3, Experiments on CIFAR-10, Table 3 "results of different hint loss
# functions" (test error). Columns: mimic = MSE of the logits (our hint.kind "mse_logits"),
# mse = MSE of the softmax outputs ("l2_softmax"), kd = KD cross-entropy with temperature
# ("kd_kl"; the paper does not state T or the weight used for this row).
CIFAR10_TABLE3 = {
    "citation": "arXiv:1708.04106v3, Experiments on CIFAR-10, Table 3",
    "dataset": "CIFAR-10 (official)",
    "metric": "test error (%)",
    "rows": [
        {"light_net": "WRN-16-1", "booster_net": "WRN-40-1", "share": "b", "mimic": 7.87, "mse": 8.32,
         "kd": 7.98},
        {"light_net": "WRN-16-1", "booster_net": "WRN-40-1", "share": "a", "mimic": 7.85, "mse": 8.36,
         "kd": 8.26},
    ],
}

# --------------------------------------------------------------------------- Table 4

# arXiv:1708.04106v3, Sec. "Experiments on SVHN and CIFAR-100", Table 4 (test error). Both use
# the interval sharing (b). The paper reports no booster column here.
TABLE4 = {
    "citation": "arXiv:1708.04106v3, Experiments on SVHN and CIFAR-100, Table 4",
    "metric": "test error (%)",
    "rows": [
        {"dataset": "svhn", "light_net": "WRN-16-1", "booster_net": "WRN-40-1", "share": "b",
         "base": 3.58, "at": 2.99, "kd": 2.31, "rocket": 2.29, "rocket_kd": 2.20},
        {"dataset": "cifar100", "light_net": "WRN-16-1", "booster_net": "WRN-40-1", "share": "b",
         "base": 43.7, "at": 34.1, "kd": 36.4, "rocket": 33.3, "rocket_kd": 33.0},
    ],
}

# --------------------------------------------------------------------------- Figure 4

# arXiv:1708.04106v3, "Performance on different depths", Figure 4: accuracy of the light net
# for n_s (the number of bottom convolution layers it shares with a 40-layer booster) from 10 to
# 18, for base, KD and rocket. The nets there are residual nets of fixed width from bottom to
# top (not WRN), so the sweep is not the same as our paper_repro/sweeps/depth_cifar10.py.
# The values are only drawn in the figure; none are given in the text, so none are listed.
DEPTH_FIGURE4 = {
    "citation": "arXiv:1708.04106v3, Performance on different depths, Figure 4",
    "values": None,
    "finding": ("the light net trained with rocket launching is better than base and KD at every "
                "depth tried; the gap does not grow in proportion to the light net's depth"),
    "shared_layers": (10, 18),
    "booster_depth": 40,
}

# --------------------------------------------------------------------------- Table 5 (CTR)

# arXiv:1708.04106v3, Sec. "Experiments on real advertisement dataset", Table 5. Alibaba display
# ads, 4 billion training and 285 million test samples; DIN-style nets sharing the embedding
# layer; booster: seven wide hidden layers with batch normalisation. GAUC as defined in the DIN
# paper. "+0.3 %" in the text is the absolute GAUC difference 0.635 - 0.632.
CTR_TABLE5 = {
    "citation": "arXiv:1708.04106v3, Experiments on real advertisement dataset, Table 5",
    "dataset": "Alibaba display ads (4e9 train / 2.85e8 test samples, not public)",
    "metric": "GAUC",
    "rows": [
        {"model": "base", "fc_layers": "576x200x80x2", "fc_multiplications": 131360,
         "fc_inference_ms": 7.6, "gauc": 0.632},
        {"model": "rocket", "fc_layers": "576x200x80x2", "fc_multiplications": 131360,
         "fc_inference_ms": 7.6, "gauc": 0.635},
        {"model": "booster_only", "fc_layers": "576x720x360x240x180x90x2",
         "fc_multiplications": 837900, "fc_inference_ms": 23.2, "gauc": 0.637},
    ],
    "light_gauc_gain": 0.003,  # "improves GAUC by 0.3 %" (text of the paper; Zhihu post)
}

# --------------------------------------------------------------------------- training time

# arXiv:1708.04106v3, performance of each part of the framework (text after Table 3), CIFAR-10,
# WRN-16-1 light + WRN-40-1 booster; hardware not stated.
TRAINING_TIME = {
    "citation": "arXiv:1708.04106v3, Experiments, text after Table 3",
    "booster_alone": {"epochs_to_converge": 173, "s_per_epoch": 24.6},
    "light_alone": {"epochs_to_converge": 165, "s_per_epoch": 18.3},
    "separate_total_s": 7275.3,
    "rocket": {"epochs_to_converge": 180, "s_per_epoch": 34.2, "total_s": 6153.0},
}

# --------------------------------------------------------------------------- hyper-parameters

HPARAMS_CIFAR = {
    # paper, Experiments on CIFAR-10 ("same as Zagoruyko and Komodakis 2016"); CIFAR-100 uses the
    # same settings (paper, Experiments on SVHN and CIFAR-100)
    "epochs": 200,
    "lr": 0.1,
    "momentum": 0.9,
    "lr_decay": 0.2,
    "lr_decay_epochs": (60, 120, 160),  # official rocket_interval.py: `if epoch in [60, 120, 160]`
    # with 1-indexed epochs (after 59/119/159 finished ones), re-creating the optimiser (momentum
    # reset); rocket_bottom.py drops at 70/130/190 instead
    "seeds": "3 runs, median reported",
    # official code: rocket_interval.py argparse defaults and logs/*/log.txt json_stats
    "batch_size": 128,
    "weight_decay": 5e-4,
    "hint_weight": 0.03,  # lambda; `--gamma 0.03` in every rocket command of the README; it
    # multiplies ((z_b - z_l)**2).sum() / batch, the squared error summed over classes
    "kd_temperature": 4,  # `--temperature` default 4
    "kd_alpha": 0.9,  # `--alpha 0.9` for KD and rocket+KD (README); their KD term is
    # kl_div(...) * T*T*2*alpha with kl_div averaged over batch x classes (2*alpha*T^2/C * KL)
    "at_beta": 1e3,  # `--beta 1e+3` (README, AT commands); multiplies the AT sum (not beta / 2)
    # cv2.BORDER_REFLECT repeats the edge pixel: numpy's "symmetric", not "reflect"
    "augmentation": "random horizontal flip, 4-pixel padding with cv2.BORDER_REFLECT, 32x32 crop",
    "nesterov": False,  # torch.optim.SGD(params, lr, 0.9, weight_decay=...) in rocket_interval.py
    "citation": ("arXiv:1708.04106v3, Experiments on CIFAR-10; GitHub zhougr1993/Rocket-Launching "
                 "README.md, rocket_interval.py, logs/*/log.txt"),
}

HPARAMS_SVHN = {
    # paper, Experiments on SVHN and CIFAR-100
    "split": "train / validation / test formed as in Sermanet et al. 2012 (SVHN has 73,257 train, "
             "26,032 test and 531,131 extra images); the validation set picks the final model",
    "optimizer": "adam",
    "lr": 1e-3,
    "lr_decay": 0.2,
    "lr_decay_epochs": (20, 40, 60),
    "booster_dropout": 0.2,  # after each booster-specific layer (and in the booster trained alone)
    "epochs": None,  # not stated
    "citation": "arXiv:1708.04106v3, Experiments on SVHN and CIFAR-100",
}

# --------------------------------------------------------------------------- index

# Table id (``paper_repro/compare.py --table``) -> the dict above.
TABLES = {
    "cifar10_methods": CIFAR10_TABLE1,
    "cifar10_ablation": CIFAR10_TABLE2,
    "cifar10_hints": CIFAR10_TABLE3,
    "cifar100": TABLE4,
    "svhn": TABLE4,
    "ctr": CTR_TABLE5,
}
