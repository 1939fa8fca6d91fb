"""TensorBoard event files beside metrics.jsonl hold the same numbers."""

import json
import struct

import pytest

from rocket import metric_writers


def read_scalars(events_dir):
  """{tag: [(step, value)]} from every event file (TFRecord framing, tensorboardX's protos)."""
  from tensorboardX.proto import event_pb2

  out = {}
  for path in sorted(events_dir.glob("events.out.tfevents.*")):
    data = path.read_bytes()
    i = 0
    while i < len(data):
      (n,) = struct.unpack("<Q", data[i:i + 8])
      event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
      i += 12 + n + 4
      for v in event.summary.value:
        out.setdefault(v.tag, []).append((event.step, v.simple_value))
  return out


def test_records_go_to_jsonl_and_tensorboard(tmp_path):
  pytest.importorskip("tensorboardX")
  w = metric_writers.MetricWriter(tmp_path)
  w.write({"step": 10, "epoch": 1.0, "test/light_accuracy": 0.5, "train/loss": 2.25, "note": "x"})
  w.write({"step": 20, "epoch": 2.0, "test/light_accuracy": 0.75, "train/loss": 1.5, "note": "y"})
  w.close()
  lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in lines] == [10, 20]
  scalars = read_scalars(tmp_path / metric_writers.EVENTS_DIR)
  assert scalars["test/light_accuracy"] == [(10, 0.5), (20, 0.75)]
  assert scalars["train/loss"] == [(10, 2.25), (20, 1.5)]
  assert "note" not in scalars and "step" not in scalars


def test_tensorboard_off_writes_only_the_jsonl(tmp_path):
  w = metric_writers.MetricWriter(tmp_path, tensorboard=False)
  w.write({"step": 1, "x": 1.0})
  w.close()
  assert (tmp_path / "metrics.jsonl").is_file()
  assert not (tmp_path / metric_writers.EVENTS_DIR).exists()


def test_a_training_run_writes_the_same_numbers_to_tensorboard(tmp_path):
  pytest.importorskip("tensorboardX")
  from rocket import train
  from tests.conftest import load_config

  train.train_and_evaluate(load_config("tiny", num_train_steps=4, eval_every_steps=2), tmp_path)
  lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  scalars = read_scalars(tmp_path / metric_writers.EVENTS_DIR)
  want = [(r["step"], pytest.approx(r["test/light_accuracy"], rel=1e-6)) for r in lines]
  assert scalars["test/light_accuracy"] == want
