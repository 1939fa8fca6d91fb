"""Orbax checkpoints with architecture checks and clear errors.

A checkpoint holds the train state and a small JSON ``meta`` item: the
architecture fingerprint (method, nets, sharing, classes, input shape), the
train time spent so far, the rocket version and a sha256 of the state's bytes.
Restoring checks that digest: a damaged newest checkpoint (unreadable, or its
bytes changed) is skipped with a warning naming it, and the newest intact one
is used.  Resuming from a checkpoint written by another architecture raises a
:class:`CheckpointError` that says what to do; no checkpoint is ever
overwritten or deleted in these cases.
"""

from __future__ import annotations

import hashlib
import pathlib
import sys
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
  """A checkpoint cannot be used to resume; the message says why and what to do."""


class DamagedCheckpoint(CheckpointError):
  """A checkpoint that cannot be trusted (unreadable, or changed bytes); an older one may be."""


class Checkpoints:
  """A thin wrapper over ``ocp.CheckpointManager`` for one workdir."""

  def __init__(self, directory, max_to_keep: int = 2):
    self.directory = pathlib.Path(directory).resolve()
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        item_names=("state", "meta"))

  def latest_step(self):
    return self.manager.latest_step()

  def save(self, step: int, state, meta: dict[str, Any], digest: str | None = None) -> None:
    """Saves ``state`` with ``meta`` and its sha256 (``digest``: already computed by the caller,
    e.g. when the same state goes into two managers)."""
    meta = dict(meta, format=FORMAT_VERSION, step=int(step))
    digest = digest or state_digest(state)
    if digest is not None:
      meta["sha256"] = digest
    self.manager.save(int(step), args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()

  def read_meta(self, step: int) -> dict[str, Any]:
    path = self.directory / str(step)
    try:
      out = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
      meta = out["meta"]
    except Exception as e:  # noqa: BLE001 -- any failure means the same to the user
      raise DamagedCheckpoint(
          f"cannot read the checkpoint metadata in {path} ({type(e).__name__}: {e}). The "
          f"checkpoint may be corrupt or from another program.") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
      raise DamagedCheckpoint(
          f"{path} is not a rocket checkpoint of format {FORMAT_VERSION} (meta: {meta!r}).")
    return meta

  def restore(self, abstract_state, arch: dict[str, Any]):
    """Restores the newest intact checkpoint into ``abstract_state``'s structure.

    Returns ``(state, meta)`` or ``(None, None)`` when there is no checkpoint.  A damaged
    checkpoint (unreadable, or bytes that do not match its digest) is skipped with a warning
    and left in place; when none is intact, the newest one's error is raised.
    """
    steps = sorted(self.manager.all_steps(), reverse=True)
    if not steps:
      return None, None
    first_error = None
    for step in steps:
      try:
        return self._restore_step(step, abstract_state, arch)
      except DamagedCheckpoint as e:
        first_error = first_error or e
        older = [s for s in steps if s < step]
        if older:  # keep the damaged one beside, out of the way of the step that will redo it
          aside = self.directory / f"{step}.damaged"
          (self.directory / str(step)).rename(aside)
          self.manager.reload()
          print(f"warning: {e.args[0]} Resuming from the older checkpoint {older[0]}; the "
                f"damaged one was moved to {aside} (delete it once you have looked).",
                file=sys.stderr, flush=True)
    raise CheckpointError(first_error.args[0] + f" No intact checkpoint is left in {self.directory}; "
                          f"it was left untouched: move it away (or use a new --workdir) to start "
                          f"afresh.")

  def _restore_step(self, step: int, abstract_state, arch: dict[str, Any]):
    path = self.directory / str(step)
    meta = self.read_meta(step)
    saved_arch = meta.get("arch", {})
    if saved_arch != arch:
      diff = {k: (saved_arch.get(k), arch.get(k)) for k in sorted(set(saved_arch) | set(arch))
              if saved_arch.get(k) != arch.get(k)}
      lines = "; ".join(f"{k}: checkpoint={a!r} config={b!r}" for k, (a, b) in diff.items())
      raise CheckpointError(
          f"the checkpoint at {path} was written for another "
          f"architecture ({lines}). Rerun with the matching config, or use a new --workdir; "
          f"the checkpoint was left untouched.")
    try:
      out = self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state)))
    except Exception as e:  # noqa: BLE001
      raise DamagedCheckpoint(f"cannot restore the train state from {path} "
                              f"({type(e).__name__}: {str(e)[:300]}): corrupt or written by "
                              f"another version of the code.") from e
    want = meta.get("sha256")
    if want is not None and state_digest(out["state"]) not in (None, want):
      raise DamagedCheckpoint(f"the train state in {path} does not match the sha256 written with "
                              f"it: its bytes were changed after saving.")
    return out["state"], meta


def state_digest(state) -> str | None:
  """sha256 over the bytes of every leaf of ``state`` (None when some leaf is not fully on this
  process, as in a multi-process run: it would need gathering)."""
  leaves = jax.tree.leaves(state)
  if not all(getattr(x, "is_fully_addressable", True) for x in leaves):
    return None
  h = hashlib.sha256()
  for x in jax.device_get(leaves):
    a = np.ascontiguousarray(np.asarray(x))
    h.update(str((a.dtype, a.shape)).encode())
    h.update(a.tobytes())
  return h.hexdigest()


def abstract_like(tree):
  """ShapeDtypeStructs (with shardings) describing ``tree``, for restoring."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
