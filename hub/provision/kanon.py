"""k-anonymity over the quasi-identifiers of an extract's person table: the manifest's report, and the
gate that stops provisioning when a permit sets `k_anonymity.min_k` and a smaller class exists."""

from __future__ import annotations

from pathlib import Path

import duckdb

from hub.datasets.source import quote_ident, sql_literal


def k_anonymity_report(con: duckdb.DuckDBPyConnection, person_file: Path, quasi_identifiers: tuple[str, ...],
                       k: int) -> dict:
    """Smallest equivalence class and how many records sit in classes smaller than k."""
    if not quasi_identifiers:
        return {"k": k, "quasi_identifiers": [], "classes": 1, "smallest_class": None, "records_below_k": 0}
    cols = ", ".join(quote_ident(c) for c in quasi_identifiers)
    smallest, classes, below, records = con.execute(
        f"SELECT min(n), count(*), coalesce(sum(n) FILTER (WHERE n < $k), 0), coalesce(sum(n), 0) FROM "
        f"(SELECT count(*) AS n FROM read_parquet({sql_literal(str(person_file))}) GROUP BY {cols})",
        {"k": k}).fetchone()
    return {"k": k, "quasi_identifiers": list(quasi_identifiers), "classes": classes, "smallest_class": smallest,
            "records_below_k": int(below), "records": int(records)}


def small_class_sizes(con: duckdb.DuckDBPyConnection, person_file: Path, quasi_identifiers: tuple[str, ...],
                      min_k: int) -> dict[int, int]:
    """{class size: number of classes of that size} for the classes smaller than `min_k` (no values:
    only their sizes leave this function)."""
    if not quasi_identifiers:
        return {}
    cols = ", ".join(quote_ident(c) for c in quasi_identifiers)
    rows = con.execute(
        f"SELECT n, count(*) FROM (SELECT count(*) AS n FROM read_parquet({sql_literal(str(person_file))}) "
        f"GROUP BY {cols}) WHERE n < $k GROUP BY n ORDER BY n", {"k": min_k}).fetchall()
    return {int(n): int(c) for n, c in rows}


def gate_message(permit_id: str, min_k: int, quasi_identifiers: tuple[str, ...], sizes: dict[int, int]) -> str:
    """The refusal of an extract whose smallest class is below the permit's minimum k (pure)."""
    listed = ", ".join(f"{c} class(es) of {n}" for n, c in sorted(sizes.items()))
    return (f"provisioning {permit_id} stopped: k-anonymity below the permit's minimum k={min_k} on "
            f"{', '.join(quasi_identifiers)}: {listed} ({sum(n * c for n, c in sizes.items())} person(s)); "
            f"generalise or drop a quasi-identifier in the permit; the previous extract stays current")
