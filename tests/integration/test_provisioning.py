"""Provisioning Eunomia for real (DuckDB, Parquet, keys on disk): minimisation guarantees."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import duckdb
import pytest
import yaml

from hub.datasets.example import eunomia_path
from hub.exceptions import SpeError
from hub.optout import import_optouts
from hub.permits.store import PermitStore
from hub.provision.extracts import current_extract
from hub.provision.keys import KeyStore
from hub.provision.run import provision
from tests.conftest import EXAMPLES, REPO

P1, P2 = "DEMO-2026-001", "DEMO-2026-002"


def src(sql, params=()):
    con = duckdb.connect(str(eunomia_path()), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def ext(path, sql):
    con = duckdb.connect()
    try:
        return con.execute(sql.replace("{dir}", str(path))).fetchall()
    finally:
        con.close()


@pytest.fixture
def permits(engine, eunomia):
    store = PermitStore(engine)
    store.apply_file(EXAMPLES / "demo-gibleed.yaml", "op")
    store.apply_file(EXAMPLES / "demo-second.yaml", "op")
    return store


def test_extract_holds_only_allowed_columns_and_no_identifiers(engine, settings, permits):
    r = provision(engine, settings, P1, "op")
    permit = permits.get(P1)
    files = sorted(p.name for p in r.path.iterdir())
    assert files == sorted([f"{t}.parquet" for t in permit.tables] + ["manifest.json"])
    for table, cols in permit.tables.items():
        got = [c[0] for c in ext(r.path, f"DESCRIBE SELECT * FROM '{{dir}}/{table}.parquet'")]
        assert got == list(cols)
    # no direct identifier value appears anywhere in the extract
    ids = {v for (v,) in src("SELECT person_source_value FROM person")}
    raw_person_ids = {str(v) for (v,) in src("SELECT person_id FROM person")}
    for table in permit.tables:
        for (col,) in ext(r.path, f"SELECT column_name FROM (DESCRIBE SELECT * FROM '{{dir}}/{table}.parquet')"):
            values = {str(v) for (v,) in ext(r.path, f'SELECT DISTINCT "{col}" FROM \'{{dir}}/{table}.parquet\'')}
            assert not values & ids, f"{table}.{col} leaks a direct identifier"
            if col == "person_id":
                assert not values & raw_person_ids, "person_id was not pseudonymised"
                assert all(len(v) == 24 for v in values)


def test_pseudonyms_differ_between_permits_and_are_stable_within_one(engine, settings, permits):
    a1 = provision(engine, settings, P1, "op")
    b = provision(engine, settings, P2, "op")
    a2 = provision(engine, settings, P1, "op")
    assert a2.extract_version == a1.extract_version + 1
    # the same person: year-of-birth band, gender and race identical across extracts; link by row order of
    # the source person id is impossible from the extract, so compare the full pseudonym sets instead
    set_a1 = {v for (v,) in ext(a1.path, "SELECT person_id FROM '{dir}/person.parquet'")}
    set_a2 = {v for (v,) in ext(a2.path, "SELECT person_id FROM '{dir}/person.parquet'")}
    set_b = {v for (v,) in ext(b.path, "SELECT person_id FROM '{dir}/person.parquet'")}
    assert set_a1 == set_a2 and len(set_a1) > 2000
    assert not set_a1 & set_b
    # and it is the HMAC with the permit's own key of the source id
    import hmac

    key = KeyStore(settings.keys_dir).permit_key(P1)
    pid = src("SELECT person_id FROM person ORDER BY person_id LIMIT 1")[0][0]
    expected = hmac.new(key, f"person:{pid}".encode(), hashlib.sha256).hexdigest()[:24]
    assert expected in set_a1


def test_opted_out_persons_are_absent(engine, settings, permits, tmp_path):
    before = provision(engine, settings, P1, "op")
    chosen = src("SELECT person_id, person_source_value FROM person ORDER BY person_id LIMIT 7")
    f = tmp_path / "optout.txt"
    f.write_text("national_id\n" + "\n".join(v for _, v in chosen) + "\n")
    assert import_optouts(engine, KeyStore(settings.keys_dir), f, "op") == (7, 7)
    after = provision(engine, settings, P1, "op")
    key = KeyStore(settings.keys_dir).permit_key(P1)
    import hmac

    gone = {hmac.new(key, f"person:{pid}".encode(), hashlib.sha256).hexdigest()[:24] for pid, _ in chosen}
    for table in ("person", "condition_occurrence", "drug_exposure"):
        left = {v for (v,) in ext(after.path, f"SELECT DISTINCT person_id FROM '{{dir}}/{table}.parquet'")}
        assert not left & gone
    was = {v for (v,) in ext(before.path, "SELECT person_id FROM '{dir}/person.parquet'")}
    assert gone <= was
    assert after.manifest["optout"]["entries"] == 7
    assert after.manifest["optout"]["excluded"] == 7
    assert after.manifest["persons"] == before.manifest["persons"] - 7


def test_cohort_and_generalisation_are_respected(engine, settings, permits, tmp_path):
    doc = yaml.safe_load((EXAMPLES / "demo-gibleed.yaml").read_text())
    doc["cohort"] = {"codes": [{"table": "condition_occurrence", "column": "condition_concept_id", "any_of": [192671]}],
                     "age": {"min": 40, "max": 70, "at": "2019-01-01"},
                     "date_window": {"from": "2000-01-01", "to": "2018-12-31"}}
    permits.apply(doc, "op")
    r = provision(engine, settings, P1, "op")
    expected = src("""SELECT count(*) FROM person p WHERE 2019 - year_of_birth BETWEEN 40 AND 70 AND person_id IN
                      (SELECT person_id FROM condition_occurrence WHERE condition_concept_id = 192671
                       AND condition_start_date BETWEEN DATE '2000-01-01' AND DATE '2018-12-31')""")[0][0]
    assert 0 < expected < 2694
    assert r.manifest["persons"] == expected
    assert ext(r.path, "SELECT count(*) FROM '{dir}/person.parquet'")[0][0] == expected
    (lo, hi), = ext(r.path, "SELECT min(condition_start_date), max(condition_start_date) FROM '{dir}/condition_occurrence.parquet'")
    assert str(lo) >= "2000-01-01" and str(hi) <= "2018-12-31"
    # year_of_birth banded by 5; condition dates truncated to the month
    assert ext(r.path, "SELECT count(*) FROM '{dir}/person.parquet' WHERE year_of_birth % 5 <> 0")[0][0] == 0
    assert ext(r.path, "SELECT count(*) FROM '{dir}/condition_occurrence.parquet' WHERE day(condition_start_date) <> 1")[0][0] == 0
    # per-person date shift: within ±14 days and the same for every date of one person
    import hmac

    key = KeyStore(settings.keys_dir).permit_key(P1)
    pseudo = {hmac.new(key, f"person:{pid}".encode(), hashlib.sha256).hexdigest()[:24]: pid
              for (pid,) in src("SELECT person_id FROM person")}
    shifted = ext(r.path, "SELECT person_id, list(drug_exposure_start_date ORDER BY drug_exposure_start_date) "
                          "FROM '{dir}/drug_exposure.parquet' GROUP BY 1")
    original = dict(src("SELECT person_id, list(drug_exposure_start_date ORDER BY drug_exposure_start_date) "
                        "FROM drug_exposure WHERE drug_exposure_start_date BETWEEN DATE '2000-01-01' AND DATE '2018-12-31' "
                        "GROUP BY 1"))
    nonzero = 0
    for p, dates in shifted:
        deltas = {(a - b).days for a, b in zip(dates, original[pseudo[p]])}
        assert len(deltas) == 1 and abs(next(iter(deltas))) <= 14
        nonzero += next(iter(deltas)) != 0
    assert nonzero > len(shifted) // 2
    k = r.manifest["k_anonymity"]
    assert k["quasi_identifiers"] == ["gender_concept_id", "year_of_birth", "race_concept_id"]
    assert k["records"] == expected and k["smallest_class"] >= 1


def test_manifest_hashes_equal_files(engine, settings, permits):
    r = provision(engine, settings, P1, "op")
    manifest = json.loads((r.path / "manifest.json").read_text())
    for name, t in manifest["tables"].items():
        data = (r.path / t["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == t["sha256"]
        assert ext(r.path, f"SELECT count(*) FROM '{{dir}}/{t['file']}'")[0][0] == t["rows"]
        # whose row it is: the column the egress checks trace provenance queries to
        assert t["person_key"] == "person_id" and t["persons"] == ext(
            r.path, f"SELECT count(DISTINCT person_id) FROM '{{dir}}/{t['file']}'")[0][0]
    assert manifest["permit_version"] == 1
    from hub.datasets.registry import get_dataset

    assert manifest["source_fingerprint"] == get_dataset(engine, "eunomia").fingerprint
    assert current_extract(engine, P1)["extract_version"] == r.extract_version


def test_failed_provisioning_leaves_previous_extract(engine, settings, tmp_path):
    """A source file vanishes after registration: the run fails midway, the old extract stays."""
    from hub.datasets.registry import add_dataset

    srcdir = tmp_path / "parquet-src"
    srcdir.mkdir()
    for table in ("person", "condition_occurrence", "drug_exposure"):
        src(f"COPY {table} TO '{srcdir / (table + '.parquet')}' (FORMAT parquet)")
    descriptor = yaml.safe_load((REPO / "hub/datasets/descriptors/eunomia.yaml").read_text())
    descriptor["tables"] = {t: descriptor["tables"][t] for t in ("person", "condition_occurrence", "drug_exposure")}
    dpath = tmp_path / "d.yaml"
    dpath.write_text(yaml.safe_dump(descriptor))
    add_dataset(engine, name="eunomia", kind="parquet", source=srcdir, descriptor_path=dpath, actor="op")
    PermitStore(engine).apply_file(EXAMPLES / "demo-gibleed.yaml", "op")
    good = provision(engine, settings, P1, "op")
    before = {p.name: p.read_bytes() for p in good.path.iterdir()}
    # tables are written in name order: condition_occurrence is done when drug_exposure breaks
    (srcdir / "drug_exposure.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    with pytest.raises(SpeError) as err:
        provision(engine, settings, P1, "op")
    assert "DuckDB" in str(err.value)
    assert current_extract(engine, P1)["extract_version"] == good.extract_version
    assert sorted(p.name for p in good.path.parent.iterdir()) == [str(good.extract_version)]
    assert {p.name: p.read_bytes() for p in good.path.iterdir()} == before
    (srcdir / "drug_exposure.parquet").unlink()
    with pytest.raises(SpeError) as err:
        provision(engine, settings, P1, "op")
    assert "drug_exposure" in str(err.value)
    assert not list(good.path.parent.glob(".tmp-*"))


def test_killed_provisioning_leaves_previous_extract(settings, tmp_path):
    """SIGKILL a real `spe permit provision` midway: the old extract stays current and intact."""
    env = dict(os.environ, SPE_HOME=str(settings.home), SPE_DB_URL=settings.db_url, SPE_ACTOR="op")
    run = lambda *a: subprocess.run([sys.executable, "-m", "hub.cli", *a], env=env, cwd=REPO,  # noqa: E731
                                    capture_output=True, text=True, check=True)
    synth = tmp_path / "synth"
    subprocess.run([sys.executable, "-m", "hub.cli", "synth", "--persons", "30000", "--out", str(synth),
                    "--seed", "7"], env=env, cwd=REPO, check=True, capture_output=True)
    run("dataset", "add", "synth", "--parquet", str(synth), "--descriptor",
        str(REPO / "hub/datasets/descriptors/synth.yaml"))
    permit = tmp_path / "p.yaml"
    doc = yaml.safe_load((EXAMPLES / "demo-gibleed.yaml").read_text())
    doc.update(dataset="synth", cohort={}, generalise={},
               tables={"person": ["person_id", "year_of_birth"],
                       "condition_occurrence": ["person_id", "condition_source_value", "condition_start_date"],
                       "measurement": ["person_id", "measurement_concept_id", "value_as_number"]})
    permit.write_text(yaml.safe_dump(doc))
    run("permit", "apply", str(permit))
    run("permit", "provision", P1)
    first = settings.extracts_dir / P1 / "1"
    before = {p.name: p.read_bytes() for p in first.iterdir()}
    proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "permit", "provision", P1], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list((settings.extracts_dir / P1).glob(".tmp-*/*.parquet")):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()  # reaps it and closes its pipes
    assert not (settings.extracts_dir / P1 / "2").exists()
    assert {p.name: p.read_bytes() for p in first.iterdir()} == before
    out = run("permit", "show", P1)
    assert json.loads(out.stdout)["id"] == P1
    from hub.db import make_engine

    assert current_extract(make_engine(settings.db_url), P1)["extract_version"] == 1
    # the next run cleans the leftovers and succeeds
    run("permit", "provision", P1)
    assert (settings.extracts_dir / P1 / "2" / "manifest.json").exists()
    assert not list((settings.extracts_dir / P1).glob(".tmp-*"))
