"""visit_occurrence rows; `visit_start_days` recomputes any visit's date from its key, which
is how conditions link to a visit generated elsewhere. Pure numpy."""

from __future__ import annotations

import numpy as np

from hub.synth import vocab
from hub.synth.activity import MAX_PER_PERSON, expected_events
from hub.synth.events import day_in, event_counts, event_ids, expand
from hub.synth.hashing import field, row_keys, uniform, uniform_pair
from hub.synth.person import Persons

TABLE = "visit_occurrence"
F_KIND, F_DAY = 0, 1
_KIND_LUT = vocab.make_lut(vocab.cdf_of(vocab.VISIT_WEIGHTS))


def visit_counts(seed: int, persons: Persons) -> np.ndarray:
    return event_counts(seed, TABLE, persons.person_id, expected_events(persons, TABLE), MAX_PER_PERSON[TABLE])


def visit_start_days(seed: int, person_id: np.ndarray, index: np.ndarray,
                     obs_start: np.ndarray, obs_end: np.ndarray) -> np.ndarray:
    keys = row_keys(seed, TABLE, person_id, index)
    return day_in(uniform(field(keys, F_DAY)), obs_start, obs_end)


def make_visits(seed: int, persons: Persons, counts: np.ndarray) -> dict:
    owner, index = expand(counts)
    pid = persons.person_id[owner]
    start, end_limit = persons.obs_start[owner], persons.obs_end[owner]
    keys = row_keys(seed, TABLE, pid, index)
    day = day_in(uniform(field(keys, F_DAY)), start, end_limit)
    u_kind, u_stay = uniform_pair(field(keys, F_KIND))
    kind = vocab.pick_lut(_KIND_LUT, u_kind)
    # outpatient same day; emergency 0-1 night; inpatient about 4 nights, long tail
    stay = np.where(kind == 1, 1 + np.floor(-np.log1p(-u_stay) * 4.0),
                    np.where(kind == 2, np.floor(u_stay * 2), 0)).astype(np.int64)
    return {
        "visit_occurrence_id": event_ids(pid, index),
        "person_id": pid,
        "visit_concept_id": np.asarray(vocab.VISIT_CONCEPTS, np.int64)[kind],
        "visit_start_date": day,
        "visit_end_date": np.minimum(day + stay, end_limit),
        "visit_type_concept_id": np.full(len(pid), vocab.EHR_TYPE_CONCEPT, np.int64),
        "visit_source_value": kind.astype(np.int32),
    }
