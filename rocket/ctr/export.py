r"""Export the light net of a trained CTR run as a self-contained scorer (``jax.export``).

    python -m rocket.ctr.export --workdir=/tmp/frappe --out=/tmp/frappe_light [--int8]

Writes the artifact that :class:`rocket.ctr.serving.Scorer` reloads (without
this code), and prints the test AUC/GAUC/logloss of the exported net on the
run's test split together with its size in bytes.  ``--int8`` applies
post-training quantisation (per-row symmetric int8 with a float32 scale) to
every embedding table first; a run trained with ``embedding.qat=True`` is
exported the same way and loses nothing more.  The exported function is
``score(*params, request_ids [F_r], candidate_ids [n, F_c]) -> p(click) [n]``
with a symbolic ``n``: one request (user and context fields) against any
number of candidate ads (the item fields).
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from rocket.ctr import serving
from rocket.ctr.embeddings import embedding_bytes, quantize_int8

REQUEST_SIDES = ("user", "context")


def light_params(params, net: str = "light") -> dict:
  """The parameters one net reads (shared embedding + its own layers)."""
  return {k: v for k, v in params.items() if k in (net, "shared")}


def serving_model(run, int8: bool):
  """The run's model, rebuilt for int8 tables when asked."""
  if not int8:
    return run.model
  from rocket.ctr.task import build_ctr_model  # noqa: PLC0415

  config = run.config.copy_and_resolve_references()
  with config.unlocked():
    config.embedding.int8 = True
  return build_ctr_model(config, run.data)


def serving_params(run, net: str = "light", int8: bool = False):
  p = jax.tree.map(jnp.asarray, light_params(run.state.params, net))
  return quantize_int8(p) if int8 else p


def serving_variables(run, net: str = "light", int8: bool = False) -> dict:
  """What ``net`` reads at serving time: its parameters, and its BatchNorm averages if it has any."""
  variables = {"params": serving_params(run, net, int8)}
  stats = light_params(run.state.batch_stats or {}, net)
  if jax.tree.leaves(stats):
    variables["batch_stats"] = jax.tree.map(jnp.asarray, stats)
  return variables


def field_layout(fields) -> tuple[list[int], list[int]]:
  """Indices of the request-side (user/context) and candidate-side (item) fields (or id columns:
  ``CTRDataset.columns``, where a sequence's positions are columns of its side)."""
  req = [i for i, f in enumerate(fields) if f.side in REQUEST_SIDES]
  cand = [i for i, f in enumerate(fields) if f.side not in REQUEST_SIDES]
  if not cand:
    raise ValueError("the dataset has no item-side field: nothing varies between candidates")
  return req, cand


def make_score_fn(model, treedef, fields, net: str = "light"):
  """``score(*leaves, request_ids, candidate_ids) -> p(click)`` for ``model``'s ``net``."""
  req, cand = field_layout(fields)
  order = np.argsort(np.asarray(req + cand))  # column of field f in [request | candidate]

  def score(*args):
    *leaves, request_ids, candidate_ids = args
    variables = jax.tree_util.tree_unflatten(treedef, leaves)
    n = candidate_ids.shape[0]
    ids = jnp.concatenate([jnp.broadcast_to(request_ids[None, :], (n, len(req))), candidate_ids], 1)
    ids = ids[:, order]
    z = model.apply(variables, ids, only=net)["logits"][net]
    return jax.nn.sigmoid(z)

  return score


def export(run, out, net: str = "light", int8: bool = False, metrics: dict | None = None) -> dict:
  """Writes the scorer of ``run``'s ``net`` into ``out``; returns the manifest."""
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  model = serving_model(run, int8)
  variables = serving_variables(run, net, int8)
  params = variables["params"]
  leaves, treedef = jax.tree_util.tree_flatten(variables)
  fields = run.data.columns  # the base fields, then each sequence's positions
  req, cand = field_layout(fields)
  score = make_score_fn(model, treedef, fields, net)
  (n,) = jax.export.symbolic_shape("n")
  specs = [jax.ShapeDtypeStruct(x.shape, x.dtype) for x in leaves]
  specs += [jax.ShapeDtypeStruct((len(req),), jnp.int32), jax.ShapeDtypeStruct((n, len(cand)), jnp.int32)]
  exported = jax.export.export(jax.jit(score))(*specs)
  (out / serving.SCORER_FILE).write_bytes(exported.serialize())
  emb = params["shared"]["embedding"] if "shared" in params else params[net]["embedding"]
  manifest = {
      "net": net, "int8": int8, "dataset": run.config.dataset, "step": run.step,
      # which checkpoint (latest, or best by config.select) and its evaluation when saved with it
      "checkpoint": run.checkpoint, "selected_by": run.config.get("select", {}).get("metric", "")
      if run.checkpoint == "best" else "",
      "evaluation": {k: v for k, v in run.record.items() if k.startswith(("valid/", "test/"))},
      "request_fields": [fields[i].name for i in req], "candidate_fields": [fields[i].name for i in cand],
      "vocab_sizes": {f.name: int(f.vocab_size) for f in fields},
      "num_leaves": len(leaves), "bytes": embedding_bytes(variables), "embedding_bytes": embedding_bytes(emb),
      "crosses": run.config.features.get("crosses", ""), "metrics": metrics or {},
      # a sequence's L values are request columns `name[0]`..`name[L-1]` with its field's ids
      "sequences": [{"name": q.name, "field": q.field, "length": q.length}
                    for q in getattr(run.data, "sequences", ())],
      "exported_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "jax": jax.__version__,
  }
  layout = np.frombuffer(serving.layout_digest(manifest).encode(), np.uint8)
  np.savez(out / serving.PARAMS_FILE, **{f"leaf_{i}": np.asarray(x) for i, x in enumerate(leaves)},
           **{serving.LAYOUT_KEY: layout})
  files = [serving.SCORER_FILE, serving.PARAMS_FILE]
  encoders = getattr(run.data, "encoders", None)
  if encoders:  # raw value -> id, so that a request can be raw feature values (Scorer.score_raw)
    base = run.data.fields  # one encoder per base field; a sequence uses its field's
    manifest["encoders"] = {f.name: {k: v for k, v in e.items() if k != "values"}
                            for f, e in zip(base, encoders)}
    np.savez(out / serving.VOCAB_FILE, **{f.name: np.asarray(e["values"])
                                          for f, e in zip(base, encoders) if e["kind"] == "vocab"})
    files.append(serving.VOCAB_FILE)
  manifest["sha256"] = {f: serving.file_sha256(out / f) for f in files}
  (out / serving.MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n")
  return manifest


def evaluate(run, net: str = "light", int8: bool = False, split: str = "test") -> dict:
  """AUC/GAUC/logloss of ``net`` (optionally with int8 tables) on a split of the run's data."""
  from rocket.ctr import metrics  # noqa: PLC0415

  model = serving_model(run, int8)
  variables = serving_variables(run, net, int8)
  data = getattr(run.data, split)

  @jax.jit
  def logits(ids):
    return model.apply(variables, ids, only=net)["logits"][net]

  bs = 8192
  z = np.concatenate([np.asarray(logits(data.ids[i:i + bs])) for i in range(0, len(data.labels), bs)])
  m = metrics.ctr_metrics(np.asarray(data.labels, np.float32), z, np.asarray(data.users))
  return {k: float(m[k]) for k in ("auc", "gauc", "logloss")}


FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command-line flags (defined only when run as a program, so importing is side-effect free)."""
  flags.DEFINE_string("workdir", None, "A finished CTR run (rocket.main --workdir).")
  flags.DEFINE_string("out", None, "Folder for the exported scorer.")
  flags.DEFINE_bool("int8", False, "Post-training int8 quantisation of the embedding tables.")
  flags.DEFINE_enum("net", "light", ["light", "booster"], "Which net to export.")
  flags.DEFINE_enum("checkpoint", "auto", ["auto", "best", "latest"],
                    "Which checkpoint: best (kept by config.select, e.g. the best validation AUC), "
                    "latest, or auto: best when the run kept one.")
  flags.mark_flags_as_required(["workdir", "out"])


def main(argv):
  del argv
  if not FLAGS["verbosity"].present:  # orbax logs every restore at INFO
    logging.set_verbosity(logging.WARNING)
  from rocket import train  # noqa: PLC0415
  from rocket.checkpoint import CheckpointError  # noqa: PLC0415

  try:
    run = train.load_run(FLAGS.workdir, checkpoint=FLAGS.checkpoint)
    if run.config.get("task") != "ctr":
      raise ValueError(f"{FLAGS.workdir} is not a CTR run (config.task={run.config.get('task')!r})")
    if FLAGS.net not in run.model.nets:
      raise ValueError(f"the run in {FLAGS.workdir} has no {FLAGS.net} net (method {run.config.method})")
    m = {"fp32": evaluate(run, FLAGS.net, False)}
    if FLAGS.int8:
      m["int8"] = evaluate(run, FLAGS.net, True)
    manifest = export(run, FLAGS.out, FLAGS.net, FLAGS.int8, metrics=m)
  except (ValueError, CheckpointError) as e:
    print(f"rocket.ctr.export: {e}", file=sys.stderr)
    sys.exit(1)
  print(json.dumps({k: manifest[k] for k in ("net", "int8", "step", "checkpoint", "evaluation",
                                             "bytes", "embedding_bytes", "metrics",
                                             "request_fields", "candidate_fields")}, indent=1))


def run() -> None:
  """The console script ``rocket-export`` (the same as ``python -m rocket.ctr.export``)."""
  define_flags()
  app.run(main)


if __name__ == "__main__":
  run()
