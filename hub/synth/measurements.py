"""measurement rows: a fixed set of vital signs and lab tests with units and plausible values
(by sex, growing with age in children, drifting with age over 50), about 5 % without a value.
Pure numpy."""

from __future__ import annotations

import numpy as np

from hub.synth import vocab
from hub.synth.activity import MAX_PER_PERSON, expected_events
from hub.synth.events import day_in, event_counts, event_ids, expand
from hub.synth.hashing import field, normal, row_keys, uniform_pair
from hub.synth.person import Persons, ages_at

TABLE = "measurement"
F_KIND, F_VALUE = 0, 1
MISSING_SHARE = 0.05
_T = vocab.MEASUREMENTS
_KIND_LUT = vocab.make_lut(vocab.cdf_of([t.weight for t in _T]))
_CONCEPT = np.array([t.concept_id for t in _T], np.int64)
_UNIT_CONCEPT = np.array([t.unit_concept_id for t in _T], np.int64)
_MEAN_M = np.array([t.mean_male for t in _T])
_MEAN_F = np.array([t.mean_female for t in _T])
_SD = np.array([t.sd for t in _T])
_LOW = np.array([t.low for t in _T])
_HIGH = np.array([t.high for t in _T])
_SCALE = np.array([10.0 ** t.decimals for t in _T])
_GROWS = np.array([t.grows for t in _T])
_DRIFT = np.array([t.per_year_over_50 for t in _T])
# share of the adult value at birth for measures that grow (weight ~3.5 kg, height ~50 cm)
_AT_BIRTH = np.array([0.045 if t.unit == "kg" else 0.3 for t in _T])

UNITS = tuple(dict.fromkeys(t.unit for t in _T))            # dictionary of unit_source_value
_UNIT_INDEX = np.array([UNITS.index(t.unit) for t in _T], np.int32)


def make_measurements(seed: int, persons: Persons) -> dict:
    counts = event_counts(seed, TABLE, persons.person_id, expected_events(persons, TABLE), MAX_PER_PERSON[TABLE])
    owner, index = expand(counts)
    pid = persons.person_id[owner]
    keys = row_keys(seed, TABLE, pid, index)
    u_kind, u_missing = uniform_pair(field(keys, F_KIND))
    u_day, u1 = uniform_pair(field(keys, F_VALUE))
    u2, _ = uniform_pair(field(keys, F_VALUE + 1))
    kind = vocab.pick_lut(_KIND_LUT, u_kind)
    day = day_in(u_day, persons.obs_start[owner], persons.obs_end[owner])
    age = ages_at(persons, owner, day)

    mean = np.where(persons.male[owner], _MEAN_M[kind], _MEAN_F[kind])
    growth = np.where(_GROWS[kind], _AT_BIRTH[kind] + (1 - _AT_BIRTH[kind]) * np.minimum(age, 18) / 18.0, 1.0)
    mean = mean * growth + _DRIFT[kind] * np.maximum(age - 50, 0)
    value = mean + _SD[kind] * growth * normal(u1, u2)
    value = np.clip(value, _LOW[kind], _HIGH[kind])
    value = np.round(value * _SCALE[kind]) / _SCALE[kind]
    return {
        "measurement_id": event_ids(pid, index),
        "person_id": pid,
        "measurement_concept_id": _CONCEPT[kind],
        "measurement_date": day,
        "measurement_type_concept_id": np.full(len(pid), vocab.LAB_TYPE_CONCEPT, np.int64),
        "value_as_number": (value, u_missing >= MISSING_SHARE),
        "unit_concept_id": _UNIT_CONCEPT[kind],
        "measurement_source_value": kind.astype(np.int32),
        "unit_source_value": _UNIT_INDEX[kind],
    }
