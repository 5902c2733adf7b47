"""Which provenance SQL is accepted, decided on DuckDB's own parser (pure: no extract).

`check_sql(sql)` accepts exactly one SELECT statement (a `WITH ... SELECT` too) and returns
its text; everything else (COPY, ATTACH, INSTALL/LOAD, SET, PRAGMA, CREATE, several
statements, text that does not parse) is a `ProvenanceRefused` naming why. What a SELECT may
read is the sandbox's job (`egress.sandbox`): only the extract's tables.

`parse_tree(sql)` / `to_sql(tree)` are DuckDB's `json_serialize_sql` / `json_deserialize_sql`:
the parse tree the evidence rewrite (`egress.provenance.evidence`) works on, never regexes.
`bounded(sql, max_rows)` wraps an accepted query in a row limit and checks that the wrapped
text is still exactly one SELECT.

All parsing runs on one private in-memory DuckDB that holds nothing and can read nothing
(external access off, configuration locked); each call takes its own cursor. Must not import
the sandbox, the extract or the web layer.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import duckdb

from egress.exceptions import ProvenanceRefused, first_line

MAX_SQL_CHARS = 100_000


class Unparsable(Exception):
    """DuckDB could not turn SQL into a parse tree, or a tree back into SQL (message: why)."""


_parser: duckdb.DuckDBPyConnection | None = None
_parser_lock = threading.Lock()


def _cursor() -> duckdb.DuckDBPyConnection:
    global _parser
    with _parser_lock:
        if _parser is None:
            con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                                     "autoload_known_extensions": False})
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
            _parser = con
        return _parser.cursor()


def check_sql(sql: Any) -> str:
    """The single SELECT statement in `sql` (trailing `;` removed); ProvenanceRefused otherwise."""
    if not isinstance(sql, str) or not sql.strip():
        raise ProvenanceRefused("the provenance SQL is empty")
    if len(sql) > MAX_SQL_CHARS:
        raise ProvenanceRefused(f"the provenance SQL is longer than {MAX_SQL_CHARS} characters")
    return _one_select(sql, "the provenance SQL")


def bounded(query: str, max_rows: int) -> str:
    """`query` (accepted by `check_sql`) limited to `max_rows` + 1 rows, still one SELECT."""
    return _one_select(f"SELECT * FROM (\n{query}\n) AS spe_query LIMIT {int(max_rows) + 1}",
                       "the provenance SQL with its row limit")


def _one_select(sql: str, what: str) -> str:
    cursor = _cursor()
    try:
        statements = cursor.extract_statements(sql)
    except duckdb.Error as err:
        raise ProvenanceRefused(f"{what} does not parse: {first_line(err)}") from None
    finally:
        cursor.close()
    if len(statements) != 1:
        raise ProvenanceRefused(f"{what} must be exactly one statement, got {len(statements)}")
    statement = statements[0]
    if statement.type != duckdb.StatementType.SELECT:
        raise ProvenanceRefused(f"only a SELECT query is accepted as provenance, got {statement.type.name}")
    return statement.query.strip().rstrip(";").strip()


def parse_tree(query: str) -> dict:
    """DuckDB's parse tree of `query` (`json_serialize_sql`); Unparsable if it has none."""
    return json.loads(_scalar("SELECT json_serialize_sql(?)", query, "the query could not be parsed"))


def to_sql(tree: dict) -> str:
    """SQL text of a parse tree (`json_deserialize_sql`); Unparsable if DuckDB cannot."""
    return _scalar("SELECT json_deserialize_sql(?)", json.dumps(tree), "the evidence query could not be built")


def _scalar(sql: str, argument: str, failure: str) -> str:
    cursor = _cursor()
    try:
        return cursor.execute(sql, [argument]).fetchall()[0][0]
    except duckdb.Error as err:
        raise Unparsable(f"{failure}: {first_line(err)}") from None
    finally:
        cursor.close()
