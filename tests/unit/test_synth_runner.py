"""`spe synth` output files: byte-identical for a seed whatever the workers and chunk sizes
(here "identical" means: the same SHA-256 for every file in the output directory), one row
group per part, a truthful manifest, and bad requests refused before anything is written."""

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hub.exceptions import InvalidInput
from hub.synth.parts import SCHEMAS
from hub.synth.runner import MANIFEST, assign_tables, generate, plan_parts

PERSONS = 2000
PART = 500
SEED = 99


def digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("synth")
    variants = {
        "w1": dict(workers=1),                       # chunk = part size
        "w1_chunk333": dict(workers=1, chunk_persons=333),
        "w2_chunk128": dict(workers=2, chunk_persons=128),
    }
    results = {}
    for name, kwargs in variants.items():
        results[name] = generate(base / name, PERSONS, SEED, part_persons=PART, **kwargs)
    return base, results


def test_every_file_is_byte_identical_for_workers_and_chunk_sizes(runs):
    base, _ = runs
    reference = digests(base / "w1")
    assert set(reference) == {f"{t}.parquet" for t in SCHEMAS} | {MANIFEST}
    assert digests(base / "w1_chunk333") == reference
    assert digests(base / "w2_chunk128") == reference


def test_a_different_seed_gives_different_files(runs, tmp_path):
    base, _ = runs
    generate(tmp_path / "other", PERSONS, SEED + 1, part_persons=PART)
    assert digests(tmp_path / "other")["measurement.parquet"] != digests(base / "w1")["measurement.parquet"]


def test_one_row_group_per_part_and_plain_string_columns(runs):
    base, results = runs
    parts = len(plan_parts(PERSONS, PART))
    assert parts == 4
    for table, schema in SCHEMAS.items():
        f = pq.ParquetFile(base / "w1" / f"{table}.parquet")
        assert f.schema_arrow == schema  # strings read back as strings, not dictionaries
        if table != "death":
            assert f.metadata.num_row_groups == parts, table
        assert f.metadata.num_rows == results["w1"].rows[table]
    assert pq.read_table(base / "w1" / "person.parquet").column("person_id").to_pylist() == list(range(1, PERSONS + 1))


def test_manifest_records_rows_and_hashes(runs):
    base, results = runs
    manifest = json.loads((base / "w1" / MANIFEST).read_text())
    assert manifest["persons"] == PERSONS and manifest["seed"] == SEED and manifest["part_persons"] == PART
    assert "workers" not in manifest and "seconds" not in json.dumps(manifest)
    files = digests(base / "w1")
    for table, entry in manifest["tables"].items():
        assert entry["sha256"] == files[entry["file"]]
        assert entry["rows"] == results["w1"].rows[table]
    assert results["w1"].total_rows > 100 * PERSONS


def test_part_plan_depends_only_on_persons_and_part_size():
    assert plan_parts(1, 10) == [(1, 2)]
    assert plan_parts(25, 10) == [(1, 11), (11, 21), (21, 26)]
    assert plan_parts(20, 10) == [(1, 11), (11, 21)]


@pytest.mark.parametrize("workers", [1, 2, 3, 7, 64])
def test_table_groups_cover_every_table_once(workers):
    groups = assign_tables(workers)
    assert len(groups) == min(workers, len(SCHEMAS))
    assert sorted(t for g in groups for t in g) == sorted(SCHEMAS)


@pytest.mark.parametrize("kwargs,field", [
    (dict(persons=0), "persons"),
    (dict(persons=-5), "persons"),
    (dict(persons=True), "persons"),
    (dict(persons="10"), "persons"),
    (dict(persons=10_000_001), "persons"),
    (dict(seed=-1), "seed"),
    (dict(workers=0), "workers"),
    (dict(chunk_persons=0), "chunk_persons"),
    (dict(part_persons=0), "part_persons"),
])
def test_bad_numbers_are_refused_before_writing(tmp_path, kwargs, field):
    args = dict(persons=10, seed=1) | kwargs
    with pytest.raises(InvalidInput) as err:
        generate(tmp_path / "out", **args)
    assert err.value.field == field
    assert not (tmp_path / "out").exists()


def test_non_empty_output_needs_force_and_force_never_touches_foreign_files(tmp_path):
    out = tmp_path / "out"
    generate(out, 50, 1)
    before = digests(out)
    with pytest.raises(InvalidInput, match="not empty"):
        generate(out, 50, 2)
    assert digests(out) == before
    generate(out, 50, 2, force=True)  # replaces a previous synthetic dataset
    after = digests(out)
    assert after != before and set(after) == set(before)      # no temporary directory left behind
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="notes.txt"):
        generate(out, 50, 3, force=True)
    assert {k: v for k, v in digests(out).items() if k != "notes.txt"} == after


def test_output_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InvalidInput, match="not a directory"):
        generate(f, 10, 1)
    assert f.read_text() == "x"


def test_single_person_gives_readable_tables(tmp_path):
    result = generate(tmp_path / "one", 1, 5)
    assert result.rows["person"] == 1
    for table in SCHEMAS:
        assert pq.read_table(tmp_path / "one" / f"{table}.parquet").num_rows == result.rows[table]
    assert pq.read_schema(tmp_path / "one" / "death.parquet").field("death_date").type == pa.date32()
