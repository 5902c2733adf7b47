"""How much happens to a person: expected events per table from years observed and age.
Pure numpy; the rates are calibrated to about 170 rows per person over all tables."""

from __future__ import annotations

import numpy as np

from hub.synth.person import Persons

# mean events per observed year at age factor 1
RATE_PER_YEAR = {
    "visit_occurrence": 1.4,
    "condition_occurrence": 2.45,
    "drug_exposure": 2.8,
    "measurement": 5.15,
}
# hard caps: rows per person never exceed these (declared as max_per_person in the descriptor)
MAX_PER_PERSON = {
    "visit_occurrence": 400,
    "condition_occurrence": 600,
    "drug_exposure": 800,
    "measurement": 999,
}


def expected_events(persons: Persons, table: str) -> np.ndarray:
    years = (persons.obs_end - persons.obs_start + 1) / 365.25
    age_mid = ((persons.obs_start + persons.obs_end) / 2 - persons.birth_days) / 365.25
    age_factor = 0.5 + np.clip(age_mid, 0.0, 90.0) / 60.0
    return RATE_PER_YEAR[table] * years * age_factor
