"""Helpers shared by the event generators: per-person counts and their expansion to rows.
Pure numpy."""

from __future__ import annotations

import numpy as np

from hub.synth.hashing import row_keys, field, uniform

# Event ids are person_id * ID_STRIDE + event index: unique, and computable from the key
# alone, so a condition can point at a visit generated in any batch or process.
ID_STRIDE = 1000


def event_counts(seed: int, table: str, person_id: np.ndarray, mean: np.ndarray, cap: int) -> np.ndarray:
    """Events per person: geometric-like (floor of an exponential) with the given means, capped."""
    u = uniform(field(row_keys(seed, table + ".count", person_id), 0))
    counts = np.floor(-np.log1p(-u) * mean)
    return np.minimum(counts, cap).astype(np.int64)


def expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, index): for each event row the position of its person in the batch and its
    0-based index within the person."""
    total = int(counts.sum())
    owner = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    starts = np.cumsum(counts) - counts
    index = np.arange(total, dtype=np.int64) - np.repeat(starts, counts)
    return owner, index


def day_in(u: np.ndarray, first_days: np.ndarray, last_days: np.ndarray) -> np.ndarray:
    """A day in [first, last] (inclusive) for each uniform u."""
    return first_days + np.floor(u * (last_days - first_days + 1)).astype(np.int64)


def event_ids(person_id: np.ndarray, index: np.ndarray) -> np.ndarray:
    return person_id * ID_STRIDE + index
