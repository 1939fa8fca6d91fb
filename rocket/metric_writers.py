"""Where a run's evaluation records go.

``metrics.jsonl`` (one JSON object per evaluation) is the source of truth: sweeps, reports and
resumes read it. With ``config.tensorboard`` (the default) the same numbers also go to TensorBoard
event files in ``<workdir>/tensorboard/``, through tensorboardX, to watch a run live::

    tensorboard --logdir /tmp/sweeps/ablation   # every run of a sweep, side by side

A resumed run appends its redone evaluations to a new event file; TensorBoard shows the last
value written for a step.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

EVENTS_DIR = "tensorboard"


class MetricWriter:
  """Appends records to ``<workdir>/metrics.jsonl`` and, when enabled and tensorboardX is
  installed, writes their numbers as TensorBoard scalars (tag = the record's key)."""

  def __init__(self, workdir, tensorboard: bool = True):
    self.workdir = pathlib.Path(workdir)
    self.path = self.workdir / "metrics.jsonl"
    self._events = None
    if tensorboard:
      try:
        from tensorboardX import SummaryWriter  # noqa: PLC0415
      except ImportError:  # optional: the JSONL file is what everything reads
        SummaryWriter = None
      if SummaryWriter is not None:
        self._events = SummaryWriter(str(self.workdir / EVENTS_DIR), flush_secs=30)

  def write(self, record: dict[str, Any]) -> None:
    with self.path.open("a") as f:
      f.write(json.dumps(record) + "\n")
    if self._events is not None:
      step = int(record["step"])
      for key, value in record.items():
        if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
          self._events.add_scalar(key, value, step)
      self._events.flush()

  def close(self) -> None:
    if self._events is not None:
      self._events.close()
      self._events = None
