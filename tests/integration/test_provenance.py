"""Provenance re-execution against a real Parquet extract (issue 4): the submitted table is
recomputed in a locked-down DuckDB, a tampered table is refused, per-cell evidence counts
distinct persons (not rows) and per-person contributions, and SQL that reads or writes
outside the extract is refused."""

import hashlib
import io
import json

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
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
    sql = "SELECT gender_concept_id, count(*) / sum(count(*)) OVER () AS share FROM person GROUP BY 1"
    recomputed = reexecute(sql, extract)
    result = verify_provenance(recomputed, sql, extract)
    assert result.match.equal
    assert result.evidence is None and "window function over the cells" in result.evidence_reason
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


def test_check_with_provenance_is_the_one_call_for_the_service(extract):
    from egress.provenance import check_with_provenance

    table = pa.table({"measurement_concept_id": [1, 2], "n": [80, 30]})
    verdicts, result = check_with_provenance(table, None, kind="frequency", sql=COUNT_SQL, extract_dir=extract)
    assert result.verified and verdicts.verified
    assert verdicts.cells_with("threshold") == {(1, "n")}
    with pytest.raises(TableMismatch):
        check_with_provenance(pa.table({"measurement_concept_id": [1, 2], "n": [80, 31]}), None,
                              kind="frequency", sql=COUNT_SQL, extract_dir=extract)
    listing = pa.table({"year_of_birth": list(range(40)), "n": [10] * 40})
    verdicts, result = check_with_provenance(listing, None, kind="frequency", extract_dir=extract)
    assert result is None and verdicts.verified is False
    assert "too_many_rows" in verdicts.table_rules()  # 40 rows for 60 persons


def test_one_row_per_person_shortcuts_agree_with_the_per_person_aggregation(extract):
    single = "SELECT gender_concept_id, count(*) AS n, sum(year_of_birth) AS s FROM person GROUP BY ALL"
    # A self-join on the key keeps the same rows but forces the general per-person path.
    joined = ("SELECT p.gender_concept_id, count(*) AS n, sum(p.year_of_birth) AS s "
              "FROM person p JOIN person q ON p.person_id = q.person_id GROUP BY ALL")
    fast = derive_evidence(single, extract)
    general = derive_evidence(joined, extract)
    assert fast.cells == general.cells
    assert fast.get([8507], "s").top == (1979.0, 1978.0)  # the two largest years of birth (men: 1960-1979)
    counts_only = "SELECT gender_concept_id, count(*) AS n FROM person GROUP BY ALL"
    recomputed = reexecute(counts_only, extract)
    from_result = verify_provenance(recomputed, counts_only, extract).evidence  # no second scan
    assert {k: v.persons for k, v in from_result.cells.items()} == {(("8532",), "n"): 40, (("8507",), "n"): 20}


def test_a_single_table_with_several_rows_per_person_counts_persons(extract):
    sql = "SELECT measurement_concept_id, count(*) AS n FROM measurement GROUP BY 1"
    recomputed = reexecute(sql, extract)
    evidence = verify_provenance(recomputed, sql, extract).evidence
    assert evidence.get([2], "n").persons == 3 and evidence.get([1], "n").persons == 40


def test_shared_sandboxes_are_locked_and_time_limited_per_cursor(extract):
    slow = Sandbox(extract, shared=True, timeout_seconds=1)
    other = Sandbox(extract, shared=True)
    try:
        assert slow._database is other._database  # one cached database per extract version
        with pytest.raises(duckdb.Error, match="locked"):
            other.con.execute("SET enable_external_access = true")
        with pytest.raises(ProvenanceRefused, match="outside the extract"):
            other.run("SELECT * FROM read_csv('/etc/passwd')")
        with pytest.raises(ProvenanceLimit):
            slow.run("SELECT count(*) FROM range(1000000000000) a")
        assert other.run("SELECT count(*) AS n FROM person").to_pylist() == [{"n": 60}]
        with pytest.raises(ProvenanceLimit):  # the time budget covers the whole sandbox
            slow.run("SELECT count(*) AS n FROM measurement")
        with Sandbox(extract, shared=True) as fresh:
            assert fresh.run("SELECT count(*) AS n FROM measurement").to_pylist() == [{"n": 110}]
    finally:
        slow.close()
        other.close()


@pytest.mark.parametrize("sql, persons", [
    ("WITH women AS (SELECT * FROM person WHERE gender_concept_id = 8532) "
     "SELECT year_of_birth % 3 AS yb, count(*) AS n FROM women GROUP BY 1", [13, 13, 14]),
    ("SELECT count(*) AS n FROM measurement WHERE measurement_concept_id = 2", [3]),
    ("SELECT m.measurement_concept_id AS c, CAST(sum(m.value_as_number) AS INTEGER) AS total "
     "FROM measurement AS m WHERE m.value_as_number > 0 GROUP BY c", [40, 3]),
])
def test_evidence_for_ctes_totals_and_wrapped_aggregates(extract, sql, persons):
    recomputed = reexecute(sql, extract)
    result = verify_provenance(recomputed, sql, extract)
    assert result.verified, result.evidence_reason
    assert sorted(c.persons for c in result.evidence.cells.values()) == sorted(persons)
    verdicts = check_table(recomputed, None, kind="magnitude", evidence=result.evidence)
    assert verdicts.verified


@pytest.mark.parametrize("sql, reason", [
    ("SELECT gender_concept_id, rank() OVER (ORDER BY count(*)) AS r, count(*) AS n FROM person GROUP BY 1",
     "window function over the cells"),
    ("SELECT gender_concept_id, sum(year_of_birth) / count(*) AS m FROM person GROUP BY 1", "several aggregates"),
    ("SELECT gender_concept_id, string_agg(person_id, ',') AS s, count(*) AS n FROM person GROUP BY 1",
     "string_agg() is not supported"),
    ("SELECT gender_concept_id, count(*) AS n FROM person GROUP BY 1 LIMIT 1", "LIMIT/OFFSET without ORDER BY"),
    ("SELECT gender_concept_id, count(*) AS n FROM person GROUP BY 1 "
     "INTERSECT SELECT gender_concept_id, count(*) FROM person GROUP BY 1", "INTERSECT"),
    ("SELECT gender_concept_id AS spe_g, count(*) AS n FROM person GROUP BY 1", "reserves"),
    ("SELECT g, count(*) AS n FROM (SELECT gender_concept_id AS g, count(*) AS c FROM person GROUP BY 1) GROUP BY g",
     "not person-level"),
    ("SELECT a.measurement_concept_id, count(*) AS n FROM measurement a "
     "JOIN measurement b ON a.measurement_concept_id = b.measurement_concept_id GROUP BY 1",
     "pairs rows of two different persons"),
    ("SELECT g, count(*) AS n FROM (SELECT DISTINCT gender_concept_id AS g, year_of_birth FROM person) GROUP BY g",
     "not verified"),
    ("SELECT 1 AS one, count(*) AS n FROM range(10)", "no extract table with a person key"),
])
def test_what_has_no_evidence_says_precisely_why(extract, sql, reason):
    recomputed = reexecute(sql, extract)
    result = verify_provenance(recomputed, sql, extract)
    assert result.match.equal and result.evidence is None
    assert reason in result.evidence_reason, result.evidence_reason


def test_a_random_query_is_unverified_not_refused_as_tampered(extract):
    from egress.review.checking import check_submission

    sql = "SELECT gender_concept_id, count(*) AS n, max(random()) AS r FROM person GROUP BY 1"
    table = reexecute(sql, extract)
    data = io.BytesIO()
    pq.write_table(table, data)
    [checked] = check_submission([("t.parquet", data.getvalue())], kind="frequency", provenance={"t.parquet": sql},
                                 policy=None, extract_dir=extract, extract_persons=60)
    assert not checked.verified and "random() gives another result" in checked.result["provenance"]["evidence_reason"]
    with pytest.raises(TableMismatch):  # a deterministic query that does not give the table still is
        verify = "SELECT gender_concept_id, count(*) AS n, 0.5 AS r FROM person GROUP BY 1"
        check_submission([("t.parquet", data.getvalue())], kind="frequency", provenance={"t.parquet": verify},
                         policy=None, extract_dir=extract, extract_persons=60)
