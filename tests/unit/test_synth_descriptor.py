"""The synth dataset descriptor classifies every generated column, declares categories
that match the generator's vocabularies, and registers a generated directory."""

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from hub.datasets.descriptor import parse_descriptor
from hub.datasets.registry import add_dataset
from hub.db import make_engine
from hub.synth import vocab
from hub.synth.activity import MAX_PER_PERSON
from hub.synth.measurements import UNITS
from hub.synth.parts import SCHEMAS
from hub.synth.runner import generate
from hub.yamlio import load_yaml_file

DESCRIPTOR = Path(__file__).resolve().parents[2] / "hub/datasets/descriptors/synth.yaml"


@pytest.fixture(scope="module")
def descriptor():
    return parse_descriptor(load_yaml_file(DESCRIPTOR, "dataset descriptor"))


def test_every_column_is_classified_explicitly(descriptor):
    assert descriptor.name == "synth" and descriptor.national_id_column == "person_source_value"
    assert set(descriptor.tables) == set(SCHEMAS)
    for table, schema in SCHEMAS.items():
        assert set(descriptor.tables[table]["columns"]) == set(schema.names), table
    assert descriptor.column("person", "person_source_value").cls == "direct_identifier"
    assert all(descriptor.column(t, "person_id").cls == "person_key" for t in SCHEMAS)


def test_declared_categories_match_the_generator(descriptor):
    col = descriptor.column
    assert set(col("person", "gender_concept_id").categories) == set(vocab.GENDER_CONCEPTS)
    assert tuple(col("person", "region").categories) == vocab.REGIONS
    assert tuple(col("person", "location_id").categories) == tuple(range(1, len(vocab.REGIONS) + 1))
    assert tuple(col("visit_occurrence", "visit_concept_id").categories) == tuple(sorted(vocab.VISIT_CONCEPTS))
    assert set(col("measurement", "measurement_concept_id").categories) == {t.concept_id for t in vocab.MEASUREMENTS}
    assert set(col("measurement", "unit_concept_id").categories) == {t.unit_concept_id for t in vocab.MEASUREMENTS}
    assert tuple(col("measurement", "unit_source_value").categories) == UNITS
    assert tuple(col("death", "cause_source_value").categories) == vocab.DEATH_CAUSES
    low, high = col("measurement", "value_as_number").bounds
    assert all(low <= t.low and t.high <= high for t in vocab.MEASUREMENTS)
    for table, cap in MAX_PER_PERSON.items():
        assert descriptor.tables[table]["max_per_person"] == cap


def test_generated_data_stays_within_declared_categories_bounds_and_caps(descriptor, tmp_path):
    generate(tmp_path / "data", 1500, 4)
    for table in SCHEMAS:
        df = pq.read_table(tmp_path / "data" / f"{table}.parquet").to_pandas()
        per_person = df.groupby("person_id").size().max() if len(df) else 0
        assert per_person <= descriptor.tables[table]["max_per_person"], table
        for name, info in descriptor.tables[table]["columns"].items():
            values = df[name].dropna()
            if info.categories is not None:
                assert set(values) <= set(info.categories), (table, name)
            if info.bounds is not None:
                assert values.between(*info.bounds).all(), (table, name)


def test_generated_directory_registers_as_a_parquet_dataset(tmp_path):
    generate(tmp_path / "data", 300, 1)
    engine = make_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    dataset, outcome = add_dataset(engine, name="synth", kind="parquet", source=tmp_path / "data",
                                   descriptor_path=DESCRIPTOR, actor="test")
    assert outcome == "added"
    tables = dataset.schema["tables"]
    assert set(tables) == set(SCHEMAS)   # synth.json is not mistaken for a table
    person = tables["person"]["columns"]
    assert person["person_source_value"]["class"] == "direct_identifier"
    assert person["region"]["type"] == "VARCHAR" and person["birth_datetime"]["type"] == "DATE"
