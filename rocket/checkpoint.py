"""Orbax checkpoints with architecture checks and clear errors.

A checkpoint holds the train state and a small JSON ``meta`` item: the
architecture fingerprint (method, nets, sharing, classes, input shape), the
train time spent so far and the rocket version.  Resuming from a checkpoint
written by another architecture, or from one that cannot be read, raises a
:class:`CheckpointError` that says what to do; the checkpoint is never
overwritten or deleted in that case.
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
  """A checkpoint cannot be used to resume; the message says why and what to do."""


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

  def save(self, step: int, state, meta: dict[str, Any]) -> None:
    meta = dict(meta, format=FORMAT_VERSION, step=int(step))
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
      raise CheckpointError(
          f"cannot read the checkpoint metadata in {path} ({type(e).__name__}: {e}). The "
          f"checkpoint may be corrupt or from another program. It was left untouched: move "
          f"{self.directory} away (or use a new --workdir) to start afresh.") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
      raise CheckpointError(
          f"{path} is not a rocket checkpoint of format {FORMAT_VERSION} (meta: {meta!r}). "
          f"It was left untouched: use a new --workdir or move it away.")
    return meta

  def restore(self, abstract_state, arch: dict[str, Any]):
    """Restores the latest checkpoint into ``abstract_state``'s structure.

    Returns ``(state, meta)`` or ``(None, None)`` when there is no checkpoint.
    """
    step = self.latest_step()
    if step is None:
      return None, None
    meta = self.read_meta(step)
    saved_arch = meta.get("arch", {})
    if saved_arch != arch:
      diff = {k: (saved_arch.get(k), arch.get(k)) for k in sorted(set(saved_arch) | set(arch))
              if saved_arch.get(k) != arch.get(k)}
      lines = "; ".join(f"{k}: checkpoint={a!r} config={b!r}" for k, (a, b) in diff.items())
      raise CheckpointError(
          f"the checkpoint at {self.directory / str(step)} was written for another "
          f"architecture ({lines}). Rerun with the matching config, or use a new --workdir; "
          f"the checkpoint was left untouched.")
    try:
      out = self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state)))
    except Exception as e:  # noqa: BLE001
      raise CheckpointError(
          f"cannot restore the train state from {self.directory / str(step)} "
          f"({type(e).__name__}: {str(e)[:500]}). The checkpoint is corrupt or incompatible "
          f"with this version of the code. It was left untouched: move it away or use a new "
          f"--workdir.") from e
    return out["state"], meta


def abstract_like(tree):
  """ShapeDtypeStructs (with shardings) describing ``tree``, for restoring."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
