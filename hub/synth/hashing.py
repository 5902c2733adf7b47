"""Counter-based hashing: splitmix64 vectorised over numpy uint64 arrays.

A random value is `mix(key)` of a key built from (seed, stream, person_id, event index,
field); equal keys give equal values in any process, batch or order. That is what makes the
synthetic output independent of workers and chunk sizes (a stateful RNG stream would not be).
Pure numpy; imports nothing else from SPE.
"""

from __future__ import annotations

import zlib

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_S11, _S32 = np.uint64(11), np.uint64(32)
_MASK64 = (1 << 64) - 1
_INV53 = 1.0 / (1 << 53)
_INV32 = 1.0 / (1 << 32)


def mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 of `x + golden` (a bijection on uint64); returns a new array, `x` unchanged."""
    z = np.add(x, _GOLDEN, dtype=np.uint64)
    # in-place steps keep large batches at one temporary array (memory and speed)
    t = z >> _S30
    z ^= t
    z *= _M1
    np.right_shift(z, _S27, out=t)
    z ^= t
    z *= _M2
    np.right_shift(z, _S31, out=t)
    z ^= t
    return z


def mix_int(x: int) -> int:
    """Scalar splitmix64 in plain Python ints (for deriving stream constants)."""
    z = (x + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def stream(seed: int, name: str) -> int:
    """A 64-bit constant for one (seed, named stream), e.g. ("visit_occurrence") or ("person.sex")."""
    return mix_int(mix_int(seed & _MASK64) ^ zlib.crc32(name.encode()) ^ (len(name) << 40))


def _as_uint64(x: np.ndarray) -> np.ndarray:
    """Same bits as uint64; no copy for int64 input."""
    x = np.asarray(x)
    return x.view(np.uint64) if x.dtype == np.int64 else x.astype(np.uint64)


def row_keys(seed: int, name: str, person_id: np.ndarray, index: np.ndarray | None = None) -> np.ndarray:
    """One key per row from (seed, stream name, person_id[, event index])."""
    base = np.uint64(stream(seed, name))
    h = mix(_as_uint64(person_id) ^ base)
    if index is not None:
        h ^= _as_uint64(index) * _GOLDEN
        h = mix(h)
    return h


def field(keys: np.ndarray, field_no: int) -> np.ndarray:
    """Independent 64-bit values for field number `field_no` of rows with `keys`."""
    return mix(keys ^ np.uint64(mix_int(field_no + 0x51ED27)))


def uniform(h: np.ndarray) -> np.ndarray:
    """Floats in [0, 1) from the top 53 bits."""
    return (h >> _S11).astype(np.float64) * _INV53


def uniform_pair(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two floats in [0, 1) with 32-bit resolution from one hash (halves the hashing work)."""
    hi = (h >> _S32).astype(np.float64) * _INV32
    lo = (h & np.uint64(0xFFFFFFFF)).astype(np.float64) * _INV32
    return hi, lo


def normal(u1: np.ndarray, u2: np.ndarray) -> np.ndarray:
    """Standard normal deviates by Box-Muller from two uniforms in [0, 1)."""
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)

