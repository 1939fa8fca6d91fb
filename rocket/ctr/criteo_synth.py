r"""A Criteo-like synthetic click log: seeded, streamed, in the Criteo ``train.txt`` format.

    python -m rocket.ctr.criteo_synth --rows=10000000 --out=/tmp/criteo_synth/train.txt --seed=0
    python -m rocket.main --config=configs/ctr_frappe.py --config.dataset=criteo \
        --config.data_dir=/tmp/criteo_synth --config.features.hash_buckets=1000000 --workdir=/tmp/run

Each line is ``label \t I1..I13 \t C1..C26`` (tab-separated, missing values empty), what
:mod:`rocket.ctr.criteo` reads:

* ``C1..C26``: 8 lowercase hex digits.  A field's values are ranks ``1..V`` drawn from a
  power law ``p(r) ~ r^-s`` (a discretised bounded Pareto, :func:`zipf_ranks`), written as
  ``mix32(r ^ salt)`` (a bijection, so distinct ranks give distinct strings).  ``V``, ``s`` and
  the missing rate of each field (``CAT_FIELDS``) follow the Criteo Kaggle set roughly: three
  fields with under 10 values, seven with over 100k, four with millions.
* ``I1..I13``: heavy-tailed counts, ``floor(mean * (u^(-1/2) - 1))`` (Lomax, shape 2, mean
  ``mean``; I2 shifted by -1 so that negative values occur), capped at 10^9, missing at the
  rates of ``INT_FIELDS``.
* ``label``: Bernoulli of ``sigmoid(logit)``, the click model :class:`ClickModel`: a bias per
  value of ``BIASED`` fields, a rank-4 latent dot product for each pair of ``PAIRS`` (what an FM
  can represent), slopes on ``log1p`` of two numeric fields, and an intercept solved on the first
  ``CALIBRATION_ROWS`` rows so that the positive rate is ``positive_rate`` (Criteo: ~25.6%).

Every random number is a counter-based hash of ``(seed, stream, row)`` (splitmix64), so row
``i`` depends on nothing but ``seed`` and ``i``: any chunking, any start offset and any number
of worker processes give byte-identical text (and, with ``mtime=0`` gzip headers, byte-identical
``.gz`` files).  Memory is ``O(chunk_rows)``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gzip
import math
import pathlib
import sys
import time
from collections.abc import Iterator

import numpy as np

from rocket.ctr import hashing


@dataclasses.dataclass(frozen=True)
class CatField:
  """One categorical field: ``vocab`` values with power-law exponent ``exponent``."""
  name: str
  vocab: int
  exponent: float
  missing: float


@dataclasses.dataclass(frozen=True)
class IntField:
  """One integer field: Lomax counts with mean ``mean``, plus ``shift``."""
  name: str
  mean: float
  missing: float
  shift: int = 0


# Cardinalities as counted on Criteo Kaggle's 45M rows; exponents chosen so that fields with
# millions of values see millions of distinct ones in 10M rows (a flat tail, as in Criteo).
CAT_FIELDS = tuple(CatField(f"C{i + 1}", v, s, m) for i, (v, s, m) in enumerate((
    (1460, 1.2, 0.0), (583, 1.1, 0.0), (10_131_227, 0.9, 0.034), (2_202_608, 0.95, 0.034),
    (305, 1.3, 0.0), (24, 1.5, 0.12), (12_517, 1.1, 0.0), (633, 1.3, 0.0), (3, 2.0, 0.0),
    (93_145, 1.05, 0.0), (5_683, 1.1, 0.0), (8_351_593, 0.9, 0.034), (3_194, 1.1, 0.0),
    (27, 1.5, 0.0), (14_992, 1.1, 0.0), (5_461_306, 0.92, 0.034), (10, 1.8, 0.0), (5_652, 1.1, 0.0),
    (2_173, 1.2, 0.44), (4, 2.0, 0.44), (7_046_547, 0.9, 0.034), (18, 1.6, 0.76), (15, 1.6, 0.0),
    (286_181, 1.0, 0.034), (105, 1.3, 0.44), (142_572, 1.0, 0.44))))
INT_FIELDS = tuple(IntField(f"I{i + 1}", mean, m, shift) for i, (mean, m, shift) in enumerate((
    (3.5, 0.45, 0), (106.0, 0.0, -1), (27.0, 0.21, 0), (7.3, 0.22, 0), (18_538.0, 0.026, 0),
    (116.0, 0.22, 0), (16.3, 0.043, 0), (12.5, 0.0005, 0), (106.0, 0.043, 0), (0.62, 0.45, 0),
    (2.7, 0.043, 0), (1.0, 0.77, 0), (8.2, 0.22, 0))))
INT_CAP = 10**9

# The click model: per-value bias scale of some fields, latent pairs, numeric slopes.
BIASED = {"C1": 0.5, "C2": 0.4, "C6": 0.4, "C9": 0.6, "C14": 0.3, "C17": 0.5, "C20": 0.4,
          "C23": 0.3, "C10": 0.5, "C3": 0.3}
PAIRS = (("C2", "C14"), ("C6", "C17"), ("C1", "C23"), ("C9", "C10"))
PAIR_RANK, PAIR_SCALE = 4, 0.6  # latent width; std of one pair's term
SLOPES = {"I1": 0.3, "I11": -0.2}  # on log1p(max(x, 0)); missing adds nothing
CALIBRATION_ROWS = 100_000

_GAMMA = 0x9E3779B97F4A7C15  # splitmix64 increment
_STREAM_VALUE, _STREAM_MISSING, _STREAM_INT, _STREAM_INT_MISSING = 0, 1, 2, 3
_STREAM_LABEL, _STREAM_BIAS, _STREAM_LATENT = 4, 5, 6


def _splitmix(x: np.ndarray) -> np.ndarray:
  x = x ^ (x >> np.uint64(30))
  x = x * np.uint64(0xBF58476D1CE4E5B9)
  x = x ^ (x >> np.uint64(27))
  x = x * np.uint64(0x94D049BB133111EB)
  return x ^ (x >> np.uint64(31))


def _key(seed: int, *stream: int) -> np.uint64:
  """A 64-bit key per (seed, stream...), itself a splitmix64 chain."""
  k = np.array([seed & (2**64 - 1)], np.uint64)
  with np.errstate(over="ignore"):
    for s in stream:
      k = _splitmix(k + np.uint64(_GAMMA) * np.uint64(s + 1))
  return k[0]


def uniform(seed: int, stream: tuple[int, ...], index: np.ndarray) -> np.ndarray:
  """float64 in [0, 1): a hash of ``(seed, stream, index)``; ``index`` any non-negative ints."""
  with np.errstate(over="ignore"):
    x = _splitmix(np.asarray(index, np.uint64) * np.uint64(_GAMMA) + _key(seed, *stream))
  return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def zipf_ranks(u: np.ndarray, vocab: int, exponent: float) -> np.ndarray:
  """Ranks in ``[1, vocab]`` with ``p(r) ~ r^-exponent``: ``floor`` of a bounded Pareto on
  ``[1, vocab + 1)`` by its inverse CDF (no table, so millions of values cost nothing)."""
  top = vocab + 1.0
  if abs(exponent - 1.0) < 1e-9:
    x = np.exp(u * math.log(top))
  else:
    a = 1.0 - exponent
    x = (u * (top**a - 1.0) + 1.0) ** (1.0 / a)
  return np.clip(np.floor(x), 1, vocab).astype(np.int64)


def hex_values(ranks: np.ndarray, field: int) -> np.ndarray:
  """uint32 values written for ``ranks`` of field ``field`` (a bijection of the rank)."""
  salt = hashing._mix32_int(0xC817E0 + field)
  return hashing.mix32(ranks.astype(np.uint32) ^ np.uint32(salt))


@dataclasses.dataclass
class Rows:
  """A block of generated rows, before formatting."""
  start: int
  labels: np.ndarray  # uint8 [n]
  ints: np.ndarray  # int64 [n, 13]
  int_missing: np.ndarray  # bool [n, 13]
  ranks: np.ndarray  # int64 [n, 26]; 0 = missing
  logits: np.ndarray  # float64 [n], the click model's

  def __len__(self) -> int:
    return len(self.labels)

  @property
  def probs(self) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-self.logits))

  def int_floats(self) -> np.ndarray:
    """float64 [n, 13] with NaN where missing (what ``bucketize_log2`` takes)."""
    return np.where(self.int_missing, np.nan, self.ints.astype(np.float64))


class CriteoSynth:
  """The generator of one seed: ``rows(start, n)`` and ``text(rows)``."""

  def __init__(self, seed: int = 0, positive_rate: float = 0.25):
    if not 0.0 < positive_rate < 1.0:
      raise ValueError(f"positive_rate must be in (0, 1), got {positive_rate}")
    self.seed, self.positive_rate = int(seed), float(positive_rate)
    self._cat = {f.name: j for j, f in enumerate(CAT_FIELDS)}
    self._int = {f.name: j for j, f in enumerate(INT_FIELDS)}
    self.intercept = 0.0
    self.intercept = self._calibrate()

  # ---------------------------------------------------------------- features and labels

  def _features(self, start: int, n: int):
    idx = np.arange(start, start + n, dtype=np.uint64)
    ranks = np.empty((n, len(CAT_FIELDS)), np.int64)
    for j, f in enumerate(CAT_FIELDS):
      ranks[:, j] = zipf_ranks(uniform(self.seed, (_STREAM_VALUE, j), idx), f.vocab, f.exponent)
      if f.missing:
        ranks[uniform(self.seed, (_STREAM_MISSING, j), idx) < f.missing, j] = 0
    ints = np.empty((n, len(INT_FIELDS)), np.int64)
    missing = np.zeros((n, len(INT_FIELDS)), bool)
    for j, f in enumerate(INT_FIELDS):
      u = uniform(self.seed, (_STREAM_INT, j), idx)
      lomax = f.mean * (np.maximum(1.0 - u, 1e-18) ** -0.5 - 1.0)  # shape 2: mean = scale
      ints[:, j] = np.minimum(np.floor(lomax), INT_CAP).astype(np.int64) + f.shift
      if f.missing:
        missing[:, j] = uniform(self.seed, (_STREAM_INT_MISSING, j), idx) < f.missing
    return idx, ranks, ints, missing

  def value_bias(self, field: str, ranks: np.ndarray) -> np.ndarray:
    """The click model's bias of each value (rank) of a ``BIASED`` field (0 where missing)."""
    j = self._cat[field]
    u = uniform(self.seed, (_STREAM_BIAS, j), ranks.astype(np.uint64))
    return np.where(ranks > 0, BIASED[field] * math.sqrt(3.0) * (2.0 * u - 1.0), 0.0)

  def latent(self, pair: int, side: int, ranks: np.ndarray) -> np.ndarray:
    """[n, PAIR_RANK] latent vectors of a pair's side (zeros where missing)."""
    j = self._cat[PAIRS[pair][side]]
    r = ranks.astype(np.uint64)
    # per component std s with s^2 * s^2 * PAIR_RANK = PAIR_SCALE^2
    s = math.sqrt(PAIR_SCALE / math.sqrt(PAIR_RANK)) * math.sqrt(3.0)
    cols = [s * (2.0 * uniform(self.seed, (_STREAM_LATENT, pair, side, j, k), r) - 1.0)
            for k in range(PAIR_RANK)]
    return np.where((ranks > 0)[:, None], np.stack(cols, axis=1), 0.0)

  def logits(self, ranks: np.ndarray, ints: np.ndarray, missing: np.ndarray) -> np.ndarray:
    z = np.full(len(ranks), self.intercept)
    for name in BIASED:
      z += self.value_bias(name, ranks[:, self._cat[name]])
    for p, (a, b) in enumerate(PAIRS):
      z += np.sum(self.latent(p, 0, ranks[:, self._cat[a]]) * self.latent(p, 1, ranks[:, self._cat[b]]),
                  axis=1)
    for name, slope in SLOPES.items():
      j = self._int[name]
      z += np.where(missing[:, j], 0.0, slope * np.log1p(np.maximum(ints[:, j], 0)))
    return z

  def _calibrate(self) -> float:
    """The intercept giving ``positive_rate`` on the first ``CALIBRATION_ROWS`` rows (Newton)."""
    _, ranks, ints, missing = self._features(0, CALIBRATION_ROWS)
    z = self.logits(ranks, ints, missing)
    b = math.log(self.positive_rate / (1.0 - self.positive_rate))
    for _ in range(50):
      p = 1.0 / (1.0 + np.exp(-(z + b)))
      step = (p.mean() - self.positive_rate) / max(float(np.mean(p * (1.0 - p))), 1e-9)
      b -= step
      if abs(step) < 1e-12:
        break
    return float(b)

  def rows(self, start: int, n: int) -> Rows:
    """Rows ``start .. start + n - 1`` (each a function of the seed and its index only)."""
    idx, ranks, ints, missing = self._features(start, n)
    z = self.logits(ranks, ints, missing)
    clicked = uniform(self.seed, (_STREAM_LABEL,), idx) < 1.0 / (1.0 + np.exp(-z))
    return Rows(start, clicked.astype(np.uint8), ints, missing, ranks, z)

  # ---------------------------------------------------------------- text

  @staticmethod
  def text(rows: Rows) -> bytes:
    """The rows as Criteo ``train.txt`` lines.

    Vectorised: every row is a fixed number of little-endian uint32 words (a tab or a sign, or 4
    characters from a table of 4-digit groups / 4-hex-digit groups), 0 bytes meaning "no
    character"; the matrix is flattened and its 0 bytes dropped.
    """
    n, ni, nc = len(rows), len(INT_FIELDS), len(CAT_FIELDS)
    dec_pad, dec, hex4 = _tables()
    w = np.zeros((n, 1 + 4 * ni + 3 * nc + 1), np.uint32)
    w[:, 0] = ord("0") + rows.labels
    x = rows.ints
    ax = np.abs(x).astype(np.uint32)
    hi, mid, lo = ax // 100_000_000, (ax // 10_000) % 10_000, ax % 10_000
    present = ~rows.int_missing
    tab = np.uint32(ord("\t"))
    w[:, 1:1 + 4 * ni:4] = np.where(x < 0, tab | np.uint32(ord("-") << 8), tab)
    w[:, 2:2 + 4 * ni:4] = np.where(present & (hi > 0), dec[hi], 0)
    mid_chars = np.where(hi > 0, dec_pad[mid], np.where(mid > 0, dec[mid], 0))
    w[:, 3:3 + 4 * ni:4] = np.where(present, mid_chars, 0)
    w[:, 4:4 + 4 * ni:4] = np.where(present, np.where((hi > 0) | (mid > 0), dec_pad[lo], dec[lo]), 0)
    c0 = 1 + 4 * ni
    ranks = rows.ranks
    h = np.stack([hex_values(ranks[:, j], j) for j in range(nc)], axis=1)
    w[:, c0:c0 + 3 * nc:3] = tab
    w[:, c0 + 1:c0 + 3 * nc:3] = np.where(ranks > 0, hex4[h >> np.uint32(16)], 0)
    w[:, c0 + 2:c0 + 3 * nc:3] = np.where(ranks > 0, hex4[h & np.uint32(0xFFFF)], 0)
    w[:, -1] = ord("\n")
    flat = w.view(np.uint8).ravel()
    return flat[flat != 0].tobytes()

  def chunks(self, num_rows: int, chunk_rows: int = 100_000, start: int = 0) -> Iterator[bytes]:
    """The text of rows ``start .. start + num_rows - 1`` in chunks of ``chunk_rows`` rows."""
    for s in range(start, start + num_rows, chunk_rows):
      yield self.text(self.rows(s, min(chunk_rows, start + num_rows - s)))


@functools.cache
def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """uint32 words of 4 characters: 0..9999 zero-padded, 0..9999 without leading zeros (0 bytes
  before the first digit), and 0..0xFFFF as 4 lowercase hex digits."""
  v = np.arange(10_000)
  digits = np.stack([(v // 10**k) % 10 for k in (3, 2, 1, 0)], axis=1).astype(np.uint8) + ord("0")
  width = 1 + (v >= 10) + (v >= 100) + (v >= 1000)
  short = np.where(np.arange(4) >= 4 - width[:, None], digits, 0).astype(np.uint8)
  hexdig = np.frombuffer(b"0123456789abcdef", np.uint8)
  h = np.arange(65_536)
  hexes = hexdig[np.stack([(h >> s) & 15 for s in (12, 8, 4, 0)], axis=1)]
  word = lambda a: np.ascontiguousarray(a).view("<u4").ravel()
  return word(digits), word(short), word(hexes)


_WORKER: CriteoSynth | None = None


def _init_worker(seed: int, positive_rate: float) -> None:
  global _WORKER
  _WORKER = CriteoSynth(seed, positive_rate)


def _work(span: tuple[int, int]) -> bytes:
  return _WORKER.text(_WORKER.rows(*span))


def open_output(path: pathlib.Path, gzip_level: int):
  """``path`` for writing bytes; gzipped (header without name or time) when it ends in ``.gz``."""
  if path.suffix == ".gz":
    raw = open(path, "wb")
    return gzip.GzipFile(filename="", mode="wb", compresslevel=gzip_level, fileobj=raw, mtime=0), raw
  return open(path, "wb"), None


def write(path, num_rows: int, seed: int = 0, chunk_rows: int = 100_000, workers: int = 1,
          positive_rate: float = 0.25, gzip_level: int = 1, progress: bool = False) -> dict:
  """Writes ``num_rows`` rows to ``path`` (``.gz``: gzipped); returns sizes and timings."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  t0 = time.perf_counter()
  gen = CriteoSynth(seed, positive_rate)
  setup_s = time.perf_counter() - t0
  spans = [(s, min(chunk_rows, num_rows - s)) for s in range(0, num_rows, chunk_rows)]
  out, raw = open_output(path, gzip_level)
  n_bytes = done = 0
  pool = None
  try:
    if workers > 1:
      import multiprocessing  # noqa: PLC0415

      # spawn: a fork of a process that runs JAX threads (a notebook, the tests) can deadlock
      pool = multiprocessing.get_context("spawn").Pool(workers, _init_worker, (seed, positive_rate))
      texts = pool.imap(_work, spans)  # in order
    else:
      texts = (gen.text(gen.rows(*s)) for s in spans)
    for (_, n), text in zip(spans, texts):
      out.write(text)
      n_bytes += len(text)
      done += n
      if progress:
        el = time.perf_counter() - t0
        print(f"\r{done:,} / {num_rows:,} rows, {done / el:,.0f} rows/s", end="", file=sys.stderr,
              flush=True)
  finally:
    if pool is not None:
      pool.terminate()
    out.close()
    if raw is not None:
      raw.close()
  if progress:
    print(file=sys.stderr)
  total_s = time.perf_counter() - t0
  return {"path": str(path), "rows": num_rows, "seed": seed, "text_bytes": n_bytes,
          "file_bytes": path.stat().st_size, "seconds": total_s, "setup_s": setup_s,
          "rows_per_s": num_rows / max(total_s, 1e-9), "intercept": gen.intercept,
          "workers": workers, "chunk_rows": chunk_rows}


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--rows", type=int, default=10_000_000)
  p.add_argument("--out", required=True, help="train.txt or train.txt.gz (a folder: <folder>/train.txt)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--positive_rate", type=float, default=0.25)
  p.add_argument("--chunk_rows", type=int, default=100_000, help="rows per block (memory; not the output)")
  p.add_argument("--workers", type=int, default=1, help="processes formatting blocks (same output)")
  p.add_argument("--gzip_level", type=int, default=1, help="for .gz outputs")
  p.add_argument("--quiet", action="store_true")
  a = p.parse_args(argv)
  if a.rows < 1 or a.chunk_rows < 1 or a.workers < 1:
    p.error("--rows, --chunk_rows and --workers must be >= 1")
  out = pathlib.Path(a.out)
  if out.is_dir():
    out = out / "train.txt"
  r = write(out, a.rows, a.seed, a.chunk_rows, a.workers, a.positive_rate, a.gzip_level,
            progress=not a.quiet)
  print(f"wrote {r['rows']:,} rows ({r['file_bytes'] / 1e6:,.1f} MB) to {r['path']} in "
        f"{r['seconds']:.1f}s: {r['rows_per_s']:,.0f} rows/s ({r['workers']} worker(s)); "
        f"intercept {r['intercept']:.4f}")
  return r


if __name__ == "__main__":
  main()
