"""Deterministic integer hashing that gives identical results in numpy and jax.numpy.

Serving computes feature crosses in-graph, training may compute them on the host, so
every function that takes ``xp`` runs the same uint32 program under ``xp=np`` and
``xp=jnp`` (also under ``jax.jit``).  The mixer is the "lowbias32" finaliser
(xor-shift, multiply by an odd constant, twice): all arithmetic wraps mod 2**32 and
only the low 32 bits of an integer input are used (jax has no int64 by default).

Nothing here uses Python's ``hash()`` (salted per process): strings are fingerprinted
with BLAKE2b, so ids are stable across processes, machines and Python versions.
"""

from __future__ import annotations

import hashlib

import numpy as np

_M1 = 0x7FEB352D  # lowbias32 multipliers (odd)
_M2 = 0x846CA68B
_CROSS = 0x9E3779B1  # odd (golden-ratio) multiplier that joins the two sides of a cross
_SALT_HASH = 0x85EBCA6B
_SALT_CROSS = 0xC2B2AE35
_MASK = 0xFFFFFFFF


def _mix32_int(v: int) -> int:
  """mix32 on one Python int (used to derive keys from salts)."""
  v &= _MASK
  v ^= v >> 16
  v = (v * _M1) & _MASK
  v ^= v >> 15
  v = (v * _M2) & _MASK
  return v ^ (v >> 16)


def _key(salt: int, domain: int) -> int:
  # Never 0 for the default salt, so that x = 0 does not stay at the mixer's fixed point 0.
  return _mix32_int((int(salt) & _MASK) ^ domain) ^ domain


def _as_u32(x, xp):
  x = xp.asarray(x)
  if x.dtype == xp.uint32:
    return x
  if not (xp.issubdtype(x.dtype, xp.integer) or x.dtype == xp.bool_):
    raise TypeError(f"hashing needs an integer array, got dtype {x.dtype}")
  return x.astype(xp.uint32)  # two's complement wrap: keeps the low 32 bits


def _mix(x, xp):
  x = x ^ (x >> xp.uint32(16))
  x = x * xp.uint32(_M1)
  x = x ^ (x >> xp.uint32(15))
  x = x * xp.uint32(_M2)
  return x ^ (x >> xp.uint32(16))


def mix32(x, xp=np):
  """A bijective avalanche mixer on uint32 (lowbias32); ``x`` is any integer array."""
  if xp is np:
    with np.errstate(over="ignore"):
      return np.asarray(_mix(_as_u32(x, np), np), dtype=np.uint32)
  return _mix(_as_u32(x, xp), xp)


def _bucket(h, num_buckets: int, xp):
  num_buckets = int(num_buckets)
  if not 1 <= num_buckets <= 2**31:
    raise ValueError(f"num_buckets must be in [1, 2**31], got {num_buckets}")
  return (h % xp.uint32(num_buckets)).astype(xp.int32)


def hash_ids(x, num_buckets: int, salt: int = 0, xp=np):
  """int32 ids in ``[0, num_buckets)`` of the integers ``x``; ``salt`` picks an independent hash."""
  key = _key(salt, _SALT_HASH)
  if xp is np:
    with np.errstate(over="ignore"):
      return np.asarray(_bucket(_mix(_as_u32(x, np) ^ np.uint32(key), np), num_buckets, np))
  return _bucket(_mix(_as_u32(x, xp) ^ xp.uint32(key), xp), num_buckets, xp)


def _cross(a, b, xp, key):
  left = _mix(_as_u32(a, xp) ^ xp.uint32(key), xp)
  return _mix(left * xp.uint32(_CROSS) + _as_u32(b, xp), xp)


def cross_ids(a, b, num_buckets: int, salt: int = 0, xp=np):
  """int32 ids in ``[0, num_buckets)`` of the ordered pairs ``(a, b)`` (broadcast together).

  ``mix32(mix32(a ^ k) * C + b)`` with ``k`` derived from ``salt``: order matters, and for a
  fixed ``a`` the map ``b -> hash`` is a bijection before the modulo.  Chain it for triples:
  ``cross_ids(cross_ids(a, b, 2**31), c, n)``.
  """
  key = _key(salt, _SALT_CROSS)
  if xp is np:
    with np.errstate(over="ignore"):
      return np.asarray(_bucket(_cross(a, b, np, key), num_buckets, np))
  return _bucket(_cross(a, b, xp, key), num_buckets, xp)


def _as_bytes(v) -> bytes:
  if isinstance(v, bytes | np.bytes_):
    return bytes(v)
  return str(v).encode("utf-8")


def fingerprint(values, bits: int = 32) -> np.ndarray:
  """Stable BLAKE2b fingerprints of strings (or bytes): uint32 (``bits=32``) or uint64 (``bits=64``).

  Only the unique values are hashed in Python (``np.unique(return_inverse=True)``).
  A str and its UTF-8 bytes get the same fingerprint.
  """
  if bits not in (32, 64):
    raise ValueError(f"bits must be 32 or 64, got {bits}")
  arr = np.asarray(values)
  if arr.dtype.kind not in "USO":
    raise TypeError(f"fingerprint needs str or bytes values, got dtype {arr.dtype}")
  dtype = np.uint32 if bits == 32 else np.uint64
  if arr.size == 0:
    return np.zeros(arr.shape, dtype)
  uniq, inv = np.unique(arr.ravel(), return_inverse=True)
  nbytes = bits // 8
  fps = np.fromiter(
      (int.from_bytes(hashlib.blake2b(_as_bytes(v), digest_size=nbytes).digest(), "little")
       for v in uniq), dtype=dtype, count=len(uniq))
  return fps[inv.ravel()].reshape(arr.shape)


def hash_strings(values, num_buckets: int, salt: int = 0) -> np.ndarray:
  """int32 ids in ``[0, num_buckets)`` of strings/bytes: ``hash_ids(fingerprint(values), ...)``.

  numpy only.  Equal to ``hash_ids(fingerprint(values), num_buckets, salt, xp)``, so a
  serving graph that receives the uint32 fingerprints reproduces the ids exactly.
  """
  return hash_ids(fingerprint(values, 32), num_buckets, salt)
