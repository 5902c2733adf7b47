"""The evidence rewrite: per-cell persons and per-person contributions for any aggregate query.

`plan_evidence(query, tables, rows_are_persons)` reads the query's shape (`shape.read_shape`:
the aggregate SELECTs that produce cells, their label and measure columns), traces the person
behind every row of each one (`persons.Tracer`) and rewrites each aggregate SELECT into an
evidence query whose grouping is the original's (GROUP BY, GROUPING SETS, ROLLUP, CUBE, GROUP
BY ALL, positional keys: DuckDB's own binder applies them), in one of three forms:

- **single scan** (the query is one aggregate SELECT over rows that are persons, e.g. an
  extract table with one row per person, and the rewrite changed no row): the original query
  with evidence aggregates appended to its SELECT list; its first columns are the re-executed
  table, so one scan gives both (`EvidencePlan.single_scan`);
- **rows are persons** (same, inside a UNION or a wrapper): one row per cell with the evidence
  aggregates next to the original ones;
- **per person** (anything else: joins, several rows per person): a first level groups by the
  original grouping sets *and* each of them extended with the person (`GROUPING SETS (s, s ∪
  {person})`), so the original cells and their per-person contributions come from the same rows
  in one scan; a second level folds the person rows of each cell (distinct persons, the largest
  contributions, totals) and keeps the original cell's value.

`run_evidence` runs the queries in the sandbox and *verifies* them: every cell of the
re-executed table must have exactly one evidence row with the same label values, and the value
the evidence query computed for it must equal the re-executed value. Evidence that does not
verify is dropped with the reason (the table is then unverified), never used.

Per cell and measure: distinct persons with a value, number of values, the `top_n` largest
per-person contributions and their total (sum/avg), missing (NULL) and negative values, and,
with `person_sets=True`, the hashed persons (for differencing, `egress.checks.differencing`).

Must not import the web layer; runs SQL only through the sandbox it is given.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

import pyarrow as pa

from egress.checks.evidence import CellEvidence, Evidence, PersonSet, label_key
from egress.checks.tables import is_numeric
from egress.exceptions import ProvenanceLimit, ProvenanceRefused
from egress.provenance.gate import Unparsable, parse_tree, to_sql
from egress.provenance.persons import DEFAULT_PERSON_KEY, Person, TableFacts, Tracer, is_person
from egress.provenance.shape import Branch, Measure, QueryShape, Unsupported, read_shape
from egress.provenance.tree import aliased, any_of, build, expressions, is_aggregate_call

if TYPE_CHECKING:
    from egress.provenance.runner import Sandbox

PERSON_KEY = DEFAULT_PERSON_KEY
LINEAR = frozenset({"sum", "avg"})


@dataclass(frozen=True)
class BranchQuery:
    """The evidence query of one branch: label values at column indices `labels`, per measure
    j the columns `spe_<stat>{j}` and the cell's value at `values[j]` (else column `spe_v{j}`)."""

    sql: str
    labels: tuple[int, ...]
    values: tuple[int, ...]
    per_person: bool             # a second level folded person rows (spe_cells counts cells)
    reused: tuple[bool, ...]     # measure j's value is its person count (count(*) of rows that are persons)


@dataclass(frozen=True)
class EvidencePlan:
    shape: QueryShape
    branches: tuple[BranchQuery, ...]
    single_scan: BranchQuery | None = None  # the query that is both the table and its evidence
    person_sets: bool = False

    @property
    def aggregates(self) -> tuple[str, ...]:
        return self.shape.aggregates


def plan_evidence(query: str, tables: Mapping[str, TableFacts], rows_are_persons: Callable[[str], bool], *,
                  top_n: int = 2, person_sets: bool = False) -> EvidencePlan:
    """How to derive evidence for `query` (an accepted SELECT). `tables`: the extract's tables;
    `rows_are_persons(table)`: does the table have one row per person. Unsupported says why not."""
    try:
        tree = parse_tree(query)
    except Unparsable as err:
        raise Unsupported(str(err)) from None
    shape = read_shape(tree)
    queries = []
    single = None
    for branch in shape.branches:
        tracer = Tracer(tables, rows_are_persons)
        node = branch.node
        person = tracer.relation(node.get("from_table"), list(node["cte_map"]["map"]))
        if person is None:
            raise Unsupported(f"the query reads no extract table with a person key ({PERSON_KEY}): the persons "
                              "behind its cells are unknown")
        distinct = any(m.get("type") == "DISTINCT_MODIFIER" for m in node.get("modifiers") or [])
        if person.unique and not person.conflicts:
            if branch.top and person.exact and not distinct:
                single = _rows_query(tree, branch, shape, person, top_n, person_sets, whole=True)
                continue
            queries.append(_rows_query(tree, branch, shape, person, top_n, person_sets, whole=False))
        else:
            queries.append(_per_person_query(tree, branch, shape, person, top_n, person_sets))
    return EvidencePlan(shape, tuple(queries), single, person_sets)


# --- building the queries ---------------------------------------------------------------------

def _rows_query(tree: dict, branch: Branch, shape: QueryShape, person: Person, top_n: int, person_sets: bool,
                *, whole: bool) -> BranchQuery:
    """Rows are persons: the evidence aggregates next to the original ones, one row per cell.
    `whole`: keep the query as it is (HAVING, ORDER BY, LIMIT) and append the evidence, so that
    its first columns are the table."""
    node = branch.node
    stats: list[dict] = []
    reused = []
    for j, position in enumerate(shape.measures):
        measure = branch.measures[position]
        expr = node["select_list"][branch.columns[position]]
        # count(*) of rows that are persons, or count(DISTINCT person_id): the value is the persons
        reuse = (measure.is_count and is_aggregate_call(expr) and not person_sets
                 and (not measure.distinct or is_person(measure.argument, person.expr)))
        reused.append(reuse)
        if not reuse:
            stats.append(_call("count", measure.argument, measure.filter, alias=f"spe_persons{j}"))
        stats.extend(_magnitude_stats(measure, j, top_n))
        if person_sets:
            stats.append(_call("list", build("hash({0})", person.expr), measure.filter,
                               _not_null(measure.argument), alias=f"spe_set{j}"))
    if whole:
        node["select_list"] = node["select_list"] + stats
        return BranchQuery(_sql(tree, node), tuple(branch.columns[p] for p in shape.labels),
                           tuple(branch.columns[p] for p in shape.measures), False, tuple(reused))
    keys, labels = _node_labels(node, branch, shape)
    values = [aliased(node["select_list"][branch.columns[p]], f"spe_v{j}") for j, p in enumerate(shape.measures)]
    _strip(node)
    node["select_list"] = keys + values + stats
    inner = _sql(tree, node)
    outer = ", ".join([f"spe_a{k} AS spe_l{i}" for i, k in enumerate(labels)] + ["*"])
    sql = f"SELECT {outer} FROM (\n{inner}\n) AS {_renamed(len(keys))}"
    return BranchQuery(sql, tuple(range(len(labels))), (), False, tuple(reused))


def _per_person_query(tree: dict, branch: Branch, shape: QueryShape, person: Person, top_n: int,
                      person_sets: bool) -> BranchQuery:
    """Level 1: the original grouping sets and each extended with the person, one scan; level
    2: the person rows of each cell folded, next to the cell's own value."""
    node = branch.node
    keys, labels = _node_labels(node, branch, shape)
    groups, sets = _grouping(node)
    original = copy.deepcopy(groups)
    groups.append(person.expr)
    p = len(groups) - 1
    select = list(keys)
    if len(sets) > 1:
        select.append(build("GROUPING(" + ", ".join("{%d}" % i for i in range(len(original))) + ")",
                            *original, alias="spe_g"))
    select.append(build("GROUPING({0})", person.expr, alias="spe_o"))
    select.append(aliased(person.expr, "spe_p"))
    counts_persons = []
    for j, position in enumerate(shape.measures):
        measure = branch.measures[position]
        expr = node["select_list"][branch.columns[position]]
        # count(DISTINCT person_id) is the cell's persons: verified against them (a DISTINCT per
        # person row would cost a hash table per (cell, person) group for nothing)
        counts_persons.append(measure.distinct and is_aggregate_call(expr) and is_person(measure.argument,
                                                                                         person.expr))
        if not counts_persons[j]:
            select.append(aliased(expr, f"spe_v{j}"))
        select.append(_call("count", measure.argument, measure.filter, alias=f"spe_n{j}"))
        if not measure.is_count:
            select.append(_call("count", None, measure.filter, alias=f"spe_r{j}"))
        if measure.function in LINEAR:
            select.append(_negatives(measure, f"spe_neg{j}"))
            select.append(_call("sum", measure.argument, measure.filter, alias=f"spe_c{j}"))
    if person.conflicts:
        select.append(_call("bool_or", any_of(person.conflicts), None, alias="spe_x"))
    _strip(node)
    node["select_list"] = select
    node["group_expressions"] = groups
    node["group_sets"] = [list(s) for s in sets] + [list(s) + [p] for s in sets]
    node["aggregate_handling"] = "STANDARD_HANDLING"
    level1 = _sql(tree, node)
    # GROUPING(person) is 1 on the cell's own row (the original grouping set), 0 on its person rows
    stats = ["count(*) FILTER (WHERE spe_o = 1) AS spe_cells"]
    for j, position in enumerate(shape.measures):
        measure = branch.measures[position]
        mine = f"spe_o = 0 AND spe_n{j} > 0"
        persons = f"count(*) FILTER (WHERE {mine} AND spe_p IS NOT NULL)"
        value = persons if counts_persons[j] else f"any_value(spe_v{j}) FILTER (WHERE spe_o = 1)"
        stats += [f"{value} AS spe_v{j}", f"{persons} AS spe_persons{j}",
                  f"sum(spe_n{j}) FILTER (WHERE spe_o = 0) AS spe_values{j}"]
        if not measure.is_count:  # rows of the cell whose value is NULL
            stats.append(f"sum(spe_r{j} - spe_n{j}) FILTER (WHERE spe_o = 0) AS spe_miss{j}")
        if measure.function in LINEAR:
            stats += [f"sum(spe_neg{j}) FILTER (WHERE spe_o = 0) AS spe_neg{j}",
                      f"sum(spe_c{j}) FILTER (WHERE spe_o = 0) AS spe_total{j}",
                      f"max(spe_c{j}, {int(top_n)}) FILTER (WHERE {mine}) AS spe_top{j}"]
        if person_sets:
            stats.append(f"list(hash(spe_p)) FILTER (WHERE {mine} AND spe_p IS NOT NULL) AS spe_set{j}")
    if person.conflicts:
        stats.append("bool_or(spe_x) AS spe_x")
    cell = [f"spe_a{k}" for k in labels] + (["spe_g"] if len(sets) > 1 else [])
    label_select = [f"spe_a{k} AS spe_l{i}" for i, k in enumerate(labels)]
    sql = (f"SELECT {', '.join(label_select + stats)} FROM (\n{level1}\n) AS {_renamed(len(keys))}"
           + (f" GROUP BY {', '.join(cell)}" if cell else ""))
    return BranchQuery(sql, tuple(range(len(labels))), (), True, (False,) * len(shape.measures))


def _renamed(keys: int) -> str:
    """The alias of the evidence subquery: its first `keys` columns (the node's label items,
    whatever their names) renamed spe_a0, spe_a1, ..."""
    return "spe_b" + (f"({', '.join(f'spe_a{i}' for i in range(keys))})" if keys else "")


def _node_labels(node: dict, branch: Branch, shape: QueryShape) -> tuple[list[dict], list[int]]:
    """The node's non-aggregate SELECT items (aliases kept: GROUP BY may name them) and, per
    output label, its index among them."""
    keys, index = [], {}
    for i, item in enumerate(node["select_list"]):
        if not any(is_aggregate_call(e) or e.get("class") == "WINDOW" for e in expressions(item)):
            index[i] = len(keys)
            keys.append(item)
    return keys, [index[branch.columns[p]] for p in shape.labels]


def _grouping(node: dict) -> tuple[list[dict], list[list[int]]]:
    """The node's group keys (positional keys resolved, GROUP BY ALL spelled out) and sets."""
    select = node["select_list"]
    if node.get("aggregate_handling") == "FORCE_AGGREGATES":
        groups = [aliased(item, "") for item in select
                  if not any(is_aggregate_call(e) for e in expressions(item))]
        return groups, [list(range(len(groups)))] if groups else [[]]
    groups = []
    for expr in node.get("group_expressions") or []:
        literal = expr.get("literal", {}) if expr.get("class") == "CONSTANT" else {}
        if literal.get("kind") in ("INTEGER", "BIGINT") and 1 <= int(literal["text"]) <= len(select):
            expr = aliased(select[int(literal["text"]) - 1], "")  # GROUP BY 1: the first SELECT item
        groups.append(copy.deepcopy(expr))
    sets = [list(s) for s in node.get("group_sets") or []]
    return groups, sets or [[]]


def _strip(node: dict) -> None:
    """What only filters or orders the cells goes: evidence is derived for every cell."""
    node["having"] = None
    node["qualify"] = None
    node["modifiers"] = []


def _sql(tree: dict, node: dict) -> str:
    out = copy.deepcopy(tree)
    out["statements"][0]["node"] = node
    try:
        return to_sql(out)
    except Unparsable as err:
        raise Unsupported(str(err)) from None


def _call(function: str, argument: dict | None, *conditions: dict | None, alias: str) -> dict:
    """`function(argument) FILTER (WHERE c1 AND c2 ...)` (argument None: `count(*)`)."""
    parts = [c for c in conditions if c is not None]
    template = f"{function}(*)" if argument is None else f"{function}({{{len(parts)}}})"
    if parts:
        template += " FILTER (WHERE " + " AND ".join(f"({{{i}}})" for i in range(len(parts))) + ")"
    return build(template, *parts, *([argument] if argument is not None else []), alias=alias)


def _magnitude_stats(measure: Measure, j: int, top_n: int) -> list[dict]:
    """Rows are persons: the rows of the cell (missing values: rows - persons), and for sums and
    means the negative values, the total and the largest contributions."""
    if measure.is_count:
        return []
    stats = [_call("count", None, measure.filter, alias=f"spe_rows{j}")]
    if measure.function in LINEAR:
        stats.append(_negatives(measure, f"spe_neg{j}"))
        stats.append(_call("sum", measure.argument, measure.filter, alias=f"spe_total{j}"))
        top = build("max({0}, %d)" % int(top_n), measure.argument)
        if measure.filter is not None:
            top = build("max({0}, %d) FILTER (WHERE {1})" % int(top_n), measure.argument, measure.filter)
        stats.append(aliased(top, f"spe_top{j}"))
    return stats


def _negatives(measure: Measure, alias: str) -> dict:
    # count_if, not count(*) FILTER: DuckDB evaluates it several times faster
    if measure.filter is None:
        return build("count_if({0} < 0)", measure.argument, alias=alias)
    return build("count_if(({1}) AND {0} < 0)", measure.argument, measure.filter, alias=alias)


def _not_null(argument: dict | None) -> dict | None:
    return None if argument is None else build("{0} IS NOT NULL", argument)


# --- running and verifying --------------------------------------------------------------------

def run_evidence(sandbox: "Sandbox", plan: EvidencePlan, recomputed: pa.Table,
                 combined: pa.Table | None = None) -> Evidence:
    """Run the plan's evidence queries and verify them against the re-executed table
    `recomputed` (`combined`: the single scan's result, table and evidence in one)."""
    shape = plan.shape
    label_names = tuple(recomputed.column_names[p] for p in shape.labels)
    measure_names = tuple(recomputed.column_names[p] for p in shape.measures)
    for name, position in zip(measure_names, shape.measures):
        if not is_numeric(recomputed.schema.field(position).type):
            raise Unsupported(f"column {name!r}: the aggregate's value is not a number, not a cell the rules "
                              "can check")
    rows: dict[tuple, tuple[BranchQuery, dict, list]] = {}
    results = [(plan.single_scan, combined)] if plan.single_scan is not None else []
    for query in plan.branches:
        try:
            results.append((query, sandbox.run(query.sql)))
        except ProvenanceRefused as err:
            raise Unsupported(f"the evidence query could not run: {_why(str(err))}") from None
        except ProvenanceLimit as err:  # the table was re-executed: it is unverified, not refused
            raise Unsupported(f"the evidence query could not finish: {err}") from None
    for query, result in results:
        # the hashed persons of each cell straight into numpy (never Python ints: 10 M of them
        # would take gigabytes); everything else as Python values
        names = result.column_names
        columns = [_person_sets(column) if name.startswith("spe_set") else column.to_pylist()
                   for name, column in zip(names, result.columns)]
        for values in zip(*columns):
            row = dict(zip(names, values))
            if row.get("spe_x"):
                raise Unsupported("a join pairs rows of two different persons: join the tables on the person key")
            if query.per_person and row["spe_cells"] != 1:
                raise Unsupported("two cells of the query have the same label values: add the column that "
                                  "tells them apart")
            key = label_key(values[i] for i in query.labels)
            if key in rows:
                raise Unsupported(f"two cells of the query have the label values {key}: add the column that "
                                  "tells them apart")
            rows[key] = (query, row, list(values))
    return _verified(plan, recomputed, rows, label_names, measure_names)


def _verified(plan: EvidencePlan, recomputed: pa.Table, rows: dict, label_names, measure_names) -> Evidence:
    shape = plan.shape
    table_columns = [recomputed.column(p).to_pylist() for p in range(recomputed.num_columns)]
    cells: dict[tuple[tuple, str], CellEvidence] = {}
    for r in range(recomputed.num_rows):
        key = label_key(table_columns[p][r] for p in shape.labels)
        found = rows.get(key)
        if found is None:
            raise Unsupported(f"the evidence query has no cell {key}: evidence not verified")
        query, row, values = found
        for j, (name, position) in enumerate(zip(measure_names, shape.measures)):
            value = table_columns[position][r]
            theirs = values[query.values[j]] if query.values else row[f"spe_v{j}"]
            if not _same_value(value, theirs):
                raise Unsupported(f"the evidence query computes {theirs!r} for cell {key} {name!r}, the query "
                                  f"{value!r}: evidence not verified")
            cells[(key, name)] = _cell(plan, j, row, value, query.reused[j])
    return Evidence(label_columns=label_names, cells=cells, source="provenance")


def _cell(plan: EvidencePlan, j: int, row: dict, value: Any, reused: bool) -> CellEvidence:
    """The evidence of one cell; `value` is the re-executed (verified) value, None for an empty cell."""
    aggregate = plan.aggregates[j]
    persons = int(value) if reused else int(row[f"spe_persons{j}"] or 0)
    values = row.get(f"spe_values{j}")
    known = dict(value=None if value is None or _nan(value) else float(value), value_known=True,
                 person_set=row.get(f"spe_set{j}") if plan.person_sets else None,
                 values=persons if values is None else int(values))
    if aggregate == "count":
        return CellEvidence(persons=persons, aggregate="count", **known)
    total = row.get(f"spe_total{j}")
    top = tuple(float(v) for v in (row.get(f"spe_top{j}") or ()) if v is not None)
    rows = row.get(f"spe_rows{j}")  # rows are persons: the rows without a value are the missing ones
    missing = int(rows) - persons if rows is not None else int(row.get(f"spe_miss{j}") or 0)
    return CellEvidence(persons=persons, total=None if total is None else float(total), top=top,
                        negative=int(row.get(f"spe_neg{j}") or 0), missing=missing,
                        aggregate=aggregate, **known)


def _person_sets(column: pa.ChunkedArray) -> list[PersonSet]:
    """One `PersonSet` per row of a list<uint64> column of hashed persons (NULL: nobody)."""
    lists = column.combine_chunks()
    offsets = lists.offsets.to_numpy()
    ids = lists.values.to_numpy(zero_copy_only=False)
    return [PersonSet(ids[offsets[i]:offsets[i + 1]]) for i in range(len(lists))]


def _same_value(a: Any, b: Any) -> bool:
    if a is None or b is None:  # an empty cell (NULL, or NaN read back as NULL) is empty on both sides
        return (a is None or _nan(a)) and (b is None or _nan(b))
    try:
        x, y = float(a), float(b)
    except (TypeError, ValueError):
        return a == b
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return x == y or abs(x - y) <= 1e-9 * max(abs(x), abs(y), 1.0)


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _why(message: str) -> str:
    if "must appear in the GROUP BY" in message or "GROUP BY clause" in message:
        return ("a subquery or CTE aggregates over persons (its GROUP BY does not keep the person key, "
                f"{PERSON_KEY}): its rows are not person-level")
    return message


def table_facts(manifest: Mapping[str, Any], tables: Iterable[str]) -> dict[str, TableFacts]:
    """What the manifest says about the persons of each extract table in `tables`: its
    `person_key`; else `person_id` when the table has that column or its columns are not listed."""
    described = manifest.get("tables") if isinstance(manifest.get("tables"), dict) else {}
    out = {}
    for name in tables:
        info = described.get(name) if isinstance(described.get(name), dict) else {}
        columns = info.get("columns")
        names = None
        if isinstance(columns, list):
            names = tuple(c["name"] if isinstance(c, dict) else str(c) for c in columns)
        key = info.get("person_key") if "person_key" in info else (
            PERSON_KEY if names is None or PERSON_KEY in names else None)
        out[name] = TableFacts(person_key=key, columns=names)
    return out
