"""condition_occurrence rows: ICD-10-like codes (Zipf head and long tail, sex/age rules),
mostly dated at one of the person's visits. Pure numpy."""

from __future__ import annotations

import numpy as np

from hub.synth import vocab
from hub.synth.activity import MAX_PER_PERSON, expected_events
from hub.synth.codes import draw_codes
from hub.synth.events import day_in, event_counts, event_ids, expand
from hub.synth.hashing import field, row_keys, uniform_pair
from hub.synth.person import Persons, ages_at
from hub.synth.visits import visit_start_days

TABLE = "condition_occurrence"
F_VISIT, F_END, F_CODE = 0, 1, 2   # F_CODE .. F_CODE + codes.ATTEMPTS
ENDED_SHARE = 0.4


def make_conditions(seed: int, persons: Persons, visit_counts: np.ndarray) -> dict:
    counts = event_counts(seed, TABLE, persons.person_id, expected_events(persons, TABLE), MAX_PER_PERSON[TABLE])
    owner, index = expand(counts)
    pid = persons.person_id[owner]
    obs_start, obs_end = persons.obs_start[owner], persons.obs_end[owner]
    keys = row_keys(seed, TABLE, pid, index)

    u_visit, u_day = uniform_pair(field(keys, F_VISIT))
    n_visits = visit_counts[owner]
    has_visit = n_visits > 0
    visit_index = np.floor(u_visit * n_visits).astype(np.int64)
    # a diagnosis is recorded at one of the person's visits; without visits, any observed day
    day = np.where(has_visit, visit_start_days(seed, pid, visit_index, obs_start, obs_end),
                   day_in(u_day, obs_start, obs_end))

    male = persons.male[owner]
    code = draw_codes(vocab.icd10(), keys, F_CODE, male, ages_at(persons, owner, day))

    u_ended, u_length = uniform_pair(field(keys, F_END))
    ended = u_ended < ENDED_SHARE
    end = np.minimum(day + np.floor(-np.log1p(-u_length) * 30.0).astype(np.int64), obs_end)
    return {
        "condition_occurrence_id": event_ids(pid, index),
        "person_id": pid,
        "condition_concept_id": vocab.icd10().concept_ids[code],
        "condition_start_date": day,
        "condition_end_date": (end, ended),
        "condition_type_concept_id": np.full(len(pid), vocab.EHR_TYPE_CONCEPT, np.int64),
        "visit_occurrence_id": (event_ids(pid, visit_index), has_visit),
        "condition_source_value": code.astype(np.int32),
    }
