"""Loading and calling an exported light net -- no training code needed.

An artifact written by :mod:`rocket.ctr.export` is a folder with

* ``scorer.jaxexport`` -- the serialized ``jax.export`` module (StableHLO) of
  ``score(*params, request_ids, candidate_ids) -> p(click)``, with a symbolic
  number of candidates ``n``;
* ``params.npz``       -- the parameters (``leaf_0``, ``leaf_1``, ... in call order;
  int8 tables when exported with ``--int8``);
* ``manifest.json``    -- which fields make up a request (user and context
  fields, known once per request) and a candidate (the ad's fields), their
  vocabulary sizes, and the metrics measured at export time.

This module imports only numpy and jax, so it can be copied next to a server
and used on its own::

    scorer = Scorer.load("/models/frappe_light")
    ctr = scorer.score(request_ids, candidate_ids)   # [F_request], [N, F_candidate] -> [N]

Ids are the per-field ids the training data used (the manifest lists the
fields in order); hashed feature crosses are computed inside the module.
"""

from __future__ import annotations

import json
import pathlib

import jax
import numpy as np

SCORER_FILE, PARAMS_FILE, MANIFEST_FILE = "scorer.jaxexport", "params.npz", "manifest.json"


class Scorer:
  """A reloaded light net: ``score(request_ids [F_r], candidate_ids [N, F_c]) -> ctr [N]``."""

  def __init__(self, exported, leaves, manifest: dict):
    self.exported = exported
    self.leaves = [jax.device_put(x) for x in leaves]
    self.manifest = manifest
    self.request_fields = manifest["request_fields"]
    self.candidate_fields = manifest["candidate_fields"]

  @classmethod
  def load(cls, path) -> "Scorer":
    path = pathlib.Path(path)
    missing = [f for f in (SCORER_FILE, PARAMS_FILE, MANIFEST_FILE) if not (path / f).is_file()]
    if missing:
      raise FileNotFoundError(f"{path} is not a complete exported scorer (missing {missing}); "
                              "write one with `python -m rocket.ctr.export`")
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    exported = jax.export.deserialize(bytearray((path / SCORER_FILE).read_bytes()))
    with np.load(path / PARAMS_FILE) as z:
      leaves = [z[f"leaf_{i}"] for i in range(manifest["num_leaves"])]
    return cls(exported, leaves, manifest)

  def score(self, request_ids, candidate_ids) -> np.ndarray:
    """p(click) of each candidate for one request."""
    r = np.asarray(request_ids, np.int32).reshape(len(self.request_fields))
    c = np.asarray(candidate_ids, np.int32)
    if c.ndim != 2 or c.shape[1] != len(self.candidate_fields):
      raise ValueError(f"candidate_ids must have shape [N, {len(self.candidate_fields)}] "
                       f"(fields {self.candidate_fields}), got {c.shape}")
    return np.asarray(self.score_async(r, c))

  def score_async(self, request_ids, candidate_ids):
    """Like :meth:`score` but returns the device array without waiting (for benchmarks)."""
    return self.exported.call(*self.leaves, request_ids, candidate_ids)

  @property
  def num_bytes(self) -> int:
    return int(sum(x.size * x.dtype.itemsize for x in self.leaves))
