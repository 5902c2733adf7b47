"""Which aggregate SELECTs produce the cells of a provenance query (pure, on DuckDB's parse tree).

`read_shape(tree)` follows the query from its result down to the SELECTs that aggregate
(`Branch`): through `UNION [ALL]` (margins written by hand), through wrappers that only
filter, reorder, rename or sort the aggregated rows (`SELECT * | columns FROM (...)` or a CTE,
`WHERE`, `ORDER BY`, `LIMIT` with `ORDER BY`), with the CTEs in scope of each. Every output
column is, in every branch, either a *label* (an expression of the group keys: plain, CASE,
binned, `GROUPING()`, a constant such as `'All'`) or a *measure*: exactly one supported
aggregate (`MEASURE_FUNCTIONS`), optionally with `FILTER (WHERE ...)` and `DISTINCT` (count),
inside constant-only arithmetic, casts and rounding (`round(100.0 * avg(x), 1)`).

Anything else raises `Unsupported` with the precise reason shown to the checker: window
functions over cells, several aggregates in one column, unsupported aggregates, functions that
give another result on each run (`random()`), samples, `LIMIT` without `ORDER BY`, recursive
CTEs, `INTERSECT`/`EXCEPT`, names starting with `spe_` (reserved for the rewrite).

How the persons behind each branch are found is `egress.provenance.persons`; the evidence
query is `egress.provenance.evidence`. Pure; must not import the sandbox or the web layer.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from egress.provenance.tree import (NONDETERMINISTIC, arguments, build, expressions, function_name,
                                    is_aggregate_call, walk)

RESERVED_PREFIX = "spe_"

# Aggregates a measure may use, by the name the rules know them by (egress.checks.rules).
MEASURE_FUNCTIONS = {
    "count": "count", "count_star": "count", "count_if": "count", "countif": "count",
    "sum": "sum", "fsum": "sum", "sumkahan": "sum", "kahan_sum": "sum", "sum_no_overflow": "sum",
    "avg": "avg", "mean": "avg", "favg": "avg",
    "min": "min", "max": "max", "median": "median", "mode": "mode",
    "quantile": "quantile_cont", "quantile_cont": "quantile_cont", "quantile_disc": "quantile_disc",
    "stddev": "stddev", "stddev_samp": "stddev_samp", "stddev_pop": "stddev_pop",
    "variance": "variance", "var_samp": "var_samp", "var_pop": "var_pop",
}


class Unsupported(Exception):
    """The query is outside what evidence can be derived for; the message says why."""


class Nondeterministic(Unsupported):
    """The query gives another result on each run (random(), a sample): a mismatch with the
    submitted table is expected, not a sign of tampering."""


@dataclass(frozen=True)
class Measure:
    """One measure column of one branch: `function(argument) FILTER (WHERE filter)`."""

    function: str                 # the rules' name (`MEASURE_FUNCTIONS` values)
    argument: dict | None         # None: the rows are counted (count(*), count_if)
    filter: dict | None           # the aggregate's FILTER, with count_if's condition
    distinct: bool = False

    @property
    def is_count(self) -> bool:
        return self.function == "count"


@dataclass
class Branch:
    """An aggregate SELECT whose rows are cells of the result.

    node:    a copy of the SELECT node; its `cte_map` holds every CTE in its scope, outer first;
    columns: output column i is `node.select_list[columns[i]]`;
    top:     the node is the whole query (its result is the table itself).
    """

    node: dict
    columns: list[int]
    top: bool = False
    measures: dict[int, Measure] = field(default_factory=dict)  # output position -> measure


@dataclass(frozen=True)
class QueryShape:
    branches: tuple[Branch, ...]
    labels: tuple[int, ...]        # output positions of the label columns
    measures: tuple[int, ...]      # output positions of the measure columns
    aggregates: tuple[str, ...]    # the aggregate of each measure column
    width: int


def read_shape(tree: dict) -> QueryShape:
    """The branches of an accepted query's parse tree and what each output column is."""
    statements = tree.get("statements") or []
    if tree.get("error") or len(statements) != 1:
        raise Unsupported("the query could not be parsed into one SELECT")
    root = statements[0]["node"]
    _check_whole_query(root)
    found = _branches(root, [], top=True)
    width = len(found[0].columns)
    if any(len(b.columns) != width for b in found):
        raise Unsupported("the parts of the UNION have different numbers of columns")
    kinds: list[set[str]] = [set() for _ in range(width)]
    aggregates: list[set[str]] = [set() for _ in range(width)]
    for branch in found:
        for position, index in enumerate(branch.columns):
            expr = branch.node["select_list"][index]
            measure = _measure(expr, _describe(expr, position))
            kinds[position].add("label" if measure is None else "measure")
            if measure is not None:
                branch.measures[position] = measure
                aggregates[position].add("count" if measure.is_count else "magnitude")
    for position, kind in enumerate(kinds):
        if len(kind) > 1:
            raise Unsupported(f"column {position + 1} is an aggregate in one part of the UNION and not in another")
        if len(aggregates[position]) > 1:
            raise Unsupported(f"column {position + 1} is a count in one part of the UNION and a magnitude in another")
    measures = tuple(p for p in range(width) if kinds[p] == {"measure"})
    if not measures:
        raise Unsupported("the query has no aggregate: it is not a table of cells")
    labels = tuple(p for p in range(width) if p not in measures)
    functions = tuple(found[0].measures[p].function for p in measures)
    return QueryShape(tuple(found), labels, measures, functions, width)


# --- the whole query ------------------------------------------------------------------------

def _check_whole_query(root: dict) -> None:
    for node in walk(root):
        kind = node.get("type")
        if node.get("class") == "FUNCTION" and function_name(node) in NONDETERMINISTIC:
            raise Nondeterministic(f"{function_name(node)}() gives another result on every run: the table cannot "
                              "be re-executed to the same result")
        if node.get("sample") is not None:
            raise Nondeterministic("USING SAMPLE / TABLESAMPLE draws a random sample: the table cannot be "
                              "re-executed to the same result")
        if kind == "RECURSIVE_CTE_NODE":
            raise Unsupported("recursive CTEs (WITH RECURSIVE) are not supported for evidence")
        if kind in ("SELECT_NODE", "SET_OPERATION_NODE"):
            _check_modifiers(node)
        for name in _names_defined(node):
            if name.lower().startswith(RESERVED_PREFIX):
                raise Unsupported(f"the name {name!r} starts with {RESERVED_PREFIX!r}, which the checker "
                                  "reserves for its evidence query: rename it")


def _check_modifiers(node: dict) -> None:
    modifiers = node.get("modifiers") or []
    ordered = any(m.get("type") == "ORDER_MODIFIER" and m.get("orders") for m in modifiers)
    for m in modifiers:
        if m.get("type") in ("LIMIT_MODIFIER", "LIMIT_PERCENT_MODIFIER") and not ordered:
            raise Unsupported("LIMIT/OFFSET without ORDER BY picks arbitrary rows: add an ORDER BY that "
                              "decides which rows are kept")
        if m.get("type") == "DISTINCT_MODIFIER" and m.get("distinct_on_targets"):
            raise Unsupported("DISTINCT ON keeps an arbitrary row per key: not supported for evidence")


def _names_defined(node: dict) -> list[str]:
    names = []
    if node.get("alias"):
        names.append(node["alias"])
    names.extend(a for a in node.get("column_name_alias") or () if isinstance(a, str))
    if node.get("class") == "COLUMN_REF":
        names.extend(node.get("column_names") or ())
    if "cte_map" in node:
        for entry in node["cte_map"].get("map", []):
            names.append(entry["key"])
            names.extend(entry["value"].get("aliases") or ())
    return names


# --- branches -----------------------------------------------------------------------------

def is_aggregate_node(node: dict) -> bool:
    """Does this SELECT aggregate its rows (GROUP BY, GROUP BY ALL, HAVING or an aggregate)?"""
    if node.get("type") != "SELECT_NODE":
        return False
    if node.get("group_expressions") or node.get("aggregate_handling") == "FORCE_AGGREGATES" or node.get("having"):
        return True
    return any(is_aggregate_call(e) for item in node.get("select_list", []) for e in expressions(item))


def _branches(node: dict, scope: list[dict], *, top: bool) -> list[Branch]:
    scope = scope + list(node.get("cte_map", {}).get("map", []))
    kind = node.get("type")
    if kind == "SET_OPERATION_NODE":
        if node.get("setop_type") != "UNION":
            what = "UNION BY NAME" if node.get("setop_type") == "UNION_BY_NAME" else node.get("setop_type")
            raise Unsupported(f"{what} of aggregated rows is not supported for evidence (UNION [ALL] is)")
        children = node.get("children") or [c for c in (node.get("left"), node.get("right")) if c]
        return [b for child in children for b in _branches(child, scope, top=False)]
    if kind != "SELECT_NODE":
        raise Unsupported(f"{kind} queries are not supported for evidence")
    if is_aggregate_node(node):
        if any(item.get("class") in ("STAR", "COLUMNS") for item in node["select_list"]):
            raise Unsupported("SELECT * / COLUMNS(...) in an aggregate query: name the label and measure columns")
        branch_node = copy.deepcopy(node)
        names = {e["key"] for e in scope}
        if len(names) != len(scope):
            raise Unsupported("two CTEs of the query have the same name: rename one")
        branch_node["cte_map"] = {"map": copy.deepcopy(scope)}
        return [Branch(branch_node, list(range(len(node["select_list"]))), top=top)]
    return _wrapped(node, scope)


def _wrapped(node: dict, scope: list[dict]) -> list[Branch]:
    """A SELECT over aggregated rows that only filters, reorders or renames them."""
    source = node.get("from_table") or {}
    if source.get("type") == "SUBQUERY":
        inner = source["subquery"]["node"]
        names = output_names(inner)
        rename = source.get("column_name_alias") or []
    elif cte_entry(scope, source) is not None:
        entry = cte_entry(scope, source)
        inner = entry["value"]["query_node"]
        names = output_names(inner)
        rename = (entry["value"].get("aliases") or []) + (source.get("column_name_alias") or [])
        scope = scope[:scope.index(entry)]  # a CTE sees the CTEs defined before it
    elif source.get("type") in ("BASE_TABLE", "JOIN", "TABLE_FUNCTION", "EMPTY", "EXPRESSION_LIST", None):
        raise Unsupported("the query has no aggregate: it is not a table of cells")
    else:
        raise Unsupported(f"a {source.get('type')} in FROM is not supported for evidence")
    for i, alias in enumerate(rename[:len(names)]):
        names[i] = alias
    inner_branches = _branches(inner, scope, top=False)
    mapping: list[int] = []
    for position, item in enumerate(node["select_list"]):
        if item.get("class") == "STAR" and not (item.get("exclude_list") or item.get("replace_list")
                                                or item.get("columns") or item.get("expr")
                                                or item.get("rename_list") or item.get("qualified_exclude_list")):
            mapping.extend(range(len(names)))
        elif item.get("class") == "COLUMN_REF" and _find(names, item["column_names"][-1]) is not None:
            mapping.append(_find(names, item["column_names"][-1]))
        else:
            raise Unsupported(f"{_describe(item, position)} is computed from the aggregated rows: only "
                              "selecting, renaming, filtering and sorting them is supported; compute it "
                              "in the aggregate SELECT")
    return [Branch(b.node, [b.columns[i] for i in mapping], top=False) for b in inner_branches]


def cte_entry(scope: list[dict], ref: dict) -> dict | None:
    """The CTE (`{"key", "value"}` of a cte_map) a FROM reference names, innermost first."""
    if ref.get("type") != "BASE_TABLE" or ref.get("schema_name") or ref.get("catalog_name"):
        return None
    for entry in reversed(scope):
        if entry["key"].lower() == str(ref.get("table_name", "")).lower():
            return entry
    return None


def output_names(node: dict) -> list[str | None]:
    """The column names a query node outputs, as far as the parse tree tells (None: a name
    DuckDB derives, which no wrapper can refer to)."""
    if node.get("type") == "SET_OPERATION_NODE":
        children = node.get("children") or [node.get("left")]
        return output_names(children[0])
    names: list[str | None] = []
    for item in node.get("select_list", []):
        if item.get("alias"):
            names.append(item["alias"])
        elif item.get("class") == "COLUMN_REF":
            names.append(item["column_names"][-1])
        else:
            names.append(None)
    return names


def _find(names: list[str | None], name: str) -> int | None:
    matches = [i for i, n in enumerate(names) if n is not None and n.lower() == name.lower()]
    return matches[0] if len(matches) == 1 else None


# --- measures ---------------------------------------------------------------------------------

def _measure(expr: dict, what: str) -> Measure | None:
    """The measure of a SELECT-list expression, None for a label; Unsupported otherwise."""
    nodes = list(expressions(expr))
    if any(n.get("class") == "WINDOW" for n in nodes):
        raise Unsupported(f"{what} uses a window function over the cells (e.g. a share of the total or a "
                          "rank): publish the aggregates themselves; a checker can derive shares from them")
    calls = [n for n in nodes if is_aggregate_call(n)]
    if not calls:
        return None
    if len(calls) > 1:
        raise Unsupported(f"{what} combines several aggregates (e.g. a ratio): publish each aggregate in a "
                          "column of its own")
    call = calls[0]
    name = function_name(call)
    if name not in MEASURE_FUNCTIONS:
        raise Unsupported(f"{what}: the aggregate {name}() is not supported for evidence "
                          f"(supported: {', '.join(sorted(set(MEASURE_FUNCTIONS)))})")
    inside = {id(n) for n in expressions(call)}
    for node in nodes:
        if id(node) not in inside and node.get("class") in _NOT_CONSTANT:
            raise Unsupported(f"{what} combines {name}() with values other than constants: put the other values "
                              "in label columns or inside the aggregate")
    function = MEASURE_FUNCTIONS[name]
    args = arguments(call)
    distinct = bool(call.get("distinct"))
    if distinct and function != "count":
        raise Unsupported(f"{what}: {name}(DISTINCT ...) is not supported for evidence (count(DISTINCT ...) is)")
    condition = call.get("filter")
    if name in ("count_if", "countif"):
        if len(args) != 1:
            raise Unsupported(f"{what}: {name}() takes one condition")
        condition = args[0] if condition is None else build("({0}) AND ({1})", condition, args[0])
        argument = None
    elif name == "count_star" or (name == "count" and not args):
        argument = None
    else:
        if not args:
            raise Unsupported(f"{what}: {name}() without an argument")
        if function in ("min", "max") and len(args) > 1:
            raise Unsupported(f"{what}: {name}(x, n) returns a list, not a cell value")
        if any(not _constant(a) for a in args[1:]):
            raise Unsupported(f"{what}: the extra arguments of {name}() must be constants")
        argument = args[0]
    return Measure(function, copy.deepcopy(argument), copy.deepcopy(condition), distinct)


_NOT_CONSTANT = frozenset({"COLUMN_REF", "SUBQUERY", "STAR", "COLUMNS", "PARAMETER", "LAMBDA", "WINDOW"})


def _constant(expr: Any) -> bool:
    return not any(n.get("class") in _NOT_CONSTANT or is_aggregate_call(n) for n in expressions(expr))


def _describe(expr: dict, position: int) -> str:
    if expr.get("alias"):
        return f"column {expr['alias']!r}"
    if expr.get("class") == "COLUMN_REF":
        return f"column {expr['column_names'][-1]!r}"
    return f"column {position + 1}"
