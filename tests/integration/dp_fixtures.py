"""Shared builders for the DP tests: a small extract on disk and a permit value."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb

from hub.permits.model import DpBudget, Member, Permit

SCHEMA = {
    "person_table": "person",
    "person_key": "person_id",
    "tables": {
        "person": {"max_per_person": 1, "columns": {
            "person_id": {"class": "person_key"},
            "gender_concept_id": {"class": "quasi_identifier", "categories": [8507, 8532]},
            "year_of_birth": {"class": "quasi_identifier", "bounds": [1900, 2025]},
            "race": {"class": "quasi_identifier", "categories": ["white", "black", "asian"]},
        }},
        "measurement": {"max_per_person": 5, "columns": {
            "person_id": {"class": "person_key"},
            "measurement_id": {"class": "other", "key": True},
            "value_as_number": {"class": "sensitive", "bounds": [0, 200]},
            "unit": {"class": "other", "categories": ["mg", "g"]},
            "measurement_date": {"class": "quasi_identifier", "type": "DATE"},
        }},
    },
}


def make_extract(root: Path, persons: int = 500, seed: int = 7) -> Path:
    """person: one row each; measurement: 0..9 rows per person (some above the bound 5)."""
    root.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:")
    con.execute(f"SELECT setseed({seed / 100})")
    con.execute(f"""
        CREATE TABLE person AS SELECT 'p' || lpad(CAST(i AS VARCHAR), 6, '0') AS person_id,
            CASE WHEN i % 3 = 0 THEN 8507 WHEN i % 3 = 1 THEN 8532 ELSE 0 END AS gender_concept_id,
            1930 + (i * 7) % 80 AS year_of_birth,
            ['white', 'black', 'asian', 'other'][1 + i % 4] AS race
        FROM range({persons}) t(i)""")
    con.execute("""
        CREATE TABLE measurement AS SELECT p.person_id, row_number() OVER () AS measurement_id,
            CAST((hash(p.person_id, k) % 250) AS DOUBLE) AS value_as_number,
            CASE WHEN k % 2 = 0 THEN 'mg' ELSE 'g' END AS unit,
            DATE '2020-01-01' + CAST(k * 30 AS INTEGER) AS measurement_date
        FROM person p, range(CAST(hash(p.person_id) % 10 AS BIGINT)) r(k)""")
    for t in ("person", "measurement"):
        con.execute(f"COPY {t} TO '{root / (t + '.parquet')}' (FORMAT parquet)")
    con.close()
    return root


def make_permit(epsilon: float = 1.0, delta: float = 1e-6, per_member: bool = False, status: str = "active",
                permit_id: str = "DP-TEST-1") -> Permit:
    return Permit(
        id=permit_id, title="t", purpose="scientific_research", organisation="o", principal_investigator="alice",
        members=(Member("alice", "principal_investigator"), Member("bob", "researcher")), dataset="synthetic",
        tables={"person": ("person_id", "gender_concept_id", "year_of_birth", "race"),
                "measurement": ("person_id", "measurement_id", "value_as_number", "unit", "measurement_date")},
        valid_from=date(2026, 1, 1), valid_until=date(2030, 1, 1),
        dp=DpBudget(epsilon=epsilon, delta=delta, per_member=per_member), status=status,
    )
