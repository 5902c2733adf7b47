"""The synthetic OMOP generators: plausible, self-consistent tables; sex/age rules of codes
respected (checked with an independent age computation); batching does not change a value."""

import re

import numpy as np
import pandas as pd
import pytest

from hub.synth import vocab
from hub.synth.activity import MAX_PER_PERSON
from hub.synth.parts import SCHEMAS, make_batch, make_part
from hub.synth.person import WINDOW_FIRST, WINDOW_LAST, luhn_valid

PERSONS = 2000
SEED = 20260101


@pytest.fixture(scope="module")
def part():
    tables = make_part(SEED, 1, PERSONS + 1, 700)
    # dictionary-encoded strings cast to the plain schema a Parquet reader sees
    return {name: t.cast(SCHEMAS[name]).to_pandas() for name, t in tables.items()}


def _age(birth: pd.Series, event: pd.Series) -> pd.Series:
    """Completed years, computed independently of hub.synth.dates."""
    b, e = pd.to_datetime(birth), pd.to_datetime(event)
    before = (e.dt.month * 100 + e.dt.day) < (b.dt.month * 100 + b.dt.day)
    return e.dt.year - b.dt.year - before.astype(int)


def _with_person(df, part):
    return df.merge(part["person"][["person_id", "gender_concept_id", "birth_datetime"]], on="person_id")


def test_tables_have_the_declared_columns(part):
    for name, schema in SCHEMAS.items():
        assert list(part[name].columns) == schema.names, name
    assert len(part["person"]) == PERSONS


def test_person_fields_are_consistent(part):
    p = part["person"]
    assert list(p.person_id) == list(range(1, PERSONS + 1))
    assert set(p.gender_concept_id) == {8507, 8532}
    assert ((p.gender_concept_id == 8507) == (p.gender_source_value == "M")).all()
    assert 0.44 < (p.gender_concept_id == 8507).mean() < 0.54
    born = pd.to_datetime(p.birth_datetime)
    assert (born.dt.year == p.year_of_birth).all() and (born.dt.month == p.month_of_birth).all()
    assert (born.dt.day == p.day_of_birth).all()
    assert p.year_of_birth.between(1925, 2022).all()
    assert set(p.region) <= set(vocab.REGIONS) and p.region.nunique() > 15
    assert (p.region.map(vocab.REGIONS.index) + 1 == p.location_id).all()


def test_national_ids_are_unique_well_formed_and_check_digit_valid(part):
    p = part["person"]
    ids = p.person_source_value
    assert ids.is_unique
    assert ids.map(lambda s: re.fullmatch(r"\d{6}-\d{8}", s) is not None).all()
    assert ids.map(lambda s: luhn_valid(s.replace("-", ""))).all()
    yymmdd = pd.to_datetime(p.birth_datetime).dt.strftime("%y%m%d")
    assert (ids.str[:6] == yymmdd).all()
    # a single wrong digit is caught by the check digit
    assert not luhn_valid(ids.iloc[0].replace("-", "")[:-1] + str((int(ids.iloc[0][-1]) + 1) % 10))


def test_observation_periods_and_deaths(part):
    p, op, d = part["person"], part["observation_period"], part["death"]
    days = lambda s: (pd.to_datetime(s) - pd.Timestamp("1970-01-01")).dt.days  # noqa: E731
    assert (op.person_id.values == p.person_id.values).all()
    assert (days(op.observation_period_start_date) >= days(p.birth_datetime)).all()
    assert (op.observation_period_start_date <= op.observation_period_end_date).all()
    assert days(op.observation_period_start_date).between(WINDOW_FIRST, WINDOW_LAST).all()
    assert (days(op.observation_period_end_date) <= WINDOW_LAST).all()
    assert 0.01 < len(d) / PERSONS < 0.08          # a few per cent die
    assert d.person_id.is_unique
    merged = d.merge(op, on="person_id").merge(p, on="person_id")
    assert (merged.death_date == merged.observation_period_end_date).all()   # within, and ends, the period
    assert (merged.death_date >= merged.birth_datetime).all()
    assert (merged.death_date >= merged.observation_period_start_date).all()
    assert set(d.cause_source_value) <= set(vocab.DEATH_CAUSES)


@pytest.mark.parametrize("table,id_column,date_columns", [
    ("visit_occurrence", "visit_occurrence_id", ["visit_start_date", "visit_end_date"]),
    ("condition_occurrence", "condition_occurrence_id", ["condition_start_date", "condition_end_date"]),
    ("drug_exposure", "drug_exposure_id", ["drug_exposure_start_date", "drug_exposure_end_date"]),
    ("measurement", "measurement_id", ["measurement_date"]),
])
def test_events_lie_in_the_observation_period(part, table, id_column, date_columns):
    df = part[table].merge(part["observation_period"], on="person_id")
    assert len(df) == len(part[table]) > PERSONS  # every event belongs to a known person
    assert df[id_column].is_unique
    for column in date_columns:
        dates = df[column].dropna()
        assert (dates >= df.loc[dates.index, "observation_period_start_date"]).all(), column
        assert (dates <= df.loc[dates.index, "observation_period_end_date"]).all(), column
    assert part[table].groupby("person_id").size().max() <= MAX_PER_PERSON[table]


def test_rows_per_person_are_near_the_calibrated_scale(part):
    rows = sum(len(t) for t in part.values())
    assert 120 < rows / PERSONS < 230  # about 170 rows per person (17 M for 100 k)


def test_pregnancy_codes_only_for_women_of_childbearing_age(part):
    c = _with_person(part["condition_occurrence"], part)
    preg = c[c.condition_source_value.str.startswith("O") | c.condition_source_value.str.startswith("Z34")]
    assert len(preg) > 5  # the rule is exercised
    assert (preg.gender_concept_id == 8532).all()
    assert _age(preg.birth_datetime, preg.condition_start_date).between(15, 50).all()


def test_prostate_codes_only_for_men_and_female_codes_only_for_women(part):
    c = _with_person(part["condition_occurrence"], part)
    male_only = c[c.condition_source_value.str.match(r"^(C61|N4[012])")]
    female_only = c[c.condition_source_value.str.match(r"^(C5[346]|N[89])")]
    assert len(male_only) > 5 and len(female_only) > 5
    assert (male_only.gender_concept_id == 8507).all()
    assert (female_only.gender_concept_id == 8532).all()
    assert (_age(male_only.birth_datetime, male_only.condition_start_date) >= 15).all()


def test_age_restricted_codes(part):
    c = _with_person(part["condition_occurrence"], part)
    age = _age(c.birth_datetime, c.condition_start_date)
    perinatal = c.condition_source_value.str.startswith("P") | c.condition_source_value.str.startswith("Z38")
    assert perinatal.sum() > 0 and (age[perinatal] == 0).all()
    elderly = c.condition_source_value.str.match(r"^(R54|F0[013]|M81)")
    assert elderly.sum() > 0 and (age[elderly] >= 40).all()
    d = _with_person(part["drug_exposure"], part)
    contraceptive = d[d.drug_source_value.str.startswith("G03A")]
    assert len(contraceptive) > 0 and (contraceptive.gender_concept_id == 8532).all()


def test_condition_codes_have_a_zipf_head_and_a_long_tail(part):
    c = part["condition_occurrence"]
    counts = c.condition_source_value.value_counts()
    assert counts.index[0] in vocab.ICD_HEAD[:5]
    assert 0.1 < counts.iloc[:10].sum() / len(c) < 0.5
    assert counts.size > 1000 and (counts == 1).sum() > 200   # many rare codes
    assert set(counts.index) <= set(vocab.icd10().codes)
    concept = dict(zip(vocab.icd10().codes, vocab.icd10().concept_ids))
    assert (c.condition_source_value.map(concept) == c.condition_concept_id).all()


def test_conditions_are_dated_at_their_visit(part):
    c = part["condition_occurrence"].dropna(subset=["visit_occurrence_id"])
    v = part["visit_occurrence"][["visit_occurrence_id", "person_id", "visit_start_date"]]
    m = c.merge(v, on="visit_occurrence_id", how="left", suffixes=("", "_visit"))
    assert len(c) > 0.9 * len(part["condition_occurrence"])
    assert m.visit_start_date.notna().all()            # links point at existing visits
    assert (m.person_id == m.person_id_visit).all()    # of the same person
    assert (m.condition_start_date == m.visit_start_date).all()


def test_measurements_have_units_plausible_values_and_some_missing(part):
    m = _with_person(part["measurement"], part)
    assert 0.03 < m.value_as_number.isna().mean() < 0.07
    types = {t.concept_id: t for t in vocab.MEASUREMENTS}
    assert set(m.measurement_concept_id) == set(types)
    for concept_id, g in m.groupby("measurement_concept_id"):
        t = types[concept_id]
        assert (g.unit_source_value == t.unit).all() and (g.unit_concept_id == t.unit_concept_id).all()
        assert (g.measurement_source_value == t.loinc).all()
        values = g.value_as_number.dropna()
        assert values.between(t.low, t.high).all(), t.name
    adults = m[_age(m.birth_datetime, m.measurement_date) >= 18]
    height = adults[adults.measurement_concept_id == 3036277]
    by_sex = height.groupby("gender_concept_id").value_as_number.mean()
    assert 170 < by_sex[8507] < 186 and 158 < by_sex[8532] < 172
    sbp = adults[adults.measurement_concept_id == 3004249].value_as_number
    assert 110 < sbp.mean() < 145


def test_batches_do_not_change_values():
    pid = np.arange(1, 1201, dtype=np.int64)
    whole = make_batch(SEED, pid)
    halves = [make_batch(SEED, pid[:437]), make_batch(SEED, pid[437:])]
    for table, columns in whole.items():
        for name, values in columns.items():
            a, b = halves[0][table][name], halves[1][table][name]
            if isinstance(values, tuple):
                assert np.array_equal(values[0], np.concatenate([a[0], b[0]])), (table, name)
                assert np.array_equal(values[1], np.concatenate([a[1], b[1]])), (table, name)
            else:
                assert np.array_equal(values, np.concatenate([a, b])), (table, name)


def test_seed_changes_the_data():
    a = make_batch(1, np.arange(1, 101))["measurement"]["value_as_number"][0]
    b = make_batch(2, np.arange(1, 101))["measurement"]["value_as_number"][0]
    assert len(a) != len(b) or not np.array_equal(a, b)
