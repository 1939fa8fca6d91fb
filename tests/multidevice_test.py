"""Data parallel over a device mesh, sharded embedding tables, and a real two-process run.

Every case runs in fresh interpreters: the device count is fixed when JAX starts
(``XLA_FLAGS=--xla_force_host_platform_device_count=N`` simulates N CPU devices).
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import jax
import numpy as np
from conftest import ROOT

from rocket import train
from rocket.config_util import apply_overrides

STEPS = ["--config.num_train_steps=6", "--config.eval_every_steps=2", "--config.log_every_steps=1"]


def run_main(workdir, devices, *args, env=None, wait=True):
  env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
         "JAX_PLATFORMS": "cpu", **(env or {})}
  cmd = [sys.executable, "-m", "rocket.main", f"--workdir={workdir}", *args]
  p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  if not wait:
    return p
  out, err = p.communicate(timeout=400)
  assert p.returncode == 0, err[-4000:]
  return out, err


def curve(workdir):
  return [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]


def max_param_diff(a, b):
  """Largest parameter difference; a table of ``b`` longer than ``a``'s (the zero rows that pad
  a CTR shared table to a multiple of the mesh's model axis) must be zero there."""
  ra, rb = train.load_run(a), train.load_run(b)

  def diff(x, y):
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape:
      assert x.shape[1:] == y.shape[1:] and not y[x.shape[0]:].any(), (x.shape, y.shape)
      y = y[:x.shape[0]]
    return float(np.max(np.abs(x - y)))

  return max(jax.tree.leaves(jax.tree.map(diff, ra.state.params, rb.state.params)))


def test_one_device_and_eight_devices_train_the_same(tmp_path):
  """Same seed, same global batch: the 8-way split gives the same losses and parameters.

  The WRNs have batch norm: equality also shows that its statistics are taken over the
  global batch (per-device statistics would differ from the single-device run).
  """
  cfg = [f"--config={ROOT / 'configs/cifar10.py'}:tiny", *STEPS]
  run_main(tmp_path / "d1", 1, *cfg)
  _, err = run_main(tmp_path / "d8", 8, *cfg)
  assert "8 x cpu" in err
  c1, c8 = curve(tmp_path / "d1"), curve(tmp_path / "d8")
  assert [r["step"] for r in c1] == [r["step"] for r in c8] == [2, 4, 6]
  for a, b in zip(c1, c8):
    for k in ("train/loss", "train/ce_light", "train/ce_booster", "test/light_loss"):
      np.testing.assert_allclose(a[k], b[k], rtol=2e-4, err_msg=k)
  assert max_param_diff(tmp_path / "d1", tmp_path / "d8") < 2e-3


def test_ctr_trains_with_row_sharded_tables(tmp_path):
  # 201 + 289 + 9 + 4 rows of the fields + 10,001 of the cross = 10,504 rows, which split 4 ways;
  # 10,000 buckets (10,503 rows) do not: with mesh.model=4 the table is padded to 10,504
  for buckets, rows in ((10001, 10504), (10000, 10503)):
    wd = tmp_path / str(buckets)
    cfg = [f"--config={ROOT / 'configs/ctr_frappe.py'}:tiny", f"--config.features.cross_buckets={buckets}",
           *STEPS]
    run_main(wd / "d1", 1, *cfg)
    run_main(wd / "d8", 8, *cfg, "--config.mesh.data=2", "--config.mesh.model=4")
    shapes = [train.load_run(wd / d).state.params["shared"]["embedding"]["fields"]["embedding"].shape
              for d in ("d1", "d8")]
    assert [s[0] for s in shapes] == [rows, -(-rows // 4) * 4]
    c1, c8 = curve(wd / "d1"), curve(wd / "d8")
    for a, b in zip(c1, c8):
      np.testing.assert_allclose(a["train/loss"], b["train/loss"], rtol=1e-4)
      np.testing.assert_allclose(a["test/light_auc"], b["test/light_auc"], atol=1e-3)
    assert max_param_diff(wd / "d1", wd / "d8") < 1e-4
  # the padded table is another architecture: resuming the 1-device run under mesh.model=4 is refused
  p = run_main(wd / "d1", 8, *cfg, "--config.mesh.data=2", "--config.mesh.model=4",
               "--config.num_train_steps=8", wait=False)
  _, err = p.communicate(timeout=400)
  assert p.returncode != 0 and "row_multiple" in err.strip().splitlines()[-1], err[-2000:]


def test_sharded_embedding_lookup_equals_unsharded():
  script = textwrap.dedent("""
      import jax, jax.numpy as jnp, numpy as np, ml_collections
      from jax.sharding import PartitionSpec as P
      from rocket import train
      from rocket.ctr.embeddings import default_embedding_config
      from rocket.ctr.models import CTRRocketNet, NetSpec
      from rocket.ctr.task import CTRTask
      assert jax.device_count() == 8
      cfg = ml_collections.ConfigDict(dict(mesh=dict(data=1, model=8)))
      mesh = train.make_mesh(cfg)
      model = CTRRocketNet(light=NetSpec("mlp", (8,)), booster=NetSpec("mlp", (16,), 1),
                           base_vocab_sizes=(64, 1000, 8), emb_cfg=ml_collections.FrozenConfigDict(
                               default_embedding_config()), crosses=((0, 1),), cross_buckets=4096)
      import optax
      state = train.init_state(model, optax.adam(1e-3), (3,), 0, mesh, jnp.int32, CTRTask().row_sharded)
      tables = state.params["shared"]["embedding"]
      # the 4 fields' rows (64 + 1000 + 8 + 4096 = 8 x 646) in one table, split over `model`
      assert list(tables) == ["fields"] and tables["fields"]["embedding"].sharding.spec == P("model", None)
      mu = state.opt_state[0].mu["shared"]["embedding"]["fields"]["embedding"]
      assert mu.sharding.spec == P("model", None)
      shard_rows = {s.data.shape[0] for s in tables["fields"]["embedding"].addressable_shards}
      assert shard_rows == {646}, shard_rows
      ids = jnp.asarray(np.random.default_rng(0).integers(0, 7, (32, 3)), jnp.int32)
      f = jax.jit(lambda p, x: model.apply({"params": p}, x))
      sharded = f(state.params, ids)
      local = jax.device_get(state.params)
      plain = model.apply({"params": local}, np.asarray(ids))
      for n in ("light", "booster"):
        np.testing.assert_allclose(np.asarray(sharded["logits"][n]), np.asarray(plain["logits"][n]),
                                   rtol=1e-6, atol=1e-6)
      emb = jax.jit(lambda p, x: model.apply({"params": p}, x, method=lambda m, i: m.shared(m.all_ids(i))[0]))
      np.testing.assert_array_equal(np.asarray(emb(state.params, ids)), np.asarray(
          model.apply({"params": local}, np.asarray(ids), method=lambda m, i: m.shared(m.all_ids(i))[0])))
      print("ok")
  """)
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
  res = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
  assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-4000:]


def test_shared_and_per_field_tables_row_sharded_over_two_devices():
  """qr keeps the two big fields apart: the shared table of the others, its int8 export and the
  per-field tables split over a 2-device ``model`` axis when their rows divide it, and every
  lookup equals the unsharded one."""
  script = textwrap.dedent("""
      import jax, jax.numpy as jnp, numpy as np, ml_collections, optax
      from jax.sharding import PartitionSpec as P
      from rocket import train
      from rocket.ctr.embeddings import default_embedding_config, quantize_int8
      from rocket.ctr.models import CTRRocketNet, NetSpec
      from rocket.ctr.task import CTRTask
      assert jax.device_count() == 2
      mesh = train.make_mesh(ml_collections.ConfigDict(dict(mesh=dict(data=1, model=2))))
      rule = CTRTask().row_sharded

      def build(int8):
        cfg = dict(default_embedding_config(), rows="qr", buckets=512, int8=int8)
        return CTRRocketNet(light=NetSpec("deepfm", (8,)), booster=NetSpec("mlp", (16,)),
                            base_vocab_sizes=(64, 1000, 6), emb_cfg=ml_collections.FrozenConfigDict(cfg),
                            crosses=((0, 1),), cross_buckets=4097)
      model = build(False)
      state = train.init_state(model, optax.adam(1e-3), (3,), 0, mesh, jnp.int32, rule)
      spec = lambda t: jax.tree.map(lambda x: x.sharding.spec, t)
      emb = state.params["shared"]["embedding"]
      # fields 0 and 2 (64 + 6 rows) share a table; 1000 and the 4097-row cross are qr (512 rows +
      # 2 and 9 quotient rows): an odd row count stays replicated
      split, whole = {"embedding": P("model", None)}, {"embedding": P()}
      assert spec(emb) == {"fields": split, "field_1": {"rem": split, "quo": split},
                           "field_3": {"rem": split, "quo": whole}}, spec(emb)
      assert {s.data.shape[0] for s in emb["fields"]["embedding"].addressable_shards} == {35}
      # the deepfm's per-feature linear weights: a [70, 1] shared table, split too
      assert spec(state.params["light"]["head"]["linear"]["fields"]) == split
      assert spec(state.opt_state[0].mu["shared"]["embedding"]["fields"]) == split
      ids = jnp.asarray(np.random.default_rng(0).integers(0, 6, (32, 3)), jnp.int32)
      local = jax.device_get(state.params)
      for m, params, local_params in ((model, state.params, local),
                                      (build(True), None, quantize_int8(local))):
        if params is None:  # int8: q and scale of the shared table are split like the table
          sh = train.state_shardings(jax.tree.map(jnp.asarray, local_params), mesh, rule)
          params = jax.device_put(local_params, sh)
          assert spec(params["shared"]["embedding"]["fields"]) == {"q": P("model", None),
                                                                   "scale": P("model", None)}
        sharded = jax.jit(lambda p, x: m.apply({"params": p}, x))(params, ids)
        plain = m.apply({"params": local_params}, np.asarray(ids))
        for n in ("light", "booster"):
          np.testing.assert_allclose(np.asarray(sharded["logits"][n]), np.asarray(plain["logits"][n]),
                                     rtol=1e-6, atol=1e-6)
      # 65 + 6 = 71 rows do not divide 2: row_multiple=2 (what build_ctr_model sets from
      # mesh.model=2) ends the table in one zero row, and it splits
      cfg = dict(default_embedding_config(), rows="qr", buckets=512, row_multiple=2)
      odd = CTRRocketNet(light=NetSpec("mlp", (8,)), booster=None, base_vocab_sizes=(65, 1000, 6),
                         emb_cfg=ml_collections.FrozenConfigDict(cfg))
      state = train.init_state(odd, optax.adam(1e-3), (3,), 0, mesh, jnp.int32, rule)
      table = state.params["light"]["embedding"]["fields"]["embedding"]
      assert table.shape == (72, 16) and table.sharding.spec == P("model", None)
      assert not np.asarray(table)[71:].any() and np.asarray(table)[:71].all()
      sharded = jax.jit(lambda p, x: odd.apply({"params": p}, x))(state.params, ids)
      plain = odd.apply({"params": jax.device_get(state.params)}, np.asarray(ids))
      np.testing.assert_allclose(np.asarray(sharded["logits"]["light"]),
                                 np.asarray(plain["logits"]["light"]), rtol=1e-6, atol=1e-6)
      print("ok")
  """)
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
  res = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
  assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-4000:]


def test_a_stack_split_over_two_devices_equals_separate_runs(tmp_path):
  """Two stacked runs (different seeds and hint weights), one per device, each equal to its own
  single-device rocket.main run; every device holds one run's state only."""
  script = textwrap.dedent(f"""
      import jax, pathlib
      from rocket import stacked
      from rocket.config_util import load_config
      config = load_config("configs/cifar10.py:tiny", method="rocket", batch_size=64, num_train_steps=16,
                           eval_every_steps=8, eval_batch_size=100, data_seed=0,
                           **{{"synthetic.image_size": 16}})
      out = pathlib.Path({str(tmp_path)!r})
      stack = stacked.Stack(config, [0, 3], [out / "stack0", out / "stack3"],
                            per_run=[{{}}, {{"hint.weight": 0.3}}], devices=2)
      leaf = jax.tree.leaves(stack.states.params)[0]
      assert {{s.data.shape[0] for s in leaf.addressable_shards}} == {{1}}, leaf.sharding
      assert len(leaf.sharding.device_set) == 2
      stack.close()
      finals = stacked.train_stack(config, [0, 3], [out / "stack0", out / "stack3"],
                                   per_run=[{{}}, {{"hint.weight": 0.3}}], devices=2)
      assert [f["stack_devices"] for f in finals] == [2, 2]
      print("ok")
  """)
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
  res = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=400)
  assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-4000:]
  from stacked_test import assert_same_run, tiny  # noqa: PLC0415

  for s, o in ((0, {}), (3, {"hint.weight": 0.3})):
    config = apply_overrides(tiny(num_train_steps=16, eval_every_steps=8), {"seed": s, **o})
    train.train_and_evaluate(config, tmp_path / f"single{s}")
    assert_same_run(tmp_path / f"single{s}", tmp_path / f"stack{s}", rtol=5e-3)


def free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_with_jax_distributed_agree(tmp_path):
  """Two processes x 2 CPU devices (Gloo collectives) = one 4-device run, parameters equal."""
  cfg = [f"--config={ROOT / 'configs/cifar10.py'}:tiny", *STEPS]
  port = free_port()
  procs = [run_main(tmp_path / "mp", 2, *cfg, f"--coordinator_address=127.0.0.1:{port}",
                    "--num_processes=2", f"--process_id={i}", wait=False) for i in range(2)]
  outs = [p.communicate(timeout=400) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-4000:]
  assert "params_fingerprint" in outs[0][0] and "params_fingerprint" not in outs[1][0]  # process 0 prints
  final0 = json.loads((tmp_path / "mp" / "final.json").read_text())
  final1 = json.loads((tmp_path / "mp" / "final.process1.json").read_text())
  assert final0["params_fingerprint"] == final1["params_fingerprint"]
  assert final0["device"] == "4 x cpu" and final0["step"] == 6
  run_main(tmp_path / "sp", 4, *cfg)
  for a, b in zip(curve(tmp_path / "mp"), curve(tmp_path / "sp")):
    np.testing.assert_allclose(a["train/loss"], b["train/loss"], rtol=2e-4)
  assert max_param_diff(tmp_path / "mp", tmp_path / "sp") < 2e-3


def test_bad_mesh_and_batch_give_clear_errors(tmp_path):
  cfg = [f"--config={ROOT / 'configs/cifar10.py'}:tiny"]
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
  for extra, msg in ((["--config.mesh.model=3"], "must multiply to the number of devices"),
                     (["--config.batch_size=12"], "multiple of the mesh's data axis")):
    res = subprocess.run([sys.executable, "-m", "rocket.main", f"--workdir={tmp_path / 'x'}", *cfg, *extra],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=200)
    assert res.returncode == 2 and msg in res.stderr, res.stderr[-2000:]
