"""Reading and building DuckDB parse trees (`json_serialize_sql`) for the evidence rewrite.

- `walk(obj)` every dict of a (sub)tree; `expressions(expr)` the expressions of one SELECT
  expression without entering subqueries;
- `same(a, b)` structural equality that ignores where in the text an expression stood;
- `build(template, *parts)` an expression made from a SQL template whose holes `{0}`, `{1}`
  ... are filled with parse trees (the template is parsed by DuckDB once, so new nodes always
  have the exact shape DuckDB's deserializer expects; nothing is built by string pasting of
  user SQL);
- `column(*names)`, `aliased(expr, alias)`, `any_of(conditions)`: the nodes the rewrite makes most;
- what DuckDB knows about functions: `aggregate_names()` (built-in aggregates and the macros
  that expand to one), `NONDETERMINISTIC` (functions whose result differs between runs).

Pure apart from DuckDB's parser (the private in-memory database of `gate`). Must not import
the sandbox, the extract or the web layer.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any, Iterator

from egress.provenance import gate

# Functions whose result changes from one execution to the next: a table computed with them
# cannot be re-executed to the same result, so it has no evidence.
NONDETERMINISTIC = frozenset({"random", "setseed", "uuid", "gen_random_uuid", "uuidv4", "uuidv7",
                              "reservoir_quantile"})
_LOCATION_KEYS = frozenset({"query_location", "query_location_length"})
_HOLE = "spe_hole_"


def walk(obj: Any) -> Iterator[dict]:
    """Every dict in `obj` (depth first, parents before children)."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def expressions(expr: Any) -> Iterator[dict]:
    """The expression nodes of one SELECT-list expression, not entering subqueries (their
    expressions belong to another query) but yielding the SUBQUERY node itself."""
    stack = [expr]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "class" in item:
                yield item
                if item["class"] == "SUBQUERY":
                    continue
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def same(a: Any, b: Any) -> bool:
    """Structural equality, ignoring text positions and aliases."""
    return _canonical(a) == _canonical(b)


def _canonical(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _canonical(v) for k, v in obj.items() if k not in _LOCATION_KEYS and k != "alias"}
    if isinstance(obj, list):
        return [_canonical(v) for v in obj]
    return obj


@functools.lru_cache(maxsize=256)
def _template(template: str) -> str:
    holes = [f"{_HOLE}{i}" for i in range(template.count("{"))]
    tree = gate.parse_tree("SELECT " + template.format(*holes))
    return json.dumps(tree["statements"][0]["node"]["select_list"][0])


def build(template: str, *parts: dict, alias: str = "") -> dict:
    """The expression of SQL `template` with hole `{i}` replaced by parse tree `parts[i]`:
    `build("count(*) FILTER (WHERE {0})", condition)`."""
    expr = _fill(json.loads(_template(template)), parts)
    expr["alias"] = alias
    return expr


def _fill(obj: Any, parts: tuple) -> Any:
    if isinstance(obj, dict):
        names = obj.get("column_names") if obj.get("class") == "COLUMN_REF" else None
        if names and len(names) == 1 and names[0].startswith(_HOLE):
            return copy.deepcopy(parts[int(names[0][len(_HOLE):])])
        return {k: _fill(v, parts) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_fill(v, parts) for v in obj]
    return obj


def column(*names: str) -> dict:
    """A column reference (`column("p", "person_id")` is `p.person_id`)."""
    return {"class": "COLUMN_REF", "type": "COLUMN_REF", "alias": "", "column_names": list(names)}


def aliased(expr: dict, alias: str) -> dict:
    out = copy.deepcopy(expr)
    out["alias"] = alias
    return out


def any_of(conditions: list[dict]) -> dict:
    """`c1 OR c2 OR ...`"""
    expr = conditions[0]
    for other in conditions[1:]:
        expr = build("{0} OR {1}", expr, other)
    return expr


def function_name(expr: dict) -> str:
    return str(expr.get("function_name", "")).lower()


def arguments(expr: dict) -> list[dict]:
    """The argument expressions of a FUNCTION node."""
    return [a["expression"] if "expression" in a else a for a in expr.get("arguments", [])]


@functools.lru_cache(maxsize=1)
def aggregate_names() -> frozenset[str]:
    """Names of DuckDB's aggregate functions, and of the macros that expand to one
    (`geomean`, `weighted_avg`, ...): a column calling one of them is an aggregate."""
    cursor = gate.parser_cursor()
    try:
        names = {r[0].lower() for r in cursor.execute(
            "SELECT DISTINCT function_name FROM duckdb_functions() WHERE function_type = 'aggregate'").fetchall()}
        macros = cursor.execute("SELECT function_name, macro_definition FROM duckdb_functions() "
                                "WHERE function_type = 'macro' AND macro_definition IS NOT NULL").fetchall()
    finally:
        cursor.close()
    calls: dict[str, set[str]] = {}
    for name, definition in macros:
        try:
            tree = gate.parse_tree(f"SELECT {definition}")
        except gate.Unparsable:
            continue
        calls[name.lower()] = {function_name(n) for n in walk(tree) if n.get("class") == "FUNCTION"}
    changed = True
    while changed:  # a macro calling a macro that aggregates aggregates too
        changed = False
        for name, called in calls.items():
            if name not in names and called & names:
                names.add(name)
                changed = True
    return frozenset(names)


def is_aggregate_call(expr: dict) -> bool:
    return expr.get("class") == "FUNCTION" and function_name(expr) in aggregate_names()
