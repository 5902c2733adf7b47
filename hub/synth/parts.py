"""One *part* of the synthetic dataset: the Arrow tables of a fixed range of persons.

`make_part(seed, first_person_id, stop_person_id, chunk_persons)` generates the range in
batches of `chunk_persons` (a memory knob only) and returns one Arrow table per OMOP table
with contiguous (single-chunk) columns, so the bytes Parquet writes cannot depend on the
batching. Columns follow `SCHEMAS`; string columns are dictionary-encoded over the fixed
vocabularies (fast to build and to write; read back as plain strings). Pure: no I/O.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from hub.synth import vocab
from hub.synth.conditions import make_conditions
from hub.synth.drugs import make_drugs
from hub.synth.measurements import UNITS, make_measurements
from hub.synth.person import Persons, make_persons, national_ids
from hub.synth.visits import make_visits, visit_counts
from hub.synth.dates import ymd

_I64, _I32, _F64, _DATE, _STR = pa.int64(), pa.int32(), pa.float64(), pa.date32(), pa.string()

SCHEMAS: dict[str, pa.Schema] = {
    "person": pa.schema([
        ("person_id", _I64), ("person_source_value", _STR), ("gender_concept_id", _I64),
        ("gender_source_value", _STR), ("year_of_birth", _I32), ("month_of_birth", _I32),
        ("day_of_birth", _I32), ("birth_datetime", _DATE), ("location_id", _I64), ("region", _STR),
    ]),
    "observation_period": pa.schema([
        ("observation_period_id", _I64), ("person_id", _I64), ("observation_period_start_date", _DATE),
        ("observation_period_end_date", _DATE), ("period_type_concept_id", _I64),
    ]),
    "visit_occurrence": pa.schema([
        ("visit_occurrence_id", _I64), ("person_id", _I64), ("visit_concept_id", _I64),
        ("visit_start_date", _DATE), ("visit_end_date", _DATE), ("visit_type_concept_id", _I64),
        ("visit_source_value", _STR),
    ]),
    "condition_occurrence": pa.schema([
        ("condition_occurrence_id", _I64), ("person_id", _I64), ("condition_concept_id", _I64),
        ("condition_start_date", _DATE), ("condition_end_date", _DATE), ("condition_type_concept_id", _I64),
        ("visit_occurrence_id", _I64), ("condition_source_value", _STR),
    ]),
    "drug_exposure": pa.schema([
        ("drug_exposure_id", _I64), ("person_id", _I64), ("drug_concept_id", _I64),
        ("drug_exposure_start_date", _DATE), ("drug_exposure_end_date", _DATE), ("drug_type_concept_id", _I64),
        ("days_supply", _I64), ("quantity", _F64), ("refills", _I64), ("drug_source_value", _STR),
    ]),
    "measurement": pa.schema([
        ("measurement_id", _I64), ("person_id", _I64), ("measurement_concept_id", _I64),
        ("measurement_date", _DATE), ("measurement_type_concept_id", _I64), ("value_as_number", _F64),
        ("unit_concept_id", _I64), ("measurement_source_value", _STR), ("unit_source_value", _STR),
    ]),
    "death": pa.schema([
        ("person_id", _I64), ("death_date", _DATE), ("death_type_concept_id", _I64), ("cause_source_value", _STR),
    ]),
}
TABLES = tuple(SCHEMAS)

# string columns: generators give int32 indices into these fixed vocabularies
_DICTIONARIES = {
    ("person", "gender_source_value"): vocab.GENDER_SOURCE,
    ("person", "region"): vocab.REGIONS,
    ("visit_occurrence", "visit_source_value"): vocab.VISIT_SOURCE,
    ("condition_occurrence", "condition_source_value"): None,  # vocab.icd10(), built lazily
    ("drug_exposure", "drug_source_value"): None,              # vocab.atc()
    ("measurement", "measurement_source_value"): tuple(t.loinc for t in vocab.MEASUREMENTS),
    ("measurement", "unit_source_value"): UNITS,
    ("death", "cause_source_value"): vocab.DEATH_CAUSES,
}


# Unique ids and continuous values: Parquet dictionary encoding would only be tried and
# abandoned for them (a third of the encoding time), so it is switched off for these.
NO_DICTIONARY = frozenset({"observation_period_id", "visit_occurrence_id", "condition_occurrence_id",
                           "drug_exposure_id", "measurement_id", "value_as_number"})


def dictionary_columns(table: str) -> list[str]:
    """Columns Parquet should dictionary-encode."""
    return [name for name in SCHEMAS[table].names if name not in NO_DICTIONARY]


def delta_columns(table: str) -> dict[str, str]:
    """Unique, ascending ids: delta encoding makes them ~5x smaller and is faster than plain."""
    return {name: "DELTA_BINARY_PACKED" for name in SCHEMAS[table].names
            if name in NO_DICTIONARY and name != "value_as_number"}


def arrow_schema(table: str) -> pa.Schema:
    """The in-memory (and Parquet writer) schema: string columns over a fixed vocabulary are
    dictionary-encoded; Parquet readers see them as plain strings (`SCHEMAS`)."""
    return pa.schema([pa.field(f.name, pa.dictionary(_I32, _STR)) if (table, f.name) in _DICTIONARIES else f
                      for f in SCHEMAS[table]])


def _dictionary(table: str, column: str) -> pa.Array:
    values = _DICTIONARIES[(table, column)]
    if values is None:
        values = vocab.icd10().codes if table == "condition_occurrence" else vocab.atc().codes
    return pa.array(values, _STR)


def person_columns(seed: int, persons: Persons) -> dict:
    year, month, day = ymd(persons.birth_days)
    return {
        "person_id": persons.person_id,
        "person_source_value": national_ids(seed, persons),
        "gender_concept_id": np.where(persons.male, *vocab.GENDER_CONCEPTS).astype(np.int64),
        "gender_source_value": np.where(persons.male, 0, 1).astype(np.int32),
        "year_of_birth": year, "month_of_birth": month, "day_of_birth": day,
        "birth_datetime": persons.birth_days,
        "location_id": persons.region + 1,
        "region": persons.region.astype(np.int32),
    }


def observation_columns(persons: Persons) -> dict:
    return {
        "observation_period_id": persons.person_id,
        "person_id": persons.person_id,
        "observation_period_start_date": persons.obs_start,
        "observation_period_end_date": persons.obs_end,
        "period_type_concept_id": np.full(len(persons), vocab.EHR_TYPE_CONCEPT, np.int64),
    }


def death_columns(persons: Persons) -> dict:
    dead = persons.dead
    return {
        "person_id": persons.person_id[dead],
        "death_date": persons.obs_end[dead],
        "death_type_concept_id": np.full(int(dead.sum()), vocab.EHR_TYPE_CONCEPT, np.int64),
        "cause_source_value": persons.death_cause[dead].astype(np.int32),
    }


def make_batch(seed: int, person_id: np.ndarray, tables=TABLES) -> dict[str, dict]:
    """Numpy columns of the given tables for the given persons (values, or (values, valid)
    pairs). Each table is computed from (seed, person_id) alone, so any subset can be made
    in any process."""
    persons = make_persons(seed, person_id)
    out = {}
    if "person" in tables:
        out["person"] = person_columns(seed, persons)
    if "observation_period" in tables:
        out["observation_period"] = observation_columns(persons)
    if "visit_occurrence" in tables or "condition_occurrence" in tables:
        n_visits = visit_counts(seed, persons)
        if "visit_occurrence" in tables:
            out["visit_occurrence"] = make_visits(seed, persons, n_visits)
        if "condition_occurrence" in tables:
            out["condition_occurrence"] = make_conditions(seed, persons, n_visits)
    if "drug_exposure" in tables:
        out["drug_exposure"] = make_drugs(seed, persons)
    if "measurement" in tables:
        out["measurement"] = make_measurements(seed, persons)
    if "death" in tables:
        out["death"] = death_columns(persons)
    return out


def _concat(pieces: list):
    if isinstance(pieces[0], tuple):
        return (np.concatenate([p[0] for p in pieces]), np.concatenate([p[1] for p in pieces]))
    return np.concatenate(pieces) if len(pieces) > 1 else pieces[0]


def _arrow_column(table: str, name: str, typ: pa.DataType, data) -> pa.Array:
    values, valid = data if isinstance(data, tuple) else (data, None)
    mask = None if valid is None else ~valid
    if (table, name) in _DICTIONARIES:
        return pa.DictionaryArray.from_arrays(pa.array(values.astype(np.int32, copy=False), _I32, mask=mask),
                                              _dictionary(table, name))
    if name == "person_source_value":  # fixed-width ASCII rows -> string array without Python objects
        n, width = values.shape
        offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
        return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(values)))
    if typ == _DATE:
        return pa.array(values.astype(np.int32, copy=False), _I32, mask=mask).view(_DATE)
    return pa.array(values.astype(typ.to_pandas_dtype(), copy=False), typ, mask=mask)


def make_part(seed: int, first_person_id: int, stop_person_id: int, chunk_persons: int,
              tables=TABLES) -> dict[str, pa.Table]:
    """Arrow tables (of `tables`, in `TABLES` order) of persons first_person_id .. stop_person_id - 1."""
    batches = [make_batch(seed, np.arange(lo, min(lo + chunk_persons, stop_person_id), dtype=np.int64), tables)
               for lo in range(first_person_id, stop_person_id, chunk_persons)]
    out = {}
    for table in TABLES:
        if table not in tables:
            continue
        schema = SCHEMAS[table]
        arrays = [_arrow_column(table, f.name, f.type, _concat([b[table][f.name] for b in batches]))
                  for f in schema]
        out[table] = pa.Table.from_arrays(arrays, schema=arrow_schema(table))
    return out
