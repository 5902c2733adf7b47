"""Dates as day numbers since 1970-01-01 (Arrow date32), vectorised; ages in completed years.

Calendar fields come from a lookup table over 1900-2099 (a gather is ~10x faster than
datetime64 casts, and ages are computed for every event row). Pure numpy.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

EPOCH = dt.date(1970, 1, 1)
_FIRST = (dt.date(1900, 1, 1) - EPOCH).days
_LAST = (dt.date(2099, 12, 31) - EPOCH).days


def day_number(d: dt.date) -> int:
    return (d - EPOCH).days


def _ymd_slow(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = np.asarray(days).astype("datetime64[D]")
    y = d.astype("datetime64[Y]")
    m = d.astype("datetime64[M]")
    return (y.astype(np.int64) + 1970, (m - y).astype(np.int64) + 1, (d - m).astype(np.int64) + 1)


_LUT_YEAR, _LUT_MONTH, _LUT_DAY = (a.astype(np.int16) for a in _ymd_slow(np.arange(_FIRST, _LAST + 1)))
_LUT_MONTHDAY = (_LUT_MONTH * 32 + _LUT_DAY).astype(np.int16)


def _in_table(days: np.ndarray) -> bool:
    return days.size == 0 or (int(days.min()) >= _FIRST and int(days.max()) <= _LAST)


def ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(year, month, day) int64 arrays of day numbers."""
    days = np.asarray(days)
    if not _in_table(days):
        return _ymd_slow(days)
    i = days - _FIRST
    return (_LUT_YEAR[i].astype(np.int64), _LUT_MONTH[i].astype(np.int64), _LUT_DAY[i].astype(np.int64))


def age_years(birth_days: np.ndarray, event_days: np.ndarray) -> np.ndarray:
    """Age in completed years on the event day (the birthday itself counts as a year more)."""
    birth_days, event_days = np.asarray(birth_days), np.asarray(event_days)
    if not (_in_table(birth_days) and _in_table(event_days)):
        by, bm, bd = _ymd_slow(birth_days)
        ey, em, ed = _ymd_slow(event_days)
        return ey - by - ((em * 32 + ed) < (bm * 32 + bd))
    b, e = birth_days - _FIRST, event_days - _FIRST
    age = _LUT_YEAR[e].astype(np.int64)
    age -= _LUT_YEAR[b]
    age -= _LUT_MONTHDAY[e] < _LUT_MONTHDAY[b]
    return age
