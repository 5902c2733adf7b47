"""The egress DuckDB sandbox (`egress.sandbox`), attacked once, for both of its callers.

Every attack runs three ways: as provenance SQL through the gate (`reexecute`: refused with a
reason), through the sandbox's own `Session.execute`, and directly on a sandbox DuckDB cursor,
bypassing every gate (refused by DuckDB's locked configuration) - on a provenance database and
on a DP database (the one with a scratch catalog). After each attack the same session still
answers a plain query, no security setting changed and no file appeared anywhere. Then: a
runaway query is interrupted, a query that does not fit in memory spills to the private
directory instead of failing, the pool is bounded, and the manifest reader refuses files
outside the extract.
"""

from __future__ import annotations

import json
import os
import stat
import threading

import duckdb
import pyarrow as pa
import pytest

from egress.exceptions import ExtractUnavailable, ProvenanceLimit, ProvenanceRefused, SandboxLimit, SandboxRefused
from egress.provenance import reexecute, verify_provenance
from egress.sandbox import SandboxPool, SandboxSettings, open_session, read_extract

PERSONS = 60


def write_parquet(path, sql):
    con = duckdb.connect()
    try:
        con.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet)")
    finally:
        con.close()


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """Two permits' extracts and an empty directory an attacker would write to."""
    root = tmp_path_factory.mktemp("sandbox")
    extract, other, out = root / "extracts" / "P-A" / "1", root / "extracts" / "P-B" / "1", root / "out"
    for directory in (extract, other, out):
        directory.mkdir(parents=True)
    write_parquet(extract / "person.parquet",
                  f"SELECT 'p' || i AS person_id, 8507 + 25 * (i % 2) AS gender_concept_id FROM range({PERSONS}) t(i)")
    write_parquet(extract / "measurement.parquet",
                  "SELECT 'p' || (i % 40) AS person_id, i % 3 AS concept, CAST(i AS DOUBLE) AS v FROM range(200) t(i)")
    (extract / "manifest.json").write_text(json.dumps({"persons": PERSONS, "tables": {
        "person": {"file": "person.parquet", "rows": PERSONS, "persons": PERSONS},
        "measurement": {"file": "measurement.parquet", "rows": 200, "persons": 40}}}))
    write_parquet(other / "person.parquet", "SELECT 'secret-of-another-permit' AS person_id")
    (other / "manifest.json").write_text(json.dumps({"persons": 1, "tables": {"person": {"file": "person.parquet"}}}))
    return {"extract": extract, "other": other, "out": out}


def snapshot(*directories):
    """Every file under the directories with its bytes: nothing may appear, change or vanish."""
    return {str(p): p.read_bytes() for d in directories for p in sorted(d.rglob("*")) if p.is_file()}


FILES = "disabled by configuration|disabled through configuration"
LOCKED = "configuration has been locked"
READ_ONLY = "read-only mode"
NOT_A_SELECT = "only a SELECT"
OUTSIDE = "outside the extract"

SECURITY_SETTINGS = [
    ("enable_external_access", "true"), ("allowed_directories", "['/']"), ("allowed_paths", "['/etc/passwd']"),
    ("lock_configuration", "false"), ("memory_limit", "'100GB'"), ("max_temp_directory_size", "'1PB'"),
    ("temp_directory", "'/tmp'"), ("threads", "64"), ("autoload_known_extensions", "true"),
    ("autoinstall_known_extensions", "true"), ("allow_community_extensions", "true"),
    ("allow_unsigned_extensions", "true"), ("python_enable_replacements", "true"),
    ("allow_persistent_secrets", "true"), ("disabled_filesystems", "''"), ("profiling_output", "'{out}/profile'"),
    ("enable_logging", "true"), ("log_query_path", "'{out}/queries.log'"),
]

# (id, SQL, reason through the provenance gate, DuckDB's refusal on a raw cursor)
ATTACKS = [
    ("attach-new-file", "ATTACH '{out}/new.duckdb' AS x", NOT_A_SELECT, FILES),
    ("attach-other-permit", "ATTACH '{other}/person.parquet' AS x", NOT_A_SELECT, FILES),
    ("attach-memory", "ATTACH ':memory:' AS x", NOT_A_SELECT, READ_ONLY),
    ("copy-table-to", "COPY person TO '{out}/leak.csv'", NOT_A_SELECT, FILES),
    ("copy-query-to", "COPY (SELECT * FROM measurement) TO '{out}/leak.parquet' (FORMAT parquet)", NOT_A_SELECT, FILES),
    ("export-database", "EXPORT DATABASE '{out}/export'", NOT_A_SELECT, FILES),
    ("read-csv-etc-passwd", "SELECT * FROM read_csv('/etc/passwd', sep = ':')", OUTSIDE, FILES),
    ("read-text-etc-passwd", "SELECT * FROM read_text('/etc/passwd')", OUTSIDE, FILES),
    ("read-blob-etc-passwd", "SELECT * FROM read_blob('/etc/passwd')", OUTSIDE, FILES),
    ("read-environment", "SELECT * FROM read_text('/proc/self/environ')", OUTSIDE, FILES),
    ("replacement-scan-other-permit", "SELECT * FROM '{other}/person.parquet'", OUTSIDE, FILES),
    ("read-parquet-other-permit", "SELECT * FROM read_parquet('{other}/person.parquet')", OUTSIDE, FILES),
    ("read-blob-other-permit", "SELECT * FROM read_blob('{other}/person.parquet')", OUTSIDE, FILES),
    ("read-text-other-manifest", "SELECT * FROM read_text('{other}/manifest.json')", OUTSIDE, FILES),
    ("read-csv-other-permit", "SELECT * FROM read_csv('{other}/*')", OUTSIDE, FILES),
    ("glob-etc", "SELECT * FROM glob('/etc/*')", OUTSIDE, FILES),
    ("glob-own-extract", "SELECT * FROM glob('{extract}/*')", OUTSIDE, FILES),
    ("url", "SELECT * FROM read_csv('https://example.org/x.csv')", OUTSIDE, FILES),
    ("install-extension", "INSTALL httpfs", NOT_A_SELECT, FILES),
    ("load-extension", "LOAD httpfs", NOT_A_SELECT, FILES),
    ("load-extension-file", "LOAD '{out}/evil.duckdb_extension'", NOT_A_SELECT, FILES),
    ("getenv", "SELECT getenv('HOME') AS home", "query failed", "getenv does not exist"),
    ("create-table", "CREATE TABLE t AS SELECT 1 AS x", NOT_A_SELECT, READ_ONLY),
    ("create-view-over-extract", "CREATE OR REPLACE VIEW person AS SELECT 'fake' AS person_id", NOT_A_SELECT, READ_ONLY),
    ("create-macro", "CREATE MACRO m(x) AS x + 1", NOT_A_SELECT, READ_ONLY),
    ("drop-view", "DROP VIEW measurement", NOT_A_SELECT, READ_ONLY),
    ("ddl-inside-select", "SELECT * FROM query('CREATE TABLE t AS SELECT 1')", "query failed", "single SELECT"),
    ("pragma-memory", "PRAGMA memory_limit = '100GB'", NOT_A_SELECT, LOCKED),
    ("pragma-profiling", "PRAGMA enable_profiling", NOT_A_SELECT, LOCKED),
    ("reset-setting", "RESET memory_limit", NOT_A_SELECT, LOCKED),
] + [(f"set-{name}", f"SET {name} = {value}", NOT_A_SELECT, LOCKED + "|while database is running")
     for name, value in SECURITY_SETTINGS]

EXPECTED_SETTINGS = {"enable_external_access": "false", "lock_configuration": "true",
                     "autoload_known_extensions": "false", "autoinstall_known_extensions": "false",
                     "allow_community_extensions": "false",
                     "allow_persistent_secrets": "false", "allowed_directories": None, "allowed_paths": None,
                     "memory_limit": None, "temp_directory": None, "max_temp_directory_size": None, "threads": None,
                     "disabled_filesystems": None}


def settings_of(con) -> dict:
    names = list(EXPECTED_SETTINGS)
    values = con.execute("SELECT " + ", ".join(f"CAST(current_setting('{n}') AS VARCHAR)" for n in names)).fetchone()
    return dict(zip(names, values))


def check_untouched(session, before_settings, before_files, place):
    """The refusal was clean: the session still works, and nothing changed."""
    assert session.execute("SELECT count(*) FROM person").fetchone()[0] == PERSONS
    assert settings_of(session.con) == before_settings
    assert snapshot(place["extract"], place["other"], place["out"]) == before_files


@pytest.mark.parametrize("attack, sql, gate_reason, refusal", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_attack_through_the_provenance_gate_is_refused(place, attack, sql, gate_reason, refusal):
    files = snapshot(place["extract"], place["other"], place["out"])
    with open_session(place["extract"]) as session:  # the pooled database the check runs on
        before = settings_of(session.con)
        with pytest.raises(ProvenanceRefused, match=gate_reason):
            reexecute(sql.format(**place), place["extract"], shared=True)
        check_untouched(session, before, files, place)


@pytest.mark.parametrize("scratch", [False, True], ids=["provenance-database", "dp-database"])
@pytest.mark.parametrize("attack, sql, gate_reason, refusal", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_attack_directly_on_a_sandbox_connection_is_refused(place, scratch, attack, sql, gate_reason, refusal):
    sql = sql.format(**place)
    files = snapshot(place["extract"], place["other"], place["out"])
    with open_session(place["extract"], scratch=scratch) as session:
        before = settings_of(session.con)
        assert {k: v for k, v in before.items() if EXPECTED_SETTINGS[k] is not None} == \
            {k: v for k, v in EXPECTED_SETTINGS.items() if v is not None}
        # the sandbox's own door: file access becomes SandboxRefused, the rest DuckDB's error
        with pytest.raises((SandboxRefused, duckdb.Error), match=refusal):
            session.execute(sql)
        check_untouched(session, before, files, place)
        # the raw DuckDB cursor, no gate at all: DuckDB's locked configuration refuses
        with pytest.raises(duckdb.Error, match=refusal):
            session.con.execute(sql)
        check_untouched(session, before, files, place)


def test_the_extract_views_are_read_only_and_only_the_extract_files_are_allowed(place):
    with open_session(place["extract"]) as session:
        allowed = session.execute("SELECT current_setting('allowed_paths')").fetchone()[0]
        parquet = sorted(p for p in allowed if p.endswith(".parquet"))
        assert parquet == sorted(str(p) for p in session.extract.tables.values())
        assert session.execute("SELECT current_setting('allowed_directories')").fetchone()[0] == \
            [str(session.database.private_dir / "spill") + "/"]
        # the catalog file is unlinked once open: it cannot be attached again
        with pytest.raises(duckdb.Error):
            session.con.execute(f"ATTACH '{session.database.private_dir / 'extract.duckdb'}' AS again")
        assert session.execute("SELECT count(*) FROM measurement").fetchone()[0] == 200


def test_a_runaway_query_is_interrupted_and_the_database_stays_usable(place):
    runaway = "SELECT count(*) FROM range(1000000000000) a, person b"
    with pytest.raises(ProvenanceLimit, match="longer than 1 s"):
        reexecute(runaway, place["extract"], timeout_seconds=1, shared=True)
    with open_session(place["extract"], scratch=True, timeout_seconds=0.5) as session:
        with pytest.raises(SandboxLimit, match="longer than 0.5 s"):
            session.execute(runaway)
        with pytest.raises(SandboxLimit):  # the budget covers the whole session
            session.execute("SELECT 1")
    with open_session(place["extract"]) as session:
        assert session.execute("SELECT count(*) FROM person").fetchone()[0] == PERSONS


@pytest.fixture(scope="module")
def million(tmp_path_factory):
    """1 M rows, one distinct person each: counting distinct persons per cell needs more
    memory than 64 MB."""
    extract = tmp_path_factory.mktemp("million") / "extract"
    extract.mkdir()
    write_parquet(extract / "measurement.parquet",
                  "SELECT md5(CAST(i AS VARCHAR)) AS person_id, i % 5 AS g FROM range(1000000) t(i)")
    return extract


SPILL_SQL = "SELECT g, count(DISTINCT person_id) AS n FROM measurement GROUP BY g ORDER BY g"


def test_a_query_larger_than_memory_spills_to_the_private_directory_instead_of_failing(million, tmp_path):
    # the premise: with the same memory limit and no spilling, DuckDB runs out of memory
    plain = duckdb.connect(config={"memory_limit": "64MB", "threads": 2, "temp_directory": ""})
    try:
        plain.execute(f"CREATE VIEW measurement AS SELECT * FROM read_parquet('{million / 'measurement.parquet'}')")
        with pytest.raises(duckdb.OutOfMemoryException):
            plain.execute(SPILL_SQL).fetchall()
    finally:
        plain.close()
    pool = SandboxPool(SandboxSettings(memory_limit="64MB", threads=2, temp_dir=str(tmp_path)))
    with pool.session(million) as session:
        private = session.database.private_dir
        assert private.parent == tmp_path and stat.S_IMODE(private.stat().st_mode) == 0o700
        spilled, done = [0], threading.Event()

        def watch():  # what DuckDB writes into the spill directory while the query runs
            while not done.wait(0.01):
                spill = private / "spill"
                size = sum(p.stat().st_size for p in spill.glob("*") if p.is_file()) if spill.is_dir() else 0
                spilled[0] = max(spilled[0], size)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            rows = session.execute(SPILL_SQL).fetchall()
        finally:
            done.set()
            watcher.join()
    assert rows == [(g, 200_000) for g in range(5)]
    assert spilled[0] > 0
    pool.close()
    assert not private.exists()  # the private directory goes with the database


def test_a_one_million_row_provenance_check_spills_and_is_verified(million):
    recomputed = reexecute(SPILL_SQL, million, memory_limit="64MB", threads=2)
    result = verify_provenance(recomputed, SPILL_SQL, million, memory_limit="64MB", threads=2, shared=False)
    assert result.verified, result.evidence_reason
    assert sorted(c.persons for c in result.evidence.cells.values()) == [200_000] * 5


def test_the_pool_is_bounded_and_closes_an_evicted_database_when_its_last_session_ends(place, tmp_path):
    extracts = []
    for name in "abc":
        directory = tmp_path / name
        directory.mkdir()
        write_parquet(directory / "person.parquet", f"SELECT 'p' || i AS person_id FROM range({len(extracts) + 1}) t(i)")
        extracts.append(directory)
    pool = SandboxPool(SandboxSettings(max_open_extracts=2, temp_dir=str(tmp_path)))
    in_use = pool.session(extracts[0])
    first = in_use.database
    for directory in extracts[1:]:
        pool.session(directory).close()
    # evicted (least recently used) while a session is running: it keeps working ...
    assert in_use.execute("SELECT count(*) FROM person").fetchone()[0] == 1
    assert first.private_dir.exists()
    in_use.close()
    assert not first.private_dir.exists()  # ... and closes when that session ends
    with pool.session(extracts[0]) as again:
        assert again.database is not first
    with pool.session(extracts[2]) as reused, pool.session(extracts[2]) as same:
        assert reused.database is same.database
    # a new version of an extract (its files change) is a new database
    write_parquet(extracts[2] / "person.parquet", "SELECT 'p' || i AS person_id FROM range(7) t(i)")
    with pool.session(extracts[2]) as fresh:
        assert fresh.execute("SELECT count(*) FROM person").fetchone()[0] == 7
    pool.close()
    assert not list(tmp_path.glob("spe-sandbox-*"))


@pytest.mark.parametrize("case", ["outside", "symlink", "name", "missing", "manifest", "empty"])
def test_the_manifest_reader_refuses_anything_but_plain_files_of_the_extract(tmp_path, case):
    extract = tmp_path / "extract"
    extract.mkdir()
    write_parquet(tmp_path / "elsewhere.parquet", "SELECT 'x' AS person_id")
    if case != "empty":
        write_parquet(extract / "person.parquet", "SELECT 'p' AS person_id")
    tables = {"person": {"file": "person.parquet"}}
    if case == "outside":
        tables["leak"] = {"file": "../elsewhere.parquet"}
    elif case == "symlink":
        (extract / "leak.parquet").symlink_to(tmp_path / "elsewhere.parquet")
        tables["leak"] = {"file": "leak.parquet"}
    elif case == "name":
        tables['person" AS x; --'] = {"file": "person.parquet"}
    elif case == "missing":
        tables["gone"] = {"file": "gone.parquet"}
    if case == "manifest":
        (extract / "manifest.json").write_text("{not json")
    elif case != "empty":
        (extract / "manifest.json").write_text(json.dumps({"tables": tables}))
    with pytest.raises(ExtractUnavailable):
        read_extract(extract)
    with pytest.raises(ExtractUnavailable):
        open_session(extract)


def test_the_manifest_reader_without_a_manifest_takes_the_parquet_files(tmp_path):
    write_parquet(tmp_path / "person.parquet", "SELECT 'p' AS person_id")
    write_parquet(tmp_path / "visit.parquet", "SELECT 'p' AS person_id")
    extract = read_extract(tmp_path)
    assert sorted(extract.tables) == ["person", "visit"] and extract.persons is None
    assert all(path.parent == tmp_path.resolve() for path in extract.tables.values())


def test_dp_truncation_tables_live_in_the_scratch_catalog_of_dp_databases_only(place):
    from egress.dp.compute import connect, dropped_rows

    with connect(place["extract"]) as dp:
        table, n = dropped_rows(dp, dp.extract.tables["measurement"], "person_id", 2)
        assert table.startswith("spe_scratch.") and n == 200 - 40 * 2
        assert dp.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == n
    with open_session(place["extract"]) as provenance:
        assert provenance.database.scratch is None
        with pytest.raises(duckdb.Error):
            provenance.execute(f"SELECT count(*) FROM {table}")


def test_python_objects_of_the_calling_frame_are_not_readable(place):
    secret_frame = pa.table({"person_id": ["from-the-service's-memory"]})
    plain = duckdb.connect()
    try:  # the premise: DuckDB's Python client reads a table of the calling frame by its name
        assert plain.execute("SELECT * FROM secret_frame").fetchall() == [("from-the-service's-memory",)]
    finally:
        plain.close()
    with open_session(place["extract"]) as session:
        with pytest.raises(duckdb.Error, match="secret_frame"):
            session.con.execute("SELECT * FROM secret_frame")
    assert secret_frame.num_rows == 1


def test_the_watchdog_interrupts_only_the_statement_that_ran_out_of_time(place):
    errors, answers = [], []

    def short_queries():
        try:
            for _ in range(20):
                with open_session(place["extract"], timeout_seconds=60) as session:
                    answers.append(session.execute("SELECT count(*) FROM measurement").fetchone()[0])
        except Exception as err:  # collected: any interrupt here would be the watchdog's mistake
            errors.append(err)

    workers = [threading.Thread(target=short_queries) for _ in range(4)]
    for worker in workers:
        worker.start()
    with open_session(place["extract"], timeout_seconds=0.3) as slow:
        with pytest.raises(SandboxLimit):
            slow.execute("SELECT count(*) FROM range(1000000000000)")
    for worker in workers:
        worker.join()
    assert errors == [] and answers == [200] * 80
