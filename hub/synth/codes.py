"""Drawing codes from a Zipf-ranked vocabulary while respecting each code's sex and age
rule: rejection with a few fresh hash fields, then a draw among codes without a rule, so a
row never gets a code its person could not have. Pure numpy."""

from __future__ import annotations

import numpy as np

from hub.synth.hashing import field, uniform
from hub.synth.vocab import ANY, FEMALE, MALE, CodeList, pick_lut

ATTEMPTS = 3


def allowed(codes: CodeList, index: np.ndarray, male: np.ndarray, age: np.ndarray) -> np.ndarray:
    sex = codes.sex[index]
    sex_ok = (sex == ANY) | ((sex == MALE) & male) | ((sex == FEMALE) & ~male)
    return sex_ok & (age >= codes.min_age[index]) & (age <= codes.max_age[index])


def draw_codes(codes: CodeList, keys: np.ndarray, first_field: int, male: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Vocabulary index per row; uses fields first_field .. first_field + ATTEMPTS."""
    index = pick_lut(codes.lut, uniform(field(keys, first_field)))
    todo = np.flatnonzero(~allowed(codes, index, male, age))
    for attempt in range(1, ATTEMPTS):
        if todo.size == 0:
            return index
        retry = pick_lut(codes.lut, uniform(field(keys[todo], first_field + attempt)))
        index[todo] = retry
        todo = todo[~allowed(codes, retry, male[todo], age[todo])]
    if todo.size:
        free = pick_lut(codes.free_lut, uniform(field(keys[todo], first_field + ATTEMPTS)))
        index[todo] = codes.free_index[free]
    return index
