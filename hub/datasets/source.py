"""Read access to a registered source (an OMOP DuckDB file or a Parquet directory) via DuckDB.

Sources are always opened read-only: the Eunomia example lives inside site-packages and
must never be written. Table and column names are exposed lower-case (OMOP convention);
`relation_sql` maps them to the source's own spelling.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import duckdb

from hub.exceptions import InvalidInput, NotFound

KINDS = ("omop-duckdb", "parquet")


@dataclass(frozen=True)
class SourceRef:
    kind: str
    path: Path

    def check(self) -> None:
        if self.kind not in KINDS:
            raise InvalidInput(f"unknown source kind {self.kind!r}; use one of {KINDS}", field="kind")
        if self.kind == "omop-duckdb" and not self.path.is_file():
            raise NotFound(f"DuckDB source file not found: {self.path}")
        if self.kind == "parquet" and not self.path.is_dir():
            raise NotFound(f"Parquet source directory not found: {self.path}")


def sql_literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _parquet_tables(path: Path) -> dict[str, str]:
    """table name -> read_parquet() glob. A table is `<name>.parquet` or a directory `<name>/`."""
    found: dict[str, str] = {}
    for entry in sorted(path.iterdir()):
        if entry.is_file() and entry.suffix == ".parquet":
            found[entry.stem.lower()] = str(entry)
        elif entry.is_dir() and any(entry.glob("*.parquet")):
            found[entry.name.lower()] = str(entry / "*.parquet")
    return found


def attach(conn: duckdb.DuckDBPyConnection, ref: SourceRef, alias: str = "src") -> None:
    """Make the source readable in `conn` (read-only attach for DuckDB files)."""
    if ref.kind == "omop-duckdb":
        conn.execute(f"ATTACH {sql_literal(str(ref.path))} AS {quote_ident(alias)} (READ_ONLY)")


def source_tables(conn: duckdb.DuckDBPyConnection, ref: SourceRef, alias: str = "src") -> dict[str, str]:
    """lower-case table name -> SQL relation (a qualified table or a read_parquet call)."""
    if ref.kind == "parquet":
        return {t: f"read_parquet({sql_literal(g)})" for t, g in _parquet_tables(ref.path).items()}
    rows = conn.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = 'main'", [alias]
    ).fetchall()
    return {name.lower(): f"{quote_ident(alias)}.main.{quote_ident(name)}" for (name,) in rows}


def describe(conn: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str, str]]:
    """[(lower name, type, source name)] of a relation."""
    cols = conn.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    return [(c[0].lower(), c[1], c[0]) for c in cols]


def introspect(ref: SourceRef) -> dict[str, dict]:
    """{table: {"relation": sql, "rows": n, "columns": [(name, type, source_name)]}}"""
    ref.check()
    conn = duckdb.connect(":memory:")
    try:
        attach(conn, ref)
        out = {}
        for table, relation in source_tables(conn, ref).items():
            out[table] = {
                "rows": conn.execute(f"SELECT count(*) FROM {relation}").fetchone()[0],
                "columns": describe(conn, relation),
            }
        if not out:
            raise InvalidInput(f"no tables found in {ref.path}", field="source")
        return out
    except duckdb.Error as err:
        raise InvalidInput(f"cannot read source {ref.path}: {str(err).splitlines()[0]}", field="source") from None
    finally:
        conn.close()


def fingerprint(ref: SourceRef) -> str:
    """SHA-256 over the source's bytes (files in sorted order for a directory)."""
    h = hashlib.sha256()
    files = [ref.path] if ref.path.is_file() else sorted(p for p in ref.path.rglob("*.parquet") if p.is_file())
    for f in files:
        h.update(str(f.relative_to(ref.path) if ref.path.is_dir() else f.name).encode())
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()
