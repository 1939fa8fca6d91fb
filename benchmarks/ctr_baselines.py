"""CTR baselines next to our nets: scikit-learn LR (one-hot, + exact crosses), GBT and an MLP.

Every baseline sees exactly the rows our trainer sees: the dataset comes from
``rocket.ctr.loaders.load_ctr_dataset`` with ``configs/ctr_<dataset>.py`` (its fixed
train/valid/test split and its train-only vocabularies, int ids per field).  Each baseline
is fitted on train, its hyper-parameters (and its number of epochs / trees) are chosen by
validation AUC, as our nets' epoch is, and it is reported on test.  The grids (constants
below) stop early: C is walked upwards until the validation AUC falls; trees and epochs are
read until it has not risen for a while.  A choice at an end of its grid is flagged in the
table.  AUC, GAUC (by user) and logloss are ``rocket.ctr.metrics.ctr_metrics`` of the
model's logits, the functions that score our nets; sklearn's ``roc_auc_score`` must agree
with our AUC on every test set.  scikit-learn runs single-threaded by default (``--threads``):
on a shared 2-core machine its OpenMP/BLAS threads mostly wait on each other.

Baselines:

* ``lr_onehot``: logistic regression (L2, lbfgs) on the one-hot base fields.
* ``lr_crosses``: the same plus the crosses the config gives our nets
  (``config.features.crosses``), exact: one column per distinct train value of the
  tuple, values unseen in train dropped (our nets hash them into ``cross_buckets``).
* ``lr_all_pairs``: the same with every pair of fields crossed exactly.
* ``gbt``: ``HistGradientBoostingClassifier`` with every field a categorical feature.
  Its categories must be fewer than ``max_bins`` (255), so a field keeps ids 0..253 as
  they are (ids are numbered by descending train count: the 253 most frequent values and
  OOV) and its rarer values share id 254; each field with more values than that also gets
  a target encoding (sklearn ``TargetEncoder``, 5-fold cross-fitted on train) and its
  train count as numeric features.
* ``gbt_crosses``: ``gbt`` plus a target encoding and train count of each config cross.
* ``mlp_onehot``: one hidden layer of 32 ReLUs on the one-hot base fields (sklearn
  ``MLPClassifier``, Adam, batch 1024, no other regularisation than its default L2 of 1e-4),
  the learning rate and the epoch by validation AUC.

Our rows are read from ``paper_repro/results/ctr_<dataset>/runs.json``,
``ctr_<dataset>_tuned/runs.json`` (crosses sized from the data), ``ctr_frappe_tuned_wd`` (plus
weight decay), ``ctr_frappe_dcn`` (a smaller, regularised booster) and ``ctr_movielens_l2`` (no
crosses, embedding L2), where they exist (test metrics at
each seed's best-validation-AUC evaluation, mean ± std over seeds, as ``rocket.report``
tables them); Δ is against our best light net (the highest mean test AUC).

    python -m benchmarks.ctr_baselines                 # Frappe and MovieLens-100k, ~4.5 min on 2 cores
    python -m benchmarks.ctr_baselines --quick         # subsets, one grid point each (the tests)
    python -m benchmarks.ctr_baselines --datasets=movielens --json_out=/tmp/ctr_baselines.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
import warnings

import numpy as np
import threadpoolctl

if __package__ in (None, ""):  # run as a module, from the repository root
  sys.exit("run it from the repository root as: python -m benchmarks.ctr_baselines ...")

from benchmarks import common  # noqa: E402

CONFIGS = {"frappe": "configs/ctr_frappe.py", "movielens": "configs/ctr_movielens.py"}
# our committed runs: the configs' defaults, and the tuned operating point (sweeps/ctr_tuned.py)
OURS = ("paper_repro/results/ctr_{}/runs.json", "paper_repro/results/ctr_{}_tuned/runs.json",
        "paper_repro/results/ctr_{}_tuned_wd/runs.json", "paper_repro/results/ctr_{}_dcn/runs.json",
        "paper_repro/results/ctr_{}_l2/runs.json")
BASELINES = ("lr_onehot", "lr_crosses", "lr_all_pairs", "gbt", "gbt_crosses", "mlp_onehot")
MAX_CATEGORY = 254  # HistGradientBoosting's categories must be < max_bins = 255
# Hyper-parameter grids, chosen by validation AUC; --quick takes the first point of each.
# LR walks C upwards and stops at the first C whose validation AUC is below the best so far.
LR_C = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
GBT_GRID = tuple(itertools.product((0.05, 0.1, 0.2), (31, 127)))  # (learning_rate, max_leaf_nodes)
GBT_TREES, GBT_EVERY, GBT_PATIENCE = 500, 10, 100  # the validation AUC is read every GBT_EVERY trees
MLP_LR, MLP_EPOCHS, MLP_PATIENCE, MLP_HIDDEN, MLP_BATCH = (1e-3, 3e-3, 1e-2, 3e-2), 150, 10, 32, 1024
QUICK_ROWS = (3000, 1500)  # train rows (the config's seeded train_subset), valid/test rows
WHAT = {"lr_onehot": "LR, one-hot base fields",
        "lr_crosses": "LR, one-hot base fields + the config's crosses, exact",
        "lr_all_pairs": "LR, one-hot base fields + all pairs of fields, exact",
        "gbt": "GBT, fields categorical (+ target enc. and count of fields > 254 values)",
        "gbt_crosses": "GBT as `gbt` + target enc. and count of the config's crosses",
        "mlp_onehot": f"MLP, one hidden layer of {MLP_HIDDEN} ReLUs on the one-hot base fields"}


def parse(argv):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--datasets", default="frappe,movielens", help=f"comma list of {', '.join(CONFIGS)}")
  p.add_argument("--baselines", default=",".join(BASELINES), help="comma list of baselines to fit")
  p.add_argument("--quick", action="store_true", help="row subsets, one grid point, few epochs/trees")
  p.add_argument("--threads", type=int, default=1,
                 help="BLAS/OpenMP threads of scikit-learn (threadpoolctl); on a shared 2-core machine more "
                 "threads wait on each other, up to 10x slower")
  p.add_argument("--json_out", default="", help="also write the results as JSON here")
  args = p.parse_args(argv)
  args.datasets = [d for d in args.datasets.split(",") if d]
  args.baselines = [b for b in args.baselines.split(",") if b]
  for bad in set(args.datasets) - set(CONFIGS) | set(args.baselines) - set(BASELINES):
    p.error(f"unknown dataset or baseline {bad!r}")
  return args


# --------------------------------------------------------------------------- data and features


def load(name: str, quick: bool):
  """The config and the dataset our trainer builds from it (row subsets under --quick)."""
  from rocket.ctr.loaders import load_ctr_dataset  # noqa: PLC0415

  overrides = {"features.train_subset": QUICK_ROWS[0]} if quick else {}
  config = common.load_config("", CONFIGS[name], **overrides)
  ds = load_ctr_dataset(config)
  if quick:
    ds.valid, ds.test = (s.take(np.arange(min(len(s), QUICK_ROWS[1]))) for s in (ds.valid, ds.test))
  return config, ds


def tuple_keys(split, groups, sizes) -> list[np.ndarray]:
  """One int64 column per group of field indices: the group's ids in mixed radix (exact)."""
  out = []
  for g in groups:
    key = np.zeros(len(split), np.int64)
    for f in g:
      key = key * sizes[f] + split.ids[:, f]
    out.append(key)
  return out


def one_hot(ds, groups) -> tuple[list, list[int]]:
  """CSR one-hot matrices (train, valid, test) with one column per distinct *train* value of each
  group of fields; a value unseen in train has no column.  Also the column count per group."""
  import scipy.sparse as sp  # noqa: PLC0415

  sizes = [f.vocab_size for f in ds.fields]
  splits = (ds.train, ds.valid, ds.test)
  keys = [tuple_keys(s, groups, sizes) for s in splits]
  rows, cols, widths = [[] for _ in splits], [[] for _ in splits], []
  for g in range(len(groups)):
    vocab = np.unique(keys[0][g])
    for i, k in enumerate(keys):
      pos = np.minimum(np.searchsorted(vocab, k[g]), len(vocab) - 1)
      seen = vocab[pos] == k[g]
      rows[i].append(np.flatnonzero(seen))
      cols[i].append(sum(widths) + pos[seen])
    widths.append(len(vocab))
  mats = [sp.csr_matrix((np.ones(sum(map(len, r)), np.float64), (np.concatenate(r), np.concatenate(c))),
                        shape=(len(s), sum(widths))) for s, r, c in zip(splits, rows, cols)]
  return mats, widths


def train_counts(train_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
  """How often each value of ``keys`` (one column per feature) occurs in ``train_keys``."""
  out = np.zeros(keys.shape, np.float64)
  for j in range(keys.shape[1]):
    vocab, counts = np.unique(train_keys[:, j], return_counts=True)
    pos = np.minimum(np.searchsorted(vocab, keys[:, j]), len(vocab) - 1)
    out[:, j] = np.where(vocab[pos] == keys[:, j], counts[pos], 0)
  return out


def gbt_features(ds, crosses) -> tuple[list[np.ndarray], np.ndarray]:
  """Dense features (train, valid, test) for the trees and their categorical mask: every field's
  id capped at MAX_CATEGORY (categorical), then a cross-fitted target encoding and the train count
  of every field with more values than that and of every cross in ``crosses``."""
  from sklearn.model_selection import StratifiedKFold  # noqa: PLC0415
  from sklearn.preprocessing import TargetEncoder  # noqa: PLC0415

  sizes = [f.vocab_size for f in ds.fields]
  groups = [(f,) for f, v in enumerate(sizes) if v > MAX_CATEGORY] + list(crosses)
  splits = (ds.train, ds.valid, ds.test)
  codes = [np.minimum(s.ids, MAX_CATEGORY).astype(np.float64) for s in splits]
  if not groups:
    return codes, np.ones(len(sizes), bool)
  keys = [np.stack(tuple_keys(s, groups, sizes), 1) for s in splits]
  enc = TargetEncoder(target_type="binary", cv=StratifiedKFold(5, shuffle=True, random_state=0))
  encoded = [enc.fit_transform(keys[0], ds.train.labels)] + [enc.transform(k) for k in keys[1:]]
  feats = [np.concatenate([c, e, train_counts(keys[0], k)], 1) for c, e, k in zip(codes, encoded, keys)]
  return feats, np.r_[np.ones(len(sizes), bool), np.zeros(2 * len(groups), bool)]


# --------------------------------------------------------------------------- the baselines


def fit_lr(X, y, grid) -> tuple[list[dict], dict, list[np.ndarray]]:
  """L2 logistic regression (lbfgs), C walked up ``grid`` until the validation AUC falls."""
  from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

  from rocket.ctr import metrics  # noqa: PLC0415

  rows, logits = [], []
  for c in grid:
    m = LogisticRegression(C=c, solver="lbfgs", max_iter=3000).fit(X[0], y[0])
    z = [m.decision_function(x) for x in X[1:]]
    rows.append({"C": c, "iters": int(m.n_iter_[0]), "valid_auc": metrics.auc(y[1], z[0])})
    logits.append(z)
    if rows[-1]["valid_auc"] < max(r["valid_auc"] for r in rows):
      break
  return pick(rows, logits)


def best_stage(stages, labels, patience: int) -> tuple[int, float, list[np.ndarray]]:
  """The best of ``(n, valid logits, test logits)`` stages by validation AUC, read until ``patience``
  stages pass without a better one: its n, validation AUC and logits."""
  from rocket.ctr import metrics  # noqa: PLC0415

  best, since = None, 0
  for n, zv, zt in stages:
    a = metrics.auc(labels, zv)
    best, since = ((n, a, [zv, zt]), 0) if best is None or a > best[1] else (best, since + 1)
    if since >= patience:
      break
  return best


def pick(rows: list[dict], logits: list) -> tuple[list[dict], dict, list[np.ndarray]]:
  """The grid rows, the row with the best validation AUC and that row's logits."""
  i = max(range(len(rows)), key=lambda k: rows[k]["valid_auc"])
  return rows, rows[i], logits[i]


def fit_gbt(X, y, categorical, grid, trees) -> tuple[list[dict], dict, list[np.ndarray]]:
  """Histogram GBT per (learning rate, leaves) in ``grid``, ``trees`` trees; the tree count by
  validation AUC, read every GBT_EVERY trees and no longer after GBT_PATIENCE trees without a gain."""
  from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: PLC0415

  rows, logits = [], []
  for lr, leaves in grid:
    m = HistGradientBoostingClassifier(learning_rate=lr, max_leaf_nodes=leaves, max_iter=trees,
                                       categorical_features=categorical, early_stopping=False,
                                       random_state=0).fit(X[0], y[0])
    staged = zip(itertools.count(1), m.staged_decision_function(X[1]), m.staged_decision_function(X[2]))
    stages = ((n, zv, zt) for n, zv, zt in staged if n % GBT_EVERY == 0 or n == m.n_iter_)
    n, a, z = best_stage(stages, y[1], GBT_PATIENCE // GBT_EVERY)
    rows.append({"learning_rate": lr, "max_leaf_nodes": leaves, "trees": n, "valid_auc": a})
    logits.append(z)
  return pick(rows, logits)


def mlp_logits(m, X) -> np.ndarray:
  """The logit of sklearn's MLPClassifier (ReLU hidden layers), computed from its weights."""
  h = X
  for w, b in zip(m.coefs_[:-1], m.intercepts_[:-1]):
    h = np.maximum(h @ w + b, 0.0)
  return np.asarray(h @ m.coefs_[-1] + m.intercepts_[-1]).reshape(-1)


def fit_mlp(X, y, lrs, epochs) -> tuple[list[dict], dict, list[np.ndarray]]:
  """One hidden layer on the one-hot fields, per learning rate; the epoch by validation AUC,
  stopped after MLP_PATIENCE epochs without a gain."""
  from sklearn.neural_network import MLPClassifier  # noqa: PLC0415

  def epochs_of(m):
    for epoch in range(1, epochs + 1):
      m.partial_fit(X[0], y[0], classes=[0.0, 1.0])  # one shuffled pass in batches of MLP_BATCH
      yield epoch, mlp_logits(m, X[1]), mlp_logits(m, X[2])

  rows, logits = [], []
  for lr in lrs:
    m = MLPClassifier(hidden_layer_sizes=(MLP_HIDDEN,), learning_rate_init=lr, batch_size=MLP_BATCH,
                      random_state=0)
    n, a, z = best_stage(epochs_of(m), y[1], MLP_PATIENCE)
    rows.append({"learning_rate": lr, "epochs": n, "valid_auc": a})
    logits.append(z)
  return pick(rows, logits)


def at_edge(rows: list[dict], chosen: dict, limits: dict) -> list[str]:
  """The chosen hyper-parameters at an end of the grid tried (or at their cap): worth widening."""
  out = []
  for k, v in chosen.items():
    if k in limits:
      out += [k] if v >= limits[k] else []
    elif k not in ("valid_auc", "iters"):
      tried = sorted({r[k] for r in rows})
      out += [k] if len(tried) > 1 and v in (tried[0], tried[-1]) else []
  return out


def fit_baseline(name: str, ds, crosses, quick: bool) -> dict:
  """Fits one baseline with its grid; its chosen setting and its valid and test metrics."""
  from sklearn.metrics import roc_auc_score  # noqa: PLC0415

  from rocket.ctr import metrics  # noqa: PLC0415

  first = (lambda g: g[:1]) if quick else (lambda g: g)
  y = [s.labels for s in (ds.train, ds.valid, ds.test)]
  base = [(f,) for f in range(len(ds.fields))]
  t0 = time.perf_counter()
  if name.startswith("lr_"):
    extra = {"lr_onehot": [], "lr_crosses": crosses,
             "lr_all_pairs": list(itertools.combinations(range(len(ds.fields)), 2))}[name]
    X, widths = one_hot(ds, base + extra)
    rows, chosen, z = fit_lr(X, y, first(LR_C))
    limits = {}
    features = {"columns": sum(widths), "cross_columns": widths[len(base):]}
  elif name.startswith("gbt"):
    X, categorical = gbt_features(ds, crosses if name == "gbt_crosses" else [])
    trees = GBT_EVERY if quick else GBT_TREES
    rows, chosen, z = fit_gbt(X, y, categorical, first(GBT_GRID), trees)
    limits = {"trees": trees}
    features = {"columns": int(X[0].shape[1]), "categorical": int(categorical.sum())}
  else:
    X, widths = one_hot(ds, base)
    epochs = 2 if quick else MLP_EPOCHS
    rows, chosen, z = fit_mlp(X, y, first(MLP_LR), epochs)
    limits = {"epochs": epochs}
    features = {"columns": sum(widths)}
  fit_s = time.perf_counter() - t0
  valid, test = (metrics.ctr_metrics(s.labels, zz, s.users) for s, zz in zip((ds.valid, ds.test), z))
  oracle = abs(roc_auc_score(ds.test.labels, z[1]) - test["auc"])
  assert oracle < 1e-9, f"{name}: sklearn's roc_auc_score differs from rocket.ctr.metrics.auc by {oracle}"
  return {"name": name, "what": WHAT[name], "grid": rows, "chosen": chosen,
          "at_grid_edge": at_edge(rows, chosen, limits), "valid": valid, "test": test,
          "features": features, "fit_s": round(fit_s, 2), "oracle_auc_abs_diff": oracle}


# --------------------------------------------------------------------------- our nets


def ours(name: str) -> dict:
  """Our committed runs: per run, light and booster test metrics (mean, std over seeds) at each
  seed's best-validation-AUC evaluation, as ``rocket.report`` tables them."""
  from rocket.report import summarize_ctr  # noqa: PLC0415

  config = common.load_config("", CONFIGS[name])  # the full rows, also under --quick
  rows, sources, buckets, same = [], [], {}, True
  for pattern in OURS:
    path = pattern.format(name)
    if not (common.ROOT / path).is_file():
      continue
    tag = path.split("/")[-2]
    sources.append(path)
    runs = json.loads((common.ROOT / path).read_text())
    for run in runs:
      s = summarize_ctr(run)
      for net in ("light", "booster"):
        if not s[f"{net}_auc"]:
          continue
        row = {"name": f"ours ({tag}): {net} net of `{run['name']}`", "run": run["name"], "net": net,
               "seeds": s["n"], "source": path}
        for k in ("auc", "gauc", "logloss"):
          v = s[f"{net}_{k}"]
          row[k], row[k + "_std"] = statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0
        rows.append(row)
    feats = next(r for r in runs if r["seeds"])
    feats = next(iter(feats["seeds"].values()))["config"]["features"]
    buckets[tag] = feats.get("cross_buckets")
    same &= all(feats.get(k) == config.features.get(k) for k in ("min_count", "hash_buckets", "train_subset"))
  return {"source": ", ".join(sources), "rows": rows, "cross_buckets": buckets,
          "same_rows_as_baselines": same}


# --------------------------------------------------------------------------- report


def table(result: dict) -> str:
  """The markdown table of one dataset: baselines and our rows, Δ against our best light net."""
  ref = result["best_light"]
  lines = ["| model | test AUC | test GAUC | test logloss | Δ AUC | Δ GAUC | chosen on valid | fit (s) |",
           "|---|---|---|---|---|---|---|---|"]
  for b in result["baselines"]:
    t = b["test"]
    chosen = ", ".join(f"{k}={v}" for k, v in b["chosen"].items() if k not in ("valid_auc", "iters"))
    chosen += f" (valid AUC {b['chosen']['valid_auc']:.4f})"
    chosen += f"; at the grid's edge: {', '.join(b['at_grid_edge'])}" if b["at_grid_edge"] else ""
    lines.append(f"| `{b['name']}` | {t['auc']:.4f} | {t['gauc']:.4f} | {t['logloss']:.4f} | "
                 f"{t['auc'] - ref['auc']:+.4f} | {t['gauc'] - ref['gauc']:+.4f} | "
                 f"{chosen} | {b['fit_s']:.1f} |")
  for r in result["ours"]["rows"]:
    ms = lambda k, r=r: f"{r[k]:.4f} ± {r[k + '_std']:.4f}"  # noqa: E731
    mark = " **(best light)**" if r["name"] == ref["name"] else ""
    lines.append(f"| {r['name']}{mark} | {ms('auc')} | {ms('gauc')} | {ms('logloss')} | "
                 f"{r['auc'] - ref['auc']:+.4f} | {r['gauc'] - ref['gauc']:+.4f} | "
                 f"best-valid epoch, {r['seeds']} seeds | |")
  return "\n".join(lines)


def run_dataset(name: str, args) -> dict:
  from rocket.ctr.features import parse_crosses  # noqa: PLC0415

  config, ds = load(name, args.quick)
  names = [f.name for f in ds.fields]
  crosses = [tuple(names.index(n) for n in c) for c in parse_crosses(config.features.crosses, names)]
  print(f"\n{ds.description}: {len(ds.train)} train / {len(ds.valid)} valid / {len(ds.test)} test rows, "
        f"fields {', '.join(f'{f.name}({f.vocab_size})' for f in ds.fields)}", flush=True)
  baselines = []
  for b in args.baselines:
    baselines.append(fit_baseline(b, ds, crosses, args.quick))
    r = baselines[-1]
    print(f"  {b}: test AUC {r['test']['auc']:.4f}, valid AUC {r['chosen']['valid_auc']:.4f}, "
          f"{r['fit_s']:.1f} s", flush=True)
  sizes = [f.vocab_size for f in ds.fields]
  distinct = {"*".join(names[f] for f in c): int(len(np.unique(k)))
              for c, k in zip(crosses, tuple_keys(ds.train, crosses, sizes))}
  mine = ours(name)
  best = max((r for r in mine["rows"] if r["net"] == "light"), key=lambda r: r["auc"])
  result = {"dataset": name, "description": ds.description, "rows": {
      s: len(getattr(ds, s)) for s in ("train", "valid", "test")},
      "fields": {f.name: f.vocab_size for f in ds.fields}, "crosses": config.features.crosses,
      "cross_buckets_of_our_nets": mine["cross_buckets"], "distinct_train_crosses": distinct,
      "baselines": baselines,
      "ours": mine, "best_light": best}
  result["table"] = table(result)
  title = "quick: row subsets, the numbers mean nothing" if args.quick else "test split"
  print(f"\n### {name} ({title})\n")
  print(f"Δ: against our best light net, {best['name']} (the highest mean test AUC); ours from "
        f"{mine['source']}" + ("" if mine["same_rows_as_baselines"] else
                               " (WARNING: its feature options differ from the config's)") + ". "
        "Distinct train values of the config's crosses (our runs' features.cross_buckets, "
        f"0 = sized from the data: {mine['cross_buckets']}): "
        + ", ".join(f"{k} {v:,}" for k, v in distinct.items()) + ".\n")
  print(result["table"], flush=True)
  return result


def main(argv=None) -> dict:
  args = parse(sys.argv[1:] if argv is None else argv)
  info = common.machine_info()
  for dist in ("scikit-learn", "scipy", "numpy"):
    info[dist] = common._version(dist)
  common.print_machine(info)
  warning = common.busy_warning(info)
  print("\n".join(f"* `{b}`: {WHAT[b]}" for b in args.baselines))
  t0 = time.perf_counter()
  # loaded first, so that threadpool_limits finds their BLAS and OpenMP libraries
  import sklearn.ensemble, sklearn.linear_model, sklearn.neural_network  # noqa: E401, F401, PLC0415

  with warnings.catch_warnings(), threadpoolctl.threadpool_limits(args.threads):
    warnings.simplefilter("ignore", FutureWarning)
    results = [run_dataset(d, args) for d in args.datasets]
  total_s = round(time.perf_counter() - t0, 1)
  print(f"\ntotal {total_s} s")
  return common.finish("ctr_baselines", info, warning, args.json_out, quick=args.quick,
                       threads=args.threads, total_s=total_s, datasets=results)


if __name__ == "__main__":
  main()
