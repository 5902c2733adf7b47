"""The evidence rewrite: from a provenance query to per-cell person counts and contributions.

`plan_evidence` (pure, on DuckDB's parse tree from `egress.provenance.gate`) checks that the
query is in the supported form and rewrites it: its SELECT list becomes the labels, `person_id`
and the aggregates' arguments; GROUP BY/HAVING/ORDER BY/LIMIT are dropped. `run_evidence`
aggregates that base per (cell, person) and per cell, in the sandbox. Supported form (anything
else is still re-executed and compared, but has no evidence, and is marked unverified):

    [WITH ...] SELECT <label expr> [AS name], ..., <agg>(<expr>) [AS name], ...
    FROM <tables/joins/subqueries exposing person_id> [WHERE ...]
    GROUP BY <one key per label> | GROUP BY ALL   [HAVING ...] [ORDER BY ...] [LIMIT ...]

with <agg> one of count(*), count(x), count(DISTINCT x), sum, avg/mean, median, min, max,
stddev/variance (optionally wrapped in round()/CAST), without FILTER or ORDER BY inside the
aggregate. HAVING only removes cells, so evidence is computed for every cell and matched to the
table by label values.

When the FROM clause is a single extract table with one row per person (unique, non-null
`person_id`), the per-person step is skipped (rows are persons), and for pure row counts the
re-executed result itself is the evidence.

Must not import the web layer; runs SQL only through the sandbox it is given.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Collection

import pyarrow as pa

from egress.checks.evidence import COUNT_AGGREGATES, MAGNITUDE_AGGREGATES, CellEvidence, Evidence, label_key
from egress.exceptions import ProvenanceRefused
from egress.provenance.gate import Unparsable, parse_tree, to_sql

if TYPE_CHECKING:
    from egress.provenance.runner import Sandbox

PERSON_KEY = "person_id"
_WRAPPERS = frozenset({"round", "floor", "ceil", "ceiling", "trunc", "abs"})


@dataclass(frozen=True)
class EvidencePlan:
    """The rewritten query (`base_tree`) and what each output column of the original is."""

    label_names: tuple[str, ...]
    measure_names: tuple[str, ...]
    aggregates: tuple[str, ...]
    base_tree: dict = field(repr=False)
    single_table: str | None = None     # FROM is exactly this extract table (no join, no subquery)
    row_counts: bool = False            # every measure is count(*) or count(x) (not DISTINCT)


class Unsupported(Exception):
    """The query is outside the supported form for evidence; the message says why."""


def plan_evidence(query: str, recomputed: pa.Table, tables: Collection[str]) -> EvidencePlan:
    """How to derive evidence for `query` (an accepted SELECT) whose result is `recomputed`;
    `tables`: the extract's table names. Pure (DuckDB's parser only); Unsupported says why not."""
    try:
        tree = parse_tree(query)
    except Unparsable as err:
        raise Unsupported(str(err)) from None
    statements = tree.get("statements") or []
    if tree.get("error") or len(statements) != 1:
        raise Unsupported("the query could not be parsed into one SELECT")
    node = statements[0]["node"]
    if node.get("type") != "SELECT_NODE":
        raise Unsupported("set operations (UNION/EXCEPT/INTERSECT) are not in the supported form")
    if any(m.get("type") == "DISTINCT_MODIFIER" for m in node.get("modifiers", [])):
        raise Unsupported("SELECT DISTINCT is not in the supported form")
    if node.get("qualify") is not None or node.get("sample") is not None:
        raise Unsupported("QUALIFY/SAMPLE are not in the supported form")
    select_list = node["select_list"]
    if len(select_list) != recomputed.num_columns:
        raise Unsupported("SELECT * is not in the supported form")
    labels, measures, aggregates, arguments, row_counts = [], [], [], [], []
    for position, expr in enumerate(select_list):
        name = recomputed.column_names[position]
        if expr.get("class") in ("STAR", "COLUMNS"):
            raise Unsupported("SELECT * / COLUMNS(...) is not in the supported form")
        aggregate = _unwrap_aggregate(expr)
        if aggregate is None:
            if _contains_aggregate(expr):
                raise Unsupported(f"column {name!r}: only one aggregate per column, optionally inside "
                                  "round()/CAST, is in the supported form")
            labels.append((name, expr))
            continue
        function = aggregate["function_name"].lower()
        if aggregate.get("filter") is not None or aggregate.get("order_bys", {}).get("orders"):
            raise Unsupported(f"column {name!r}: FILTER/ORDER BY inside an aggregate is not in the supported form")
        if function not in COUNT_AGGREGATES and function not in MAGNITUDE_AGGREGATES:
            raise Unsupported(f"column {name!r}: aggregate {function}() is not in the supported form")
        if aggregate.get("distinct") and function not in COUNT_AGGREGATES:
            raise Unsupported(f"column {name!r}: {function}(DISTINCT ...) is not in the supported form")
        args = aggregate.get("arguments", [])
        if function == "count_star" or (function == "count" and not args):
            argument = None
        elif args:
            argument = args[0]["expression"]  # quantile_cont(x, 0.5): the measure is x
        else:
            raise Unsupported(f"column {name!r}: {function}() without an argument")
        measures.append(name)
        row_counts.append(function == "count_star" or (function == "count" and not aggregate.get("distinct")))
        aggregates.append("count" if function in COUNT_AGGREGATES else function)
        arguments.append(argument)
    if not measures:
        raise Unsupported("the query has no aggregate: it is not a table of cells")
    group_expressions = node.get("group_expressions", [])
    if node.get("aggregate_handling") != "FORCE_AGGREGATES":
        if len(node.get("group_sets", [])) > 1:
            raise Unsupported("GROUPING SETS/ROLLUP/CUBE are not in the supported form")
        if len(group_expressions) != len(labels):
            raise Unsupported(f"GROUP BY has {len(group_expressions)} key(s) for {len(labels)} label column(s); "
                              "group by exactly the label columns")
    base = copy.deepcopy(tree)
    base_node = base["statements"][0]["node"]
    new_list = []
    for i, (_, expr) in enumerate(labels):
        item = copy.deepcopy(expr)
        item["alias"] = f"spe_l{i}"
        new_list.append(item)
    new_list.append({"class": "COLUMN_REF", "type": "COLUMN_REF", "alias": "spe_p", "column_names": [PERSON_KEY]})
    for j, argument in enumerate(arguments):
        item = copy.deepcopy(argument) if argument is not None else {
            "class": "CONSTANT", "type": "VALUE_CONSTANT", "alias": "", "literal": {"kind": "INTEGER", "text": "1"}}
        item["alias"] = f"spe_m{j}"
        new_list.append(item)
    base_node["select_list"] = new_list
    base_node["group_expressions"] = []
    base_node["group_sets"] = []
    base_node["aggregate_handling"] = "STANDARD_HANDLING"
    base_node["having"] = None
    base_node["modifiers"] = []
    label_names = tuple(n for n, _ in labels)
    key_columns = [recomputed.column(n).to_pylist() for n in label_names]
    keys = [label_key(v) for v in zip(*key_columns)] if key_columns else [()] * recomputed.num_rows
    if len(set(keys)) != len(keys):
        raise Unsupported("the label columns do not identify the cells uniquely")
    source = node.get("from_table") or {}
    single = source.get("table_name") if (source.get("type") == "BASE_TABLE" and not source.get("schema_name")
                                          and not source.get("catalog_name") and not node["cte_map"]["map"]) else None
    return EvidencePlan(label_names, tuple(measures), tuple(aggregates), base,
                        single if single in tables else None, all(row_counts))


def run_evidence(sandbox: "Sandbox", plan: EvidencePlan, top_n: int, recomputed: pa.Table | None = None) -> Evidence:
    """Run the evidence query of `plan` in `sandbox`: distinct persons, the `top_n` largest
    per-person contributions, totals, missing and negative values per cell; with `recomputed`
    (the compared result), pure row counts of a table with one row per person are read from it
    without a second scan."""
    if (recomputed is not None and plan.row_counts and plan.single_table is not None
            and sandbox.one_row_per_person(plan.single_table)):
        # Counting rows of a table with one row per person counts persons: the re-executed
        # result (already compared with the submission) is the evidence, no second scan.
        return evidence_from_counts(plan, recomputed)
    labels = [f"spe_l{i}" for i in range(len(plan.label_names))]
    measures = range(len(plan.measure_names))
    per_person = ", ".join(
        [f"count(spe_m{j}) AS spe_n{j}, sum(spe_m{j}) AS spe_c{j}, "
         f"count(*) - count(spe_m{j}) AS spe_miss{j}, count_if(spe_m{j} < 0) AS spe_neg{j}"
         if plan.aggregates[j] != "count" else f"count(spe_m{j}) AS spe_n{j}"
         for j in measures])
    per_cell = ", ".join(
        [f"count_if(spe_n{j} > 0 AND spe_p IS NOT NULL) AS spe_persons{j}"
         + (f", sum(spe_c{j}) AS spe_total{j}, max(spe_c{j}, {top_n}) AS spe_top{j}, "
            f"sum(spe_miss{j}) AS spe_miss{j}, sum(spe_neg{j}) AS spe_neg{j}"
            if plan.aggregates[j] != "count" else "")
         for j in measures])
    group = ", ".join(labels + ["spe_p"])
    cell_group = f"GROUP BY {', '.join(labels)}" if labels else ""
    label_select = (", ".join(labels) + ", ") if labels else ""
    if plan.single_table is not None and sandbox.one_row_per_person(plan.single_table):
        # Every base row is a different person: aggregate the rows per cell in one pass.
        per_cell = ", ".join(
            # person_id is known non-null and unique here, so it need not even be read.
            [f"count(spe_m{j}) AS spe_persons{j}"
             + (f", sum(spe_m{j}) AS spe_total{j}, max(spe_m{j}, {top_n}) AS spe_top{j}, "
                f"count(*) - count(spe_m{j}) AS spe_miss{j}, count_if(spe_m{j} < 0) AS spe_neg{j}"
                if plan.aggregates[j] != "count" else "")
             for j in measures])
        per_person = None
    errors = []
    result = None
    # `person_id` unqualified first; if a join makes it ambiguous, qualify it with each base
    # table (or alias) of the FROM clause in turn.
    for qualifier in [None] + _relations(plan.base_tree["statements"][0]["node"].get("from_table")):
        tree = copy.deepcopy(plan.base_tree)
        person = next(e for e in tree["statements"][0]["node"]["select_list"] if e.get("alias") == "spe_p")
        person["column_names"] = [PERSON_KEY] if qualifier is None else [qualifier, PERSON_KEY]
        try:
            base_sql = to_sql(tree)
        except Unparsable as err:
            raise Unsupported(str(err)) from None
        if per_person is None:
            # A subquery, not a CTE: DuckDB may materialise a CTE, which costs a full copy.
            sql = f"SELECT {label_select}{per_cell} FROM (\n{base_sql}\n) AS spe_base {cell_group}"
        else:
            sql = (f"SELECT {label_select}{per_cell} FROM (SELECT {group}, {per_person} "
                   f"FROM (\n{base_sql}\n) AS spe_base GROUP BY {group}) AS spe_pp {cell_group}")
        try:
            result = sandbox.run(sql)
            break
        except ProvenanceRefused as err:
            errors.append(str(err))
    if result is None:
        raise Unsupported(f"the evidence query could not run (does every row carry {PERSON_KEY}?): {errors[0]}")
    rows = result.to_pylist()
    cells: dict[tuple[tuple, str], CellEvidence] = {}
    for row in rows:
        key = label_key(row[label] for label in labels)
        for j in measures:
            if plan.aggregates[j] == "count":
                cell = CellEvidence(persons=int(row[f"spe_persons{j}"]), aggregate="count")
            else:
                top = tuple(float(v) for v in (row[f"spe_top{j}"] or []) if v is not None)
                total = row[f"spe_total{j}"]
                cell = CellEvidence(persons=int(row[f"spe_persons{j}"]),
                                    total=None if total is None else float(total), top=top,
                                    negative=int(row[f"spe_neg{j}"] or 0), missing=int(row[f"spe_miss{j}"] or 0),
                                    aggregate=plan.aggregates[j])
            cells[(key, plan.measure_names[j])] = cell
    return Evidence(label_columns=plan.label_names, cells=cells, source="provenance")


def evidence_from_counts(plan: EvidencePlan, recomputed: pa.Table) -> Evidence:
    label_values = [recomputed.column(n).to_pylist() for n in plan.label_names]
    keys = [label_key(v) for v in zip(*label_values)] if label_values else [()] * recomputed.num_rows
    cells: dict[tuple[tuple, str], CellEvidence] = {}
    for name in plan.measure_names:
        for key, value in zip(keys, recomputed.column(name).to_pylist()):
            if value is not None:
                cells[(key, name)] = CellEvidence(persons=int(value), aggregate="count")
    return Evidence(label_columns=plan.label_names, cells=cells, source="provenance")


def _relations(from_table: Any) -> list[str]:
    """Names (alias, else table name) of the base tables and subqueries in a FROM tree."""
    if not isinstance(from_table, dict):
        return []
    kind = from_table.get("type")
    if kind in ("BASE_TABLE", "SUBQUERY", "TABLE_FUNCTION"):
        name = from_table.get("alias") or from_table.get("table_name")
        return [name] if name else []
    if kind == "JOIN":
        return _relations(from_table.get("left")) + _relations(from_table.get("right"))
    return []


def _unwrap_aggregate(expr: dict) -> dict | None:
    kind = expr.get("class")
    if kind == "FUNCTION":
        name = expr.get("function_name", "").lower()
        if name in COUNT_AGGREGATES or name in MAGNITUDE_AGGREGATES:
            return expr
        args = [a["expression"] for a in expr.get("arguments", [])]
        if name in _WRAPPERS and args and all(a.get("class") == "CONSTANT" for a in args[1:]):
            return _unwrap_aggregate(args[0])
        return None
    if kind == "CAST":
        return _unwrap_aggregate(expr["child"])
    return None


def _contains_aggregate(expr: Any) -> bool:
    if isinstance(expr, dict):
        if expr.get("class") == "FUNCTION" and expr.get("function_name", "").lower() in (
                COUNT_AGGREGATES | MAGNITUDE_AGGREGATES):
            return True
        if expr.get("class") == "WINDOW":
            return True
        return any(_contains_aggregate(v) for v in expr.values())
    if isinstance(expr, list):
        return any(_contains_aggregate(v) for v in expr)
    return False
