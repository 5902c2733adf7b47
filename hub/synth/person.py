"""Persons: sex, birth date, region, national-ID-like source value, observation period and
death. Everything later tables need about a person is recomputed from (seed, person_id), so
a batch of persons can be generated anywhere. Pure numpy."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from hub.synth import vocab
from hub.synth.dates import age_years, day_number, ymd
from hub.synth.events import day_in
from hub.synth.hashing import field, row_keys, stream, uniform, uniform_pair

BIRTH_FIRST = day_number(dt.date(1925, 1, 1))
BIRTH_LAST = day_number(dt.date(2022, 12, 31))
WINDOW_FIRST = day_number(dt.date(2005, 1, 1))   # data window of the synthetic registry
WINDOW_LAST = day_number(dt.date(2024, 12, 31))
MALE_SHARE = 0.49
NATIONAL_SERIAL_DIGITS = 7
_SERIAL_MOD = 10 ** NATIONAL_SERIAL_DIGITS
_SERIAL_MULT = 7_340_033  # coprime to 10**7: the serial is a bijection of person_id below 10**7

F_SEX, F_BIRTH, F_REGION, F_OBS, F_DEATH, F_DEATH_DAY = range(6)


@dataclass(frozen=True)
class Persons:
    person_id: np.ndarray      # int64, 1-based, global
    male: np.ndarray           # bool
    birth_days: np.ndarray     # int64 day numbers
    region: np.ndarray         # int64 index into vocab.REGIONS
    obs_start: np.ndarray      # int64 day numbers
    obs_end: np.ndarray        # death day for the deceased
    dead: np.ndarray           # bool
    death_cause: np.ndarray    # int64 index into vocab.DEATH_CAUSES (meaningful where dead)

    def __len__(self) -> int:
        return len(self.person_id)


def make_persons(seed: int, person_id: np.ndarray) -> Persons:
    keys = row_keys(seed, "person", person_id)
    u_sex, u_region = uniform_pair(field(keys, F_SEX))
    male = u_sex < MALE_SHARE
    # more recent births are more frequent (a younger than uniform age pyramid)
    u_birth = uniform(field(keys, F_BIRTH))
    birth = BIRTH_LAST - np.floor(u_birth ** 1.25 * (BIRTH_LAST - BIRTH_FIRST)).astype(np.int64)
    region = vocab.pick(vocab.cdf_of(vocab.REGION_WEIGHTS), u_region)

    u_start, u_end = uniform_pair(field(keys, F_OBS))
    start = np.maximum(birth, WINDOW_FIRST + np.floor(u_start ** 2 * 12 * 365.25).astype(np.int64))
    end = np.maximum(start, WINDOW_LAST - np.floor(u_end ** 4 * 8 * 365.25).astype(np.int64))

    # death risk rises with age at the end of observation; a few per cent overall
    u_death, u_cause = uniform_pair(field(keys, F_DEATH))
    age_end = (end - birth) / 365.25
    risk = 0.003 + 0.22 * np.clip((age_end - 45.0) / 55.0, 0.0, 1.0) ** 2
    dead = u_death < risk
    death_day = day_in(uniform(field(keys, F_DEATH_DAY)), start, end)
    end = np.where(dead, death_day, end)
    cause = vocab.pick(vocab.cdf_of([1.0 / (i + 1) for i in range(len(vocab.DEATH_CAUSES))]), u_cause)
    return Persons(person_id, male, birth, region, start, end, dead, cause)


def ages_at(persons: Persons, owner: np.ndarray, days: np.ndarray) -> np.ndarray:
    return age_years(persons.birth_days[owner], days)


def national_ids(seed: int, persons: Persons) -> np.ndarray:
    """`YYMMDD-SSSSSSSC` as an (n, 15) uint8 ASCII array: birth date, a 7-digit serial that is
    unique per person_id below 10**7, and a Luhn check digit over the 13 digits."""
    n = len(persons)
    year, month, day = ymd(persons.birth_days)
    offset = stream(seed, "person.national_id") % _SERIAL_MOD
    serial = ((persons.person_id - 1) % _SERIAL_MOD * _SERIAL_MULT + offset) % _SERIAL_MOD
    digits = np.empty((n, 13), dtype=np.int64)
    for i, (value, width) in enumerate(((year % 100, 2), (month, 2), (day, 2))):
        for j in range(width):
            digits[:, 2 * i + j] = value // 10 ** (width - 1 - j) % 10
    for j in range(NATIONAL_SERIAL_DIGITS):
        digits[:, 6 + j] = serial // 10 ** (NATIONAL_SERIAL_DIGITS - 1 - j) % 10
    check = luhn_check_digit(digits)
    out = np.empty((n, 15), dtype=np.uint8)
    out[:, :6] = digits[:, :6] + 48
    out[:, 6] = ord("-")
    out[:, 7:14] = digits[:, 6:] + 48
    out[:, 14] = check + 48
    return out


def luhn_check_digit(digits: np.ndarray) -> np.ndarray:
    """Luhn check digit of each row of decimal digits (most significant first)."""
    d = digits[:, ::-1].copy()
    doubled = d[:, 0::2] * 2          # rightmost payload digit is doubled (check digit goes after it)
    d[:, 0::2] = doubled - 9 * (doubled > 9)
    return (10 - d.sum(axis=1) % 10) % 10


def luhn_valid(number: str) -> bool:
    """Plain-Python Luhn check of a digit string (for tests and for checking input)."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        v = int(ch)
        if i % 2 == 1:
            v *= 2
            v -= 9 if v > 9 else 0
        total += v
    return total % 10 == 0
