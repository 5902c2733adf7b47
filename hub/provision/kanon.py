"""k-anonymity report over the quasi-identifiers of an extract's person table."""

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
