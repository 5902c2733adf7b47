"""drug_exposure rows: ATC-like codes (Zipf, sex/age rules), days supply and quantity.
Pure numpy."""

from __future__ import annotations

import numpy as np

from hub.synth import vocab
from hub.synth.activity import MAX_PER_PERSON, expected_events
from hub.synth.codes import draw_codes
from hub.synth.events import day_in, event_counts, event_ids, expand
from hub.synth.hashing import field, row_keys, uniform_pair
from hub.synth.person import Persons, ages_at

TABLE = "drug_exposure"
F_DAY, F_SUPPLY, F_CODE = 0, 1, 2
DAYS_SUPPLY = np.array([7, 14, 28, 30, 90], np.int64)
_SUPPLY_LUT = vocab.make_lut(vocab.cdf_of([0.10, 0.15, 0.30, 0.25, 0.20]))
UNITS_PER_DAY = np.array([1.0, 2.0, 0.5, 3.0])
_UNITS_LUT = vocab.make_lut(vocab.cdf_of([0.6, 0.25, 0.1, 0.05]))


def make_drugs(seed: int, persons: Persons) -> dict:
    counts = event_counts(seed, TABLE, persons.person_id, expected_events(persons, TABLE), MAX_PER_PERSON[TABLE])
    owner, index = expand(counts)
    pid = persons.person_id[owner]
    obs_end = persons.obs_end[owner]
    keys = row_keys(seed, TABLE, pid, index)
    u_day, u_refills = uniform_pair(field(keys, F_DAY))
    day = day_in(u_day, persons.obs_start[owner], obs_end)
    code = draw_codes(vocab.atc(), keys, F_CODE, persons.male[owner], ages_at(persons, owner, day))
    u_supply, u_units = uniform_pair(field(keys, F_SUPPLY))
    supply = DAYS_SUPPLY[vocab.pick_lut(_SUPPLY_LUT, u_supply)]
    quantity = supply * UNITS_PER_DAY[vocab.pick_lut(_UNITS_LUT, u_units)]
    return {
        "drug_exposure_id": event_ids(pid, index),
        "person_id": pid,
        "drug_concept_id": vocab.atc().concept_ids[code],
        "drug_exposure_start_date": day,
        "drug_exposure_end_date": np.minimum(day + supply - 1, obs_end),
        "drug_type_concept_id": np.full(len(pid), vocab.PRESCRIPTION_TYPE_CONCEPT, np.int64),
        "days_supply": supply,
        "quantity": quantity,
        "refills": np.floor(u_refills ** 3 * 6).astype(np.int64),
        "drug_source_value": code.astype(np.int32),
    }
