"""Provenance re-execution against a real Parquet extract (issue 4): the submitted table is
recomputed in a locked-down DuckDB, a tampered table is refused, per-cell evidence counts
distinct persons (not rows) and per-person contributions, and SQL that reads or writes
outside the extract is refused."""

import hashlib
import json

import duckdb
import pyarrow as pa
import pytest

from egress.checks import check_table
from egress.exceptions import ExtractUnavailable, ProvenanceLimit, ProvenanceRefused, TableMismatch
from egress.provenance import Sandbox, check_match, derive_evidence, reexecute, verify_provenance


def pseudonym(i: int) -> str:
    return hashlib.sha256(f"person-{i}".encode()).hexdigest()[:32]


@pytest.fixture()
def extract(tmp_path):
    """60 persons: 40 women, 20 men. Measurements: every woman has 2 rows of concept 1;
    3 men have 10 rows each of concept 2 (30 rows, 3 persons); one woman has a huge value."""
    directory = tmp_path / "extracts" / "p1" / "1"
    directory.mkdir(parents=True)
    persons = pa.table({
        "person_id": [pseudonym(i) for i in range(60)],
        "gender_concept_id": [8532] * 40 + [8507] * 20,
        "year_of_birth": [1950 + i % 30 for i in range(60)],
    })
    m_person, m_concept, m_value = [], [], []
    for i in range(40):
        for _ in range(2):
            m_person.append(pseudonym(i))
            m_concept.append(1)
            m_value.append(10_000.0 if i == 0 else 5.0)
    for i in range(40, 43):
        for _ in range(10):
            m_person.append(pseudonym(i))
            m_concept.append(2)
            m_value.append(7.0)
    measurement = pa.table({"person_id": m_person, "measurement_concept_id": m_concept,
                            "value_as_number": m_value})
    con = duckdb.connect()
    manifest = {"persons": 60, "tables": {}}
    for name, table in {"person": persons, "measurement": measurement}.items():
        con.register("t", table)
        con.execute(f"COPY t TO '{directory / (name + '.parquet')}' (FORMAT parquet)")
        con.unregister("t")
        manifest["tables"][name] = {"rows": table.num_rows, "columns": table.column_names,
                                    "file": f"{name}.parquet"}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "secret.parquet").write_bytes((directory / "person.parquet").read_bytes())
    return directory


COUNT_SQL = """
SELECT m.measurement_concept_id, count(*) AS n
FROM measurement m JOIN person p ON p.person_id = m.person_id
GROUP BY m.measurement_concept_id
ORDER BY 1
"""


def test_reexecute_returns_the_query_result(extract):
    table = reexecute(COUNT_SQL, extract)
    assert table.to_pylist() == [{"measurement_concept_id": 1, "n": 80}, {"measurement_concept_id": 2, "n": 30}]


def test_evidence_counts_distinct_persons_not_rows(extract):
    submitted = pa.table({"measurement_concept_id": [2, 1], "n": [30, 80]})  # another order
    result = verify_provenance(submitted, COUNT_SQL, extract)
    assert result.match.equal, result.match.reason
    assert result.evidence is not None, result.evidence_reason
    assert result.evidence.get([2], "n").persons == 3
    assert result.evidence.get([1], "n").persons == 40
    assert result.extract_persons == 60

    unverified = check_table(submitted, None, kind="frequency", label_columns=["measurement_concept_id"])
    assert unverified.status == "pass" and unverified.verified is False  # 30 rows look safe
    verified = check_table(submitted, None, kind="frequency", evidence=result.evidence,
                           extract_persons=result.extract_persons)
    assert verified.verified is True
    assert verified.cells_with("threshold") == {(0, "n")}  # but they are only 3 persons
    assert "distinct persons 3" in verified.cells[0].findings[0].message


def test_a_tampered_table_is_refused(extract):
    tampered = pa.table({"measurement_concept_id": [1, 2], "n": [80, 35]})
    result = verify_provenance(tampered, COUNT_SQL, extract)
    assert not result.match.equal
    assert result.evidence is None
    with pytest.raises(TableMismatch, match="not the result of its provenance SQL"):
        check_match(result.match)


def test_a_suppressed_resubmission_still_matches_and_passes(extract):
    suppressed = pa.table({"measurement_concept_id": [1, 2], "n": [80, None]})
    result = verify_provenance(suppressed, COUNT_SQL, extract)
    assert result.match.equal and result.match.suppressed_cells == 1
    verdicts = check_table(suppressed, None, kind="frequency", evidence=result.evidence)
    assert verdicts.status == "pass" and verdicts.verified is True


def test_mean_table_dominance_on_per_person_contributions(extract):
    sql = """SELECT p.gender_concept_id, count(DISTINCT p.person_id) AS persons,
                    round(avg(m.value_as_number), 2) AS mean_value
             FROM person p JOIN measurement m ON p.person_id = m.person_id
             GROUP BY ALL"""
    recomputed = reexecute(sql, extract)
    result = verify_provenance(recomputed, sql, extract)
    assert result.match.equal
    women = result.evidence.get([8532], "mean_value")
    assert women.persons == 40 and women.top == (20_000.0, 10.0) and women.total == 20_000.0 + 39 * 10.0
    verdicts = check_table(recomputed, None, kind="magnitude", evidence=result.evidence)
    rows = {r["gender_concept_id"]: i for i, r in enumerate(recomputed.to_pylist())}
    assert verdicts.cells_with("dominance") == {(rows[8532], "mean_value")}
    assert verdicts.cells_with("p_percent") == {(rows[8532], "mean_value")}
    assert verdicts.cells_with("threshold") == {(rows[8507], "persons"), (rows[8507], "mean_value")}


def test_query_outside_the_supported_form_is_compared_but_unverified(extract):
    sql = "SELECT 'all' AS g, count(*) AS n FROM person UNION ALL SELECT 'm', count(*) FROM measurement"
    recomputed = reexecute(sql, extract)
    result = verify_provenance(recomputed, sql, extract)
    assert result.match.equal
    assert result.evidence is None and "not in the supported form" in result.evidence_reason
    assert check_table(recomputed, None, kind="frequency", evidence=result.evidence).verified is False


def test_derive_evidence_with_where_and_having(extract):
    sql = """SELECT year_of_birth % 3 AS yb, count(*) AS n FROM person
             WHERE gender_concept_id = 8532 GROUP BY yb HAVING count(*) > 0"""
    evidence = derive_evidence(sql, extract)
    assert sorted(c.persons for c in evidence.cells.values()) == [13, 13, 14]


@pytest.mark.parametrize("sql, reason", [
    ("SELECT * FROM read_csv('/etc/passwd')", "outside the extract"),
    ("SELECT * FROM read_text('/etc/passwd')", "outside the extract"),
    ("SELECT * FROM read_parquet('{secret}')", "outside the extract"),
    ("SELECT * FROM glob('/etc/*')", "outside the extract"),
    ("SELECT * FROM 'https://example.org/data.csv'", "outside the extract"),
    ("COPY person TO '{out}'", "only a SELECT"),
    ("COPY (SELECT 1) TO '{out}'", "only a SELECT"),
    ("ATTACH '{out}' AS other", "only a SELECT"),
    ("INSTALL httpfs", "only a SELECT"),
    ("LOAD httpfs", "only a SELECT"),
    ("SET enable_external_access = true", "only a SELECT"),
    ("CREATE TABLE x AS SELECT * FROM person", "only a SELECT"),
    ("SELECT 1; DROP VIEW person", "exactly one statement"),
    ("SELEKT 1", "does not parse"),
])
def test_sql_that_reads_or_writes_outside_the_extract_is_refused(extract, sql, reason):
    out = extract.parent / "leak.csv"
    with pytest.raises(ProvenanceRefused, match=reason):
        reexecute(sql.format(secret=extract.parent.parent.parent / "secret.parquet", out=out), extract)
    assert not out.exists()


def test_sandbox_configuration_is_locked_after_the_views(extract):
    with Sandbox(extract) as sandbox:
        for statement in ("SET enable_external_access = true", "SET memory_limit = '10GB'",
                          "SET allowed_paths = ['/etc/passwd']"):
            with pytest.raises(duckdb.Error, match="locked"):
                sandbox.con.execute(statement)
        with pytest.raises(duckdb.Error, match="disabled"):
            sandbox.con.execute("LOAD httpfs")
        assert sandbox.run("SELECT count(*) AS n FROM person").to_pylist() == [{"n": 60}]


def test_time_limit_interrupts_the_query(extract):
    with pytest.raises(ProvenanceLimit, match="longer than 1 s"):
        reexecute("SELECT count(*) FROM range(1000000000000) a", extract, timeout_seconds=1)


def test_missing_extract_is_a_failure_not_a_refusal(tmp_path):
    with pytest.raises(ExtractUnavailable):
        reexecute("SELECT 1", tmp_path / "nope")
