"""Evidence at scale (issue 15): the per-person evidence of a 1 M-row extract with several rows
per person needs more memory than the sandbox is given, and spills instead of being refused.

The premise is checked on a plain DuckDB with the same memory limit and no spill directory: the
evidence query itself runs out of memory there. The 10 M-row case at the service's default
memory is `python -m bench.egress --full` (docs/benchmarks.md)."""

import json

import duckdb
import pytest

from egress.provenance import Sandbox, plan_evidence, reexecute, verify_provenance
from egress.provenance.gate import check_sql

LIMIT = "128MB"
SQL = "SELECT g, h, count(*) AS n, sum(v) AS s FROM measurement GROUP BY CUBE (g, h)"


@pytest.fixture(scope="module")
def visits(tmp_path_factory):
    """1 M rows of 100 000 persons (10 rows each, spread over every cell)."""
    extract = tmp_path_factory.mktemp("visits") / "extract"
    extract.mkdir()
    con = duckdb.connect()
    con.execute(f"COPY (SELECT md5(CAST(i % 100000 AS VARCHAR)) AS person_id, i % 5 AS g, i % 7 AS h, "
                f"CAST(i % 13 AS DOUBLE) AS v FROM range(1000000) t(i)) TO '{extract / 'measurement.parquet'}'")
    con.close()
    (extract / "manifest.json").write_text(json.dumps({"persons": 100_000, "tables": {"measurement": {
        "file": "measurement.parquet", "rows": 1_000_000, "persons": 100_000, "person_key": "person_id"}}}))
    return extract


def test_per_person_evidence_of_a_million_rows_spills_and_is_verified(visits, tmp_path):
    with Sandbox(visits) as sandbox:
        plan = plan_evidence(check_sql(SQL), sandbox.table_facts, sandbox.one_row_per_person)
    [evidence_query] = plan.branches  # several rows per person: the per-person form
    plain = duckdb.connect(config={"memory_limit": LIMIT, "threads": 2, "temp_directory": ""})
    try:
        plain.execute(f"CREATE VIEW measurement AS SELECT * FROM read_parquet('{visits / 'measurement.parquet'}')")
        with pytest.raises(duckdb.OutOfMemoryException):
            plain.execute(evidence_query.sql).fetchall()
    finally:
        plain.close()
    table = reexecute(SQL, visits, memory_limit=LIMIT, threads=2)
    result = verify_provenance(table, SQL, visits, memory_limit=LIMIT, threads=2, shared=False,
                               timeout_seconds=300)
    assert result.verified, result.evidence_reason
    everyone = result.evidence.get([None, None], "n")
    assert (everyone.persons, everyone.values) == (100_000, 1_000_000)
    assert result.evidence.get([0, 0], "s").persons == len({i % 100_000 for i in range(0, 1_000_000, 35)})
