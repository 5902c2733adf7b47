"""Provenance re-execution: re-run a table's SQL against the permit's extract, inside the enclave.

Three steps, one sandbox (`Sandbox`):

1. `reexecute(sql, extract_dir)` runs the query in a fresh in-memory DuckDB where each extract
   table is a read-only VIEW over its Parquet file. Only that extract's files are readable:
   `allowed_paths` lists them, then `enable_external_access=false` and `lock_configuration=true`
   are set AFTER the views exist, so `read_csv('/etc/passwd')`, `COPY ... TO`, `ATTACH`,
   `INSTALL`/`LOAD`, httpfs URLs and changing any setting back all fail. Memory, threads and
   result rows are bounded; a timer thread interrupts the connection after `timeout_seconds`.
   Only one SELECT statement (a `WITH ... SELECT` too) is accepted, checked with DuckDB's own
   parser (`extract_statements`).
2. `compare(submitted, recomputed)` decides whether the submitted table is the query's result:
   same column names, same rows in any order (matched on label columns), numbers equal to the
   precision the author shows (12.35 matches 12.3456), a NULL where the result has a number
   counts as a suppressed cell and a multiple of the rounding base within one base of the
   result as a rounded cell. Anything else is a mismatch (tampered or stale table).
3. `derive_evidence` rewrites the same query into an evidence query (see "Supported form")
   that counts distinct persons per cell and the largest per-person contributions.

Supported form for evidence (anything else is still re-executed and compared, but has no
evidence, so the table is checked on what it shows and marked unverified):

    [WITH ...] SELECT <label expr> [AS name], ..., <agg>(<expr>) [AS name], ...
    FROM <tables/joins/subqueries exposing person_id> [WHERE ...]
    GROUP BY <one key per label> | GROUP BY ALL   [HAVING ...] [ORDER BY ...] [LIMIT ...]

with <agg> one of count(*), count(x), count(DISTINCT x), sum, avg/mean, median, min, max,
stddev/variance (optionally wrapped in round()/CAST), without FILTER or ORDER BY inside the
aggregate. The query is parsed with `json_serialize_sql`; its SELECT list is replaced by the
labels, `person_id` and the aggregates' arguments, GROUP BY/HAVING/ORDER BY/LIMIT are dropped,
and `json_deserialize_sql` turns the tree back into SQL, which is then aggregated per (cell,
person) and per cell. HAVING only removes cells, so evidence is computed for every cell and
matched to the table by label values.

I/O edge: imports DuckDB and reads the extract directory; must not import the web layer.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import duckdb
import pyarrow as pa

from egress.checks.evidence import COUNT_AGGREGATES, MAGNITUDE_AGGREGATES, CellEvidence, Evidence, label_key
from egress.checks.tables import as_float, is_numeric
from egress.exceptions import (ExtractUnavailable, ProvenanceLimit, ProvenanceRefused, TableMismatch)

log = logging.getLogger("spe.egress.provenance")

PERSON_KEY = "person_id"
MAX_RESULT_ROWS = 1_000_000
MAX_SQL_CHARS = 100_000
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_WRAPPERS = frozenset({"round", "floor", "ceil", "ceiling", "trunc", "abs"})


# --- sandbox ---------------------------------------------------------------------------------

class Sandbox:
    """One read-only, resource-bounded DuckDB over one extract directory (context manager)."""

    def __init__(self, extract_dir: Path | str, *, memory_limit: str = "512MB", threads: int = 1,
                 timeout_seconds: float = 30, max_rows: int = MAX_RESULT_ROWS):
        self.extract_dir = Path(extract_dir)
        self.timeout_seconds = timeout_seconds
        self.max_rows = max_rows
        self.manifest, self.tables = _read_extract(self.extract_dir)
        if not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", memory_limit, re.I):
            raise ProvenanceRefused(f"memory_limit {memory_limit!r} is not like '512MB'")
        self.con = duckdb.connect(":memory:")
        try:
            files = [str(path) for path in self.tables.values()]
            self.con.execute(f"SET allowed_paths = [{', '.join(_literal(f) for f in files)}]")
            for name, path in self.tables.items():
                # `name` matched _IDENTIFIER in _read_extract, the path is a quoted literal.
                self.con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM read_parquet({_literal(str(path))})')
            # Order matters: the views above were bound while access was on; from here on only
            # the allowed Parquet files are readable and no setting can be changed back.
            self.con.execute(f"SET memory_limit = '{memory_limit}'")
            self.con.execute(f"SET threads = {int(threads)}")
            self.con.execute("SET temp_directory = ''")  # no spilling: the memory limit is hard
            self.con.execute("SET autoinstall_known_extensions = false")
            self.con.execute("SET autoload_known_extensions = false")
            self.con.execute("SET enable_external_access = false")
            self.con.execute("SET lock_configuration = true")
        except duckdb.Error as err:
            self.con.close()
            raise ExtractUnavailable(f"cannot open the extract in {self.extract_dir}: {_first_line(err)}") from err

    @property
    def persons(self) -> int | None:
        value = self.manifest.get("persons")
        return int(value) if isinstance(value, int) else None

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    def run(self, sql: str) -> pa.Table:
        """Run one already-checked SELECT under the time and row limits."""
        bounded = f"SELECT * FROM (\n{sql}\n) AS spe_query LIMIT {self.max_rows + 1}"
        timed_out = threading.Event()

        def interrupt() -> None:
            timed_out.set()
            self.con.interrupt()

        timer = threading.Timer(self.timeout_seconds, interrupt)
        timer.daemon = True
        timer.start()
        try:
            table = self.con.sql(bounded).to_arrow_table()
        except duckdb.InterruptException:
            raise ProvenanceLimit(f"the provenance query ran longer than {self.timeout_seconds:g} s") from None
        except duckdb.OutOfMemoryException:
            raise ProvenanceLimit("the provenance query needs more memory than its limit") from None
        except duckdb.PermissionException as err:
            raise ProvenanceRefused("the provenance query reads or writes outside the extract: "
                                    f"{_first_line(err)}") from None
        except duckdb.Error as err:
            if timed_out.is_set():
                raise ProvenanceLimit(f"the provenance query ran longer than {self.timeout_seconds:g} s") from None
            raise ProvenanceRefused(f"the provenance query failed: {_first_line(err)}") from None
        finally:
            timer.cancel()
        if table.num_rows > self.max_rows:
            raise ProvenanceLimit(f"the provenance query returns more than {self.max_rows} rows")
        return table


def check_sql(sql: Any) -> str:
    """The single SELECT statement in `sql` (trailing `;` removed); ProvenanceRefused otherwise."""
    if not isinstance(sql, str) or not sql.strip():
        raise ProvenanceRefused("the provenance SQL is empty")
    if len(sql) > MAX_SQL_CHARS:
        raise ProvenanceRefused(f"the provenance SQL is longer than {MAX_SQL_CHARS} characters")
    parser = duckdb.connect(":memory:")
    try:
        statements = parser.extract_statements(sql)
    except duckdb.Error as err:
        raise ProvenanceRefused(f"the provenance SQL does not parse: {_first_line(err)}") from None
    finally:
        parser.close()
    if len(statements) != 1:
        raise ProvenanceRefused(f"the provenance SQL must be exactly one statement, got {len(statements)}")
    statement = statements[0]
    if statement.type != duckdb.StatementType.SELECT:
        raise ProvenanceRefused(f"only a SELECT query is accepted as provenance, got {statement.type.name}")
    return statement.query.strip().rstrip(";").strip()


def reexecute(sql: str, extract_dir: Path | str, *, memory_limit: str = "512MB", timeout_seconds: float = 30,
              threads: int = 1, max_rows: int = MAX_RESULT_ROWS) -> pa.Table:
    """Re-run the provenance SELECT against the extract (module docstring, step 1)."""
    query = check_sql(sql)
    with Sandbox(extract_dir, memory_limit=memory_limit, threads=threads, timeout_seconds=timeout_seconds,
                 max_rows=max_rows) as sandbox:
        return sandbox.run(query)


# --- compare ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mismatch:
    row: int | None
    column: str | None
    submitted: Any
    recomputed: Any


@dataclass(frozen=True)
class Match:
    """Result of `compare`: `equal` True when the submitted table is the query's result (with
    suppressed and rounded cells allowed); otherwise `reason` says why, `mismatches` where."""

    equal: bool
    reason: str = ""
    rows_compared: int = 0
    suppressed_cells: int = 0
    rounded_cells: int = 0
    mismatches: tuple[Mismatch, ...] = ()

    def to_dict(self) -> dict:
        return {"equal": self.equal, "reason": self.reason, "rows_compared": self.rows_compared,
                "suppressed_cells": self.suppressed_cells, "rounded_cells": self.rounded_cells,
                "mismatches": [{"row": m.row, "column": m.column, "submitted": _jsonable(m.submitted),
                                "recomputed": _jsonable(m.recomputed)} for m in self.mismatches]}


def compare(submitted: pa.Table, recomputed: pa.Table, *, label_columns: Sequence[str] | None = None,
            rounding_base: int | None = None, allow_suppressed: bool = True,
            rel_tolerance: float = 1e-9, max_mismatches: int = 20) -> Match:
    """Is `submitted` the result `recomputed`? (module docstring, step 2). Pure."""
    own, theirs = set(submitted.column_names), set(recomputed.column_names)
    if own != theirs:
        parts = []
        if theirs - own:
            parts.append(f"missing {sorted(theirs - own)}")
        if own - theirs:
            parts.append(f"unexpected {sorted(own - theirs)}")
        return Match(False, "columns differ from the query result: " + ", ".join(parts))
    if submitted.num_rows != recomputed.num_rows:
        return Match(False, f"{submitted.num_rows} rows submitted, the query returns {recomputed.num_rows}")
    names = list(recomputed.column_names)
    numeric = [c for c in names if is_numeric(recomputed.schema.field(c).type)
               and (label_columns is None or c not in label_columns)]
    labels = list(label_columns) if label_columns is not None else [c for c in names if c not in numeric]
    sub_rows = _rows(submitted, names)
    rec_rows = _rows(recomputed, names)
    pairs = _align(sub_rows, rec_rows, [names.index(c) for c in labels], [names.index(c) for c in numeric])
    if pairs is None:
        return Match(False, "rows with these labels are not in the query result")
    mismatches: list[Mismatch] = []
    suppressed = rounded = 0
    label_idx = [names.index(c) for c in labels]
    numeric_idx = [names.index(c) for c in numeric]
    for sub_row, rec_row in pairs:
        for i in label_idx:
            if label_key([sub_rows[sub_row][i]]) != label_key([rec_rows[rec_row][i]]):
                mismatches.append(Mismatch(sub_row, names[i], sub_rows[sub_row][i], rec_rows[rec_row][i]))
        for i in numeric_idx:
            outcome = _compare_number(sub_rows[sub_row][i], rec_rows[rec_row][i], rounding_base,
                                      allow_suppressed, rel_tolerance)
            if outcome == "suppressed":
                suppressed += 1
            elif outcome == "rounded":
                rounded += 1
            elif outcome == "different":
                mismatches.append(Mismatch(sub_row, names[i], sub_rows[sub_row][i], rec_rows[rec_row][i]))
    if mismatches:
        return Match(False, f"{len(mismatches)} cell(s) differ from the query result", len(pairs), suppressed,
                     rounded, tuple(mismatches[:max_mismatches]))
    return Match(True, "", len(pairs), suppressed, rounded)


def check_match(match: Match) -> None:
    """Raise `TableMismatch` (the table is refused and flagged) unless `match.equal`."""
    if not match.equal:
        where = ""
        if match.mismatches:
            m = match.mismatches[0]
            where = f" (first: row {m.row}, column {m.column!r}: {m.submitted!r} vs {m.recomputed!r})"
        raise TableMismatch(f"the submitted table is not the result of its provenance SQL: {match.reason}{where}")


def _compare_number(sub: Any, rec: Any, rounding_base: int | None, allow_suppressed: bool,
                    rel_tolerance: float) -> str:
    s, r = _number(sub), _number(rec)
    if s is None and r is None:
        return "equal"
    if s is None:
        return "suppressed" if allow_suppressed else "different"
    if r is None or isinstance(s, str):
        return "different"
    if s == r or abs(s - r) <= rel_tolerance * max(abs(r), 1.0):
        return "equal"
    # The author may show fewer decimals than DuckDB computed: 12.35 for 12.3456.
    if abs(s - r) <= 0.5 * 10.0 ** (-_decimals(sub)) + 1e-12 * max(abs(r), 1.0):
        return "equal"
    if rounding_base and float(s).is_integer() and int(s) % rounding_base == 0:
        # Rounded to the nearest multiple of the base (either neighbour at an exact half).
        below = math.floor(r / rounding_base) * rounding_base
        nearest = {below, below + rounding_base} if r - below == rounding_base / 2 else {
            below if r - below < rounding_base / 2 else below + rounding_base}
        if s in nearest:
            return "rounded"
    return "different"


def _number(value: Any) -> float | str | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text == "" or text.lower() in ("nan", "null", "na", "-", "*", "suppressed", "<10"):
            return None
        try:
            return float(text)
        except ValueError:
            return text
    number = float(value)
    return None if math.isnan(number) else number


def _decimals(value: Any) -> int:
    if isinstance(value, int):
        return 0
    text = value.strip() if isinstance(value, str) else repr(float(value))
    if "e" in text.lower():
        return 15
    if "." not in text:
        return 0
    decimals = len(text.split(".", 1)[1])
    return 0 if text.endswith(".0") else decimals


def _rows(table: pa.Table, names: list[str]) -> list[tuple]:
    columns = [table.column(c).to_pylist() for c in names]
    return list(zip(*columns))


def _align(sub_rows, rec_rows, label_idx, numeric_idx) -> list[tuple[int, int]] | None:
    def key(row, idx):
        return label_key(row[i] for i in idx)

    sub_keys = [key(r, label_idx) for r in sub_rows]
    rec_keys = [key(r, label_idx) for r in rec_rows]
    if label_idx and len(set(sub_keys)) == len(sub_keys) and len(set(rec_keys)) == len(rec_keys):
        where = {k: i for i, k in enumerate(rec_keys)}
        pairs = [(i, where.get(k)) for i, k in enumerate(sub_keys)]
        return None if any(p[1] is None for p in pairs) else pairs

    # Labels do not identify rows: sort both on all columns (numbers at 6 significant digits).
    def sort_key(row):
        labels = key(row, label_idx)
        numbers = tuple(_rounded(row[i]) for i in numeric_idx)
        return (tuple("" if v is None else str(v) for v in labels), numbers)

    sub_order = sorted(range(len(sub_rows)), key=lambda i: sort_key(sub_rows[i]))
    rec_order = sorted(range(len(rec_rows)), key=lambda i: sort_key(rec_rows[i]))
    return list(zip(sub_order, rec_order))


def _rounded(value: Any) -> tuple:
    number = _number(value)
    if number is None or isinstance(number, str):
        return (1, 0.0)
    return (0, float(f"{number:.6g}"))


# --- evidence --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Provenance:
    """Everything the service needs from one re-execution."""

    recomputed: pa.Table
    match: Match
    evidence: Evidence | None
    evidence_reason: str = ""           # why evidence is unavailable ("" when available)
    extract_persons: int | None = None
    label_columns: tuple[str, ...] = ()

    @property
    def verified(self) -> bool:
        return self.match.equal and self.evidence is not None


@dataclass(frozen=True)
class _Plan:
    label_names: tuple[str, ...]
    measure_names: tuple[str, ...]
    aggregates: tuple[str, ...]
    base_tree: dict = field(repr=False)


class Unsupported(Exception):
    """The query is outside the supported form for evidence; the message says why."""


def verify_provenance(table: pa.Table, sql: str, extract_dir: Path | str, *, policy: Any = None,
                      memory_limit: str = "512MB", timeout_seconds: float = 30, threads: int = 1) -> Provenance:
    """Re-execute, compare and derive evidence in one sandbox. Does not raise on a mismatch
    (the service stores and flags it; `check_match(result.match)` raises)."""
    from egress.checks.policy import make_policy

    policy = make_policy(policy)
    query = check_sql(sql)
    with Sandbox(extract_dir, memory_limit=memory_limit, threads=threads,
                 timeout_seconds=timeout_seconds) as sandbox:
        recomputed = sandbox.run(query)
        plan = None
        reason = ""
        try:
            plan = plan_evidence(sandbox, query, recomputed)
        except Unsupported as err:
            reason = str(err)
        labels = plan.label_names if plan else None
        match = compare(table, recomputed, label_columns=labels, rounding_base=policy.rounding_base)
        evidence = None
        if plan is not None and match.equal:
            try:
                evidence = _run_evidence(sandbox, plan, max(policy.dominance_n, 2))
            except Unsupported as err:
                reason = str(err)
        elif plan is not None:
            reason = "the table does not match its query"
        return Provenance(recomputed, match, evidence, reason, sandbox.persons, tuple(labels or ()))


def derive_evidence(sql: str, extract_dir: Path | str, *, top_n: int = 2, memory_limit: str = "512MB",
                    timeout_seconds: float = 30) -> Evidence:
    """Evidence for the result of `sql`; raises `Unsupported` outside the supported form."""
    query = check_sql(sql)
    with Sandbox(extract_dir, memory_limit=memory_limit, timeout_seconds=timeout_seconds) as sandbox:
        recomputed = sandbox.run(query)
        return _run_evidence(sandbox, plan_evidence(sandbox, query, recomputed), max(top_n, 2))


def plan_evidence(sandbox: Sandbox, query: str, recomputed: pa.Table) -> _Plan:
    tree = _serialize(sandbox, query)
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
    labels, measures, aggregates, arguments = [], [], [], []
    for position, expr in enumerate(select_list):
        name = recomputed.column_names[position]
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
        elif len(args) >= 1:
            argument = args[0]["expression"]
            if function in ("count_star",):
                argument = None
        else:
            raise Unsupported(f"column {name!r}: {function}() without an argument")
        measures.append(name)
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
    return _Plan(label_names, tuple(measures), tuple(aggregates), base)


def _run_evidence(sandbox: Sandbox, plan: _Plan, top_n: int) -> Evidence:
    labels = [f"spe_l{i}" for i in range(len(plan.label_names))]
    measures = range(len(plan.measure_names))
    per_person = ", ".join(
        [f"count(spe_m{j}) AS spe_n{j}, sum(spe_m{j}) AS spe_c{j}, "
         f"count(*) FILTER (WHERE spe_m{j} IS NULL) AS spe_miss{j}, "
         f"count(*) FILTER (WHERE spe_m{j} < 0) AS spe_neg{j}"
         if plan.aggregates[j] != "count" else f"count(spe_m{j}) AS spe_n{j}"
         for j in measures])
    per_cell = ", ".join(
        [f"count(*) FILTER (WHERE spe_n{j} > 0 AND spe_p IS NOT NULL) AS spe_persons{j}"
         + (f", sum(spe_c{j}) AS spe_total{j}, max(spe_c{j}, {top_n}) AS spe_top{j}, "
            f"sum(spe_miss{j}) AS spe_miss{j}, sum(spe_neg{j}) AS spe_neg{j}"
            if plan.aggregates[j] != "count" else "")
         for j in measures])
    group = ", ".join(labels + ["spe_p"])
    cell_group = f"GROUP BY {', '.join(labels)}" if labels else ""
    label_select = (", ".join(labels) + ", ") if labels else ""
    errors = []
    result = None
    # `person_id` unqualified first; if a join makes it ambiguous, qualify it with each base
    # table (or alias) of the FROM clause in turn.
    for qualifier in [None] + _relations(plan.base_tree["statements"][0]["node"].get("from_table")):
        tree = copy.deepcopy(plan.base_tree)
        person = next(e for e in tree["statements"][0]["node"]["select_list"] if e.get("alias") == "spe_p")
        person["column_names"] = [PERSON_KEY] if qualifier is None else [qualifier, PERSON_KEY]
        base_sql = _deserialize(sandbox, tree)
        sql = (f"WITH spe_base AS (\n{base_sql}\n), "
               f"spe_pp AS (SELECT {group}, {per_person} FROM spe_base GROUP BY {group}) "
               f"SELECT {label_select}{per_cell} FROM spe_pp {cell_group}")
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


def _serialize(sandbox: Sandbox, query: str) -> dict:
    try:
        return json.loads(sandbox.con.execute("SELECT json_serialize_sql(?)", [query]).fetchall()[0][0])
    except duckdb.Error as err:
        raise Unsupported(f"the query could not be parsed: {_first_line(err)}") from None


def _deserialize(sandbox: Sandbox, tree: dict) -> str:
    try:
        return sandbox.con.execute("SELECT json_deserialize_sql(?)", [json.dumps(tree)]).fetchall()[0][0]
    except duckdb.Error as err:
        raise Unsupported(f"the evidence query could not be built: {_first_line(err)}") from None


# --- extract ---------------------------------------------------------------------------------

def _read_extract(extract_dir: Path) -> tuple[dict, dict[str, Path]]:
    """`(manifest, {table: parquet path})` of an extract; only files inside the directory."""
    if not extract_dir.is_dir():
        raise ExtractUnavailable(f"extract directory {extract_dir} does not exist")
    root = extract_dir.resolve()
    manifest: dict = {}
    manifest_path = root / "manifest.json"
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ExtractUnavailable(f"unreadable manifest {manifest_path}: {err}") from err
    tables: dict[str, Path] = {}
    entries = manifest.get("tables") if isinstance(manifest.get("tables"), dict) else None
    if entries:
        for name, info in entries.items():
            file_name = (info or {}).get("file") or f"{name}.parquet"
            tables[name] = root / file_name
    else:
        for path in sorted(root.glob("*.parquet")):
            tables[path.stem] = path
    for name, path in list(tables.items()):
        resolved = path.resolve()
        if not _IDENTIFIER.match(name) or resolved.parent != root or not resolved.is_file():
            raise ExtractUnavailable(f"extract table {name!r} ({path.name}) is not a Parquet file of the extract")
        tables[name] = resolved
    if not tables:
        raise ExtractUnavailable(f"extract directory {extract_dir} holds no Parquet tables")
    return manifest, tables


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    return str(value)
