"""Fixed vocabularies of the synthetic data: ICD-10-like diagnoses, ATC-like drugs,
measurement types, regions, visit types, causes of death, and the sex/age rules of codes.

The vocabularies do not depend on the seed (only the assignment of codes to persons does), so
every synthetic dataset shares one code list and descriptors can declare categories. Concept
ids of diagnoses and drugs are in the OMOP local range (> 2 000 000 000): they are synthetic,
not standard concepts. Pure data and numpy; imports nothing else from SPE.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from hub.synth.hashing import mix_int

ANY, MALE, FEMALE = 0, 1, 2
MAX_AGE = 200

# (code prefix, sex, min age, max age) in completed years at the event; the first matching
# prefix wins. These make the data plausible and give tests something to check.
CONDITION_RULES = (
    ("O", FEMALE, 15, 50),      # pregnancy, childbirth and the puerperium
    ("Z34", FEMALE, 15, 50),    # supervision of normal pregnancy
    ("P", ANY, 0, 0),           # perinatal conditions: first year of life
    ("Z38", ANY, 0, 0),         # liveborn infant
    ("C61", MALE, 30, MAX_AGE),  # prostate cancer
    ("N40", MALE, 40, MAX_AGE),  # benign prostatic hyperplasia
    ("N41", MALE, 15, MAX_AGE),  # inflammatory diseases of prostate
    ("N42", MALE, 15, MAX_AGE),
    ("C53", FEMALE, 15, MAX_AGE),  # cervix uteri
    ("C54", FEMALE, 15, MAX_AGE),  # corpus uteri
    ("C56", FEMALE, 15, MAX_AGE),  # ovary
    ("N8", FEMALE, 10, MAX_AGE),   # non-inflammatory disorders of female genital tract
    ("N9", FEMALE, 10, MAX_AGE),
    ("R54", ANY, 60, MAX_AGE),     # age-related physical debility
    ("F00", ANY, 40, MAX_AGE),     # dementias
    ("F01", ANY, 40, MAX_AGE),
    ("F03", ANY, 40, MAX_AGE),
    ("M81", ANY, 40, MAX_AGE),     # osteoporosis
)

DRUG_RULES = (
    ("G03A", FEMALE, 12, 55),   # hormonal contraceptives
    ("G04CA", MALE, 40, MAX_AGE),  # alpha blockers for BPH
)

# Most frequent diagnoses first (rank order of the Zipf head), then a generated tail.
ICD_HEAD = (
    "I10", "E11.9", "J06.9", "M54.5", "E78.5", "K21.9", "J45.9", "F32.9", "N39.0", "E66.9",
    "J20.9", "R51", "M17.9", "I25.1", "F41.1", "E03.9", "R10.4", "J02.9", "L20.9", "K59.0",
    "O80", "I48.9", "H10.9", "R05", "M25.5", "Z34.9", "G43.9", "B34.9", "I50.9", "J44.9",
    "N40", "E55.9", "H52.1", "R42", "A09", "K29.7", "M79.1", "D64.9", "L40.0", "F17.2",
    "G47.0", "K80.2", "I63.9", "I21.9", "C50.9", "M81.0", "R54", "F03", "C61", "N95.1",
    "C34.9", "C18.9", "O26.8", "P07.3", "Z38.0", "N80.0", "N41.0", "C53.9", "C56", "O24.4",
)
ICD_TAIL_LETTERS = "ABCDEFGHIJKLMNOPQRSTZ"

ATC_HEAD = (
    "C09AA05", "C10AA05", "A02BC01", "N02BE01", "C07AB07", "A10BA02", "J01CA04", "R03AC02",
    "N06AB06", "B01AC06", "H03AA01", "C03CA01", "M01AE01", "C08CA01", "G03AA07", "R06AE07",
    "C09CA01", "N05BA01", "A11CC05", "B01AF01", "G04CA02", "J01FA10", "N02AX02", "R03BA02",
    "C10AA07", "A10AE04", "N06AB04", "M04AA01", "S01ED51", "D07AC01",
)
ATC_TAIL_GROUPS = "ABCDGHJLMNPRSV"

VISIT_CONCEPTS = (9202, 9201, 9203)          # outpatient, inpatient, emergency room
VISIT_WEIGHTS = (0.80, 0.12, 0.08)
VISIT_SOURCE = ("OP", "IP", "ER")

GENDER_CONCEPTS = (8507, 8532)               # male, female (OMOP Gender)
GENDER_SOURCE = ("M", "F")

# NUTS-3-like codes of a fictional country "ZZ": truncating to 4 or 3 characters gives the
# NUTS-2 and NUTS-1 level, which is what the region generalisation of a permit relies on.
REGIONS = (
    "ZZ111", "ZZ112", "ZZ113", "ZZ121", "ZZ122", "ZZ131", "ZZ132", "ZZ133",
    "ZZ211", "ZZ212", "ZZ221", "ZZ222", "ZZ223", "ZZ231", "ZZ311", "ZZ312",
    "ZZ321", "ZZ322", "ZZ331", "ZZ332", "ZZ411", "ZZ412", "ZZ421", "ZZ422",
)
# unequal populations: a capital region and a long rural tail
REGION_WEIGHTS = tuple(1.0 / (i + 1.5) ** 0.8 for i in range(len(REGIONS)))

DEATH_CAUSES = ("I21.9", "I25.1", "C34.9", "I63.9", "J44.9", "F03", "C18.9", "J18.9", "I50.9", "C50.9",
                "E11.9", "N18.9", "K70.3", "X59", "R99")

CONDITION_CONCEPT_BASE = 2_000_100_000
DRUG_CONCEPT_BASE = 2_000_200_000
EHR_TYPE_CONCEPT = 32817          # "EHR"
PRESCRIPTION_TYPE_CONCEPT = 32838  # "EHR prescription"
LAB_TYPE_CONCEPT = 32856           # "Lab"


@dataclass(frozen=True)
class MeasurementType:
    concept_id: int
    loinc: str
    name: str
    unit: str
    unit_concept_id: int
    mean_male: float
    mean_female: float
    sd: float
    low: float
    high: float
    weight: float
    decimals: int
    grows: bool = False          # scales with age below 18 (height, weight)
    per_year_over_50: float = 0.0  # mean drift per year of age above 50


MEASUREMENTS = (
    MeasurementType(3025315, "29463-7", "body weight", "kg", 9529, 85, 70, 14, 1, 300, 0.12, 1, grows=True),
    MeasurementType(3036277, "8302-2", "body height", "cm", 8582, 178, 165, 7, 40, 230, 0.06, 0, grows=True),
    MeasurementType(3038553, "39156-5", "body mass index", "kg/m2", 9531, 27, 26.5, 4.5, 10, 80, 0.08, 1),
    MeasurementType(3004249, "8480-6", "systolic blood pressure", "mm[Hg]", 8876, 128, 122, 16, 60, 260, 0.14, 0,
                    per_year_over_50=0.4),
    MeasurementType(3012888, "8462-4", "diastolic blood pressure", "mm[Hg]", 8876, 80, 77, 10, 30, 150, 0.14, 0),
    MeasurementType(3027018, "8867-4", "heart rate", "/min", 8541, 72, 76, 11, 25, 220, 0.10, 0),
    MeasurementType(3020891, "8310-5", "body temperature", "Cel", 586323, 36.8, 36.9, 0.45, 33, 43, 0.04, 1),
    MeasurementType(3004410, "4548-4", "hemoglobin A1c", "%", 8554, 5.8, 5.7, 0.9, 3.5, 18, 0.07, 1,
                    per_year_over_50=0.01),
    MeasurementType(3004501, "2345-7", "glucose", "mg/dL", 8840, 106, 102, 24, 30, 600, 0.07, 0),
    MeasurementType(3027114, "2093-3", "cholesterol total", "mg/dL", 8840, 192, 198, 38, 70, 500, 0.06, 0),
    MeasurementType(3016723, "2160-0", "creatinine", "mg/dL", 8840, 1.05, 0.82, 0.22, 0.2, 15, 0.05, 2,
                    per_year_over_50=0.005),
    MeasurementType(3000963, "718-7", "hemoglobin", "g/dL", 8713, 15.0, 13.5, 1.2, 4, 22, 0.05, 1),
    MeasurementType(3019550, "2951-2", "sodium", "mmol/L", 8753, 140, 140, 2.8, 110, 170, 0.02, 0),
)


@dataclass(frozen=True)
class CodeList:
    """A ranked vocabulary with Zipf sampling weights and per-code sex/age rules."""

    codes: tuple[str, ...]
    concept_ids: np.ndarray   # int64
    cdf: np.ndarray           # cumulative Zipf weights over all codes, last == 1
    lut: np.ndarray           # make_lut(cdf)
    free_lut: np.ndarray      # make_lut of the cumulative weights over codes without a rule
    free_index: np.ndarray    # vocabulary index of each unrestricted code
    sex: np.ndarray           # ANY / MALE / FEMALE per code
    min_age: np.ndarray
    max_age: np.ndarray


def _zipf_weights(n: int, exponent: float, offset: float) -> np.ndarray:
    return 1.0 / (np.arange(n, dtype=np.float64) + offset) ** exponent


def _make_code_list(codes: list[str], rules, concept_base: int, exponent: float, offset: float) -> CodeList:
    sex = np.zeros(len(codes), np.int8)
    min_age = np.zeros(len(codes), np.int16)
    max_age = np.full(len(codes), MAX_AGE, np.int16)
    for i, code in enumerate(codes):
        for prefix, s, lo, hi in rules:
            if code.startswith(prefix):
                sex[i], min_age[i], max_age[i] = s, lo, hi
                break
    w = _zipf_weights(len(codes), exponent, offset)
    cdf = np.cumsum(w) / w.sum()
    free = np.flatnonzero((sex == ANY) & (min_age == 0) & (max_age == MAX_AGE))
    fw = w[free]
    return CodeList(
        codes=tuple(codes),
        concept_ids=concept_base + np.arange(len(codes), dtype=np.int64),
        cdf=cdf, lut=make_lut(cdf), free_lut=make_lut(np.cumsum(fw) / fw.sum()), free_index=free.astype(np.int64),
        sex=sex, min_age=min_age, max_age=max_age,
    )


def _tail_order(codes: list[str], salt: int) -> list[str]:
    """A fixed pseudo-random order so the Zipf tail is not alphabetical."""
    import zlib

    return sorted(codes, key=lambda c: mix_int(zlib.crc32(c.encode()) ^ salt))


@lru_cache(maxsize=1)
def icd10() -> CodeList:
    head = list(ICD_HEAD)
    seen = set(head)
    tail = []
    for letter in ICD_TAIL_LETTERS:
        for nn in range(100):
            three = f"{letter}{nn:02d}"
            h = mix_int(ord(letter) * 1000 + nn)
            if h % 10 < 6:  # about 60 % of three-character categories exist
                if three not in seen:
                    tail.append(three)
                for sub in range(int((h >> 8) % 6)):  # 0-5 subcategories
                    code = f"{three}.{sub}"
                    if code not in seen:
                        tail.append(code)
    return _make_code_list(head + _tail_order(tail, 0x1CD), CONDITION_RULES, CONDITION_CONCEPT_BASE,
                           exponent=1.05, offset=2.5)


@lru_cache(maxsize=1)
def atc() -> CodeList:
    head = list(ATC_HEAD)
    seen = set(head)
    tail = []
    letters = "ABCDEFGHJKLMNPX"
    for g in ATC_TAIL_GROUPS:
        for nn in range(1, 17):
            for i in range(14):
                h = mix_int((ord(g) << 16) ^ (nn << 8) ^ i)
                code = f"{g}{nn:02d}{letters[h % 15]}{letters[(h >> 8) % 8]}{1 + (h >> 16) % 40:02d}"
                if code not in seen:
                    seen.add(code)
                    tail.append(code)
    return _make_code_list(head + _tail_order(tail, 0xA7C), DRUG_RULES, DRUG_CONCEPT_BASE,
                           exponent=1.1, offset=2.0)


def cdf_of(weights) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    return np.cumsum(w) / w.sum()


def pick(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index of the category of each uniform `u` under cumulative weights `cdf`."""
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


LUT_BITS = 20


def make_lut(cdf: np.ndarray) -> np.ndarray:
    """Category of each of 2**20 equal slices of [0, 1) (at the slice's midpoint). A gather
    in this table replaces a binary search per row (several times faster for thousands of
    codes); the rarest code here has a probability far above 2**-20."""
    mid = (np.arange(1 << LUT_BITS, dtype=np.float64) + 0.5) / (1 << LUT_BITS)
    return pick(cdf, mid).astype(np.int16 if len(cdf) < 2**15 else np.int32)


def pick_lut(lut: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Category index (int64) of each uniform `u` in [0, 1) through a `make_lut` table."""
    return lut[(u * (1 << LUT_BITS)).astype(np.int64)].astype(np.int64)
