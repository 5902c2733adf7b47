"""Provenance re-execution: re-run a table's SQL against the permit's extract, inside the enclave.

Three steps, one sandbox (`Sandbox`):

1. `reexecute(sql, extract_dir)` runs the query in a fresh in-memory DuckDB where each extract
   table is a read-only VIEW over its Parquet file. Only that extract's files are readable:
   `allowed_paths` lists them, then `enable_external_access=false` and `lock_configuration=true`
   are set AFTER the views exist, so `read_csv('/etc/passwd')`, `COPY ... TO`, `ATTACH`,
   `INSTALL`/`LOAD`, httpfs URLs and changing any setting back all fail. Memory, threads and
   result rows are bounded; a timer thread interrupts the connection after `timeout_seconds`.
   Only one SELECT statement (a `WITH ... SELECT` too) is accepted, checked with DuckDB's own
   parser (`extract_statements`). The service path (`verify_provenance`, `check_with_provenance`)
   keeps one such locked database per extract version (LRU) and gives each check its own
   cursor, time limit and row limit; `Sandbox(..., shared=False)` opens a private one.
2. `compare(submitted, recomputed)` (pure, `egress.checks.compare`) decides whether the
   submitted table is the query's result: same columns, rows in any order, numbers to the
   precision shown, suppressed (NULL) cells and counts rounded to the nearest multiple of the
   rounding base allowed. Anything else is a mismatch (tampered or stale table).
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

When the FROM clause is a single extract table with one row per person (unique, non-null
`person_id`: from the manifest if it says so, else learnt once per extract file), the
per-person step is skipped (rows are persons), and for pure row counts the re-executed result
itself is the evidence.

I/O edge: imports DuckDB and reads the extract directory; must not import the web layer.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import duckdb
import pyarrow as pa

from egress.checks.compare import Match, Mismatch, check_match, compare  # noqa: F401 (re-exported)
from egress.checks.evidence import COUNT_AGGREGATES, MAGNITUDE_AGGREGATES, CellEvidence, Evidence, label_key
from egress.exceptions import ExtractUnavailable, ProvenanceLimit, ProvenanceRefused

log = logging.getLogger("spe.egress.provenance")

PERSON_KEY = "person_id"
MAX_RESULT_ROWS = 1_000_000
MAX_SQL_CHARS = 100_000
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_ONE_ROW_PER_PERSON: dict[tuple[str, int, int], bool] = {}  # (file, mtime, size) -> bool; see Sandbox
_WRAPPERS = frozenset({"round", "floor", "ceil", "ceiling", "trunc", "abs"})


# --- sandbox ---------------------------------------------------------------------------------

class _Database:
    """A locked-down in-memory DuckDB whose only readable files are one extract's Parquet files."""

    def __init__(self, extract_dir: Path, memory_limit: str, threads: int):
        self.manifest, self.tables = _read_extract(extract_dir)
        if not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", memory_limit, re.I):
            raise ProvenanceRefused(f"memory_limit {memory_limit!r} is not like '512MB'")
        self._lock = threading.Lock()
        self.con = duckdb.connect(":memory:")
        try:
            files = [str(path) for path in self.tables.values()]
            # Exactly the extract's files; no directory (DuckDB may pre-allow its temp directory).
            self.con.execute(f"SET allowed_paths = [{', '.join(_literal(f) for f in files)}]")
            self.con.execute("SET allowed_directories = []")
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
            raise ExtractUnavailable(f"cannot open the extract in {extract_dir}: {_first_line(err)}") from err

    def cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            return self.con.cursor()

    def close(self) -> None:
        self.con.close()


_SHARED: "OrderedDict[tuple, _Database]" = OrderedDict()
_SHARED_LOCK = threading.Lock()
MAX_SHARED_DATABASES = 8


def _shared_database(extract_dir: Path, memory_limit: str, threads: int) -> _Database:
    """One cached locked-down database per extract version (LRU). Extract versions are
    immutable directories, so the views stay valid; the manifest's mtime is in the key."""
    root = extract_dir.resolve()
    manifest = root / "manifest.json"
    key = (str(root), manifest.stat().st_mtime_ns if manifest.exists() else 0, memory_limit, int(threads))
    with _SHARED_LOCK:
        database = _SHARED.get(key)
        if database is not None:
            _SHARED.move_to_end(key)
            return database
    database = _Database(root, memory_limit, threads)
    with _SHARED_LOCK:
        _SHARED[key] = database
        while len(_SHARED) > MAX_SHARED_DATABASES:
            # An evicted database is not closed: a check may still be using a cursor on it;
            # it is freed when the last cursor is gone.
            _SHARED.popitem(last=False)
    return database


class Sandbox:
    """A read-only, resource-bounded DuckDB over one extract directory (context manager).

    `shared=False` (default) opens a fresh database for this sandbox alone; `shared=True`
    takes a cursor on the cached locked-down database of the extract (same restrictions,
    saves the ~10 ms of opening a DuckDB per check; the memory limit is then shared by the
    concurrent checks of that extract). Each sandbox has its own cursor, time limit and
    row limit.
    """

    def __init__(self, extract_dir: Path | str, *, memory_limit: str = "512MB", threads: int = 1,
                 timeout_seconds: float = 30, max_rows: int = MAX_RESULT_ROWS, shared: bool = False):
        self.extract_dir = Path(extract_dir)
        self.timeout_seconds = timeout_seconds
        self.max_rows = max_rows
        # One time budget for everything this sandbox runs (query, evidence, uniqueness scan).
        self.deadline = time.monotonic() + timeout_seconds
        if shared:
            self._database, self._owned = _shared_database(self.extract_dir, memory_limit, threads), False
        else:
            self._database, self._owned = _Database(self.extract_dir, memory_limit, threads), True
        self.manifest, self.tables = self._database.manifest, self._database.tables
        self.con = self._database.cursor()

    def one_row_per_person(self, table: str) -> bool:
        """Does every row of extract `table` belong to a different person (unique, non-null
        `person_id`)? Then per-person contributions are the row values and evidence needs no
        per-(cell, person) aggregation. From the manifest (`tables.<t>.persons == rows`) when
        it says so, else computed once per extract file and cached (extracts are immutable)."""
        info = (self.manifest.get("tables") or {}).get(table) or {}
        if isinstance(info.get("persons"), int) and isinstance(info.get("rows"), int):
            return info["persons"] == info["rows"]
        path = self.tables[table]
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        if key not in _ONE_ROW_PER_PERSON:
            try:
                unique = self.run(f'SELECT count(*) = count(DISTINCT {PERSON_KEY}) AND count(*) = count({PERSON_KEY}) '
                                  f'AS unique_persons FROM "{table}"').column(0)[0].as_py()
            except ProvenanceRefused:  # the table has no person_id column
                unique = False
            _ONE_ROW_PER_PERSON[key] = bool(unique)
        return _ONE_ROW_PER_PERSON[key]

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
        if self._owned:
            self._database.close()

    def check_sql(self, sql: Any) -> str:
        return check_sql(sql, parser=self.con)

    def _too_slow(self) -> ProvenanceLimit:
        return ProvenanceLimit(f"the provenance query ran longer than {self.timeout_seconds:g} s")

    def run(self, sql: str) -> pa.Table:
        """Run one already-checked SELECT under the time and row limits."""
        bounded = f"SELECT * FROM (\n{sql}\n) AS spe_query LIMIT {self.max_rows + 1}"
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise self._too_slow()
        timed_out = threading.Event()

        def interrupt() -> None:
            timed_out.set()
            self.con.interrupt()

        timer = threading.Timer(remaining, interrupt)
        timer.daemon = True
        timer.start()
        try:
            table = self.con.sql(bounded).to_arrow_table()
        except duckdb.InterruptException:
            raise self._too_slow() from None
        except duckdb.OutOfMemoryException:
            raise ProvenanceLimit("the provenance query needs more memory than its limit") from None
        except duckdb.PermissionException as err:
            raise ProvenanceRefused("the provenance query reads or writes outside the extract: "
                                    f"{_first_line(err)}") from None
        except duckdb.Error as err:
            if timed_out.is_set():
                raise self._too_slow() from None
            raise ProvenanceRefused(f"the provenance query failed: {_first_line(err)}") from None
        finally:
            timer.cancel()
        if timed_out.is_set():
            # The timer fired as the query finished: the interrupt may still be pending on the
            # cursor, and the budget is spent anyway.
            raise self._too_slow()
        if table.num_rows > self.max_rows:
            raise ProvenanceLimit(f"the provenance query returns more than {self.max_rows} rows")
        return table


def check_sql(sql: Any, parser: duckdb.DuckDBPyConnection | None = None) -> str:
    """The single SELECT statement in `sql` (trailing `;` removed); ProvenanceRefused otherwise.
    Parsing only (DuckDB's own parser); `parser` is any connection, a fresh one by default."""
    if not isinstance(sql, str) or not sql.strip():
        raise ProvenanceRefused("the provenance SQL is empty")
    if len(sql) > MAX_SQL_CHARS:
        raise ProvenanceRefused(f"the provenance SQL is longer than {MAX_SQL_CHARS} characters")
    own = parser is None
    parser = duckdb.connect(":memory:") if own else parser
    try:
        statements = parser.extract_statements(sql)
    except duckdb.Error as err:
        raise ProvenanceRefused(f"the provenance SQL does not parse: {_first_line(err)}") from None
    finally:
        if own:
            parser.close()
    if len(statements) != 1:
        raise ProvenanceRefused(f"the provenance SQL must be exactly one statement, got {len(statements)}")
    statement = statements[0]
    if statement.type != duckdb.StatementType.SELECT:
        raise ProvenanceRefused(f"only a SELECT query is accepted as provenance, got {statement.type.name}")
    return statement.query.strip().rstrip(";").strip()


def reexecute(sql: str, extract_dir: Path | str, *, memory_limit: str = "512MB", timeout_seconds: float = 30,
              threads: int = 1, max_rows: int = MAX_RESULT_ROWS, shared: bool = False) -> pa.Table:
    """Re-run the provenance SELECT against the extract (module docstring, step 1)."""
    with Sandbox(extract_dir, memory_limit=memory_limit, threads=threads, timeout_seconds=timeout_seconds,
                 max_rows=max_rows, shared=shared) as sandbox:
        return sandbox.run(sandbox.check_sql(sql))


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
    single_table: str | None = None     # FROM is exactly this extract table (no join, no subquery)
    row_counts: bool = False            # every measure is count(*) or count(x) (not DISTINCT)


class Unsupported(Exception):
    """The query is outside the supported form for evidence; the message says why."""


def verify_provenance(table: pa.Table, sql: str, extract_dir: Path | str, *, policy: Any = None,
                      memory_limit: str = "512MB", timeout_seconds: float = 30, threads: int = 1,
                      shared: bool = True) -> Provenance:
    """Re-execute, compare and derive evidence in one sandbox (by default on the cached
    database of the extract, see `Sandbox`). Does not raise on a mismatch (the service stores
    and flags it; `check_match(result.match)` raises)."""
    from egress.checks.policy import make_policy

    policy = make_policy(policy)
    with Sandbox(extract_dir, memory_limit=memory_limit, threads=threads,
                 timeout_seconds=timeout_seconds, shared=shared) as sandbox:
        query = sandbox.check_sql(sql)
        recomputed = sandbox.run(query)
        plan = None
        reason = ""
        try:
            plan = plan_evidence(sandbox, query, recomputed)
        except Unsupported as err:
            reason = str(err)
            log.info("provenance outside the supported form, no evidence: %s", reason)
        labels = plan.label_names if plan else None
        match = compare(table, recomputed, label_columns=labels, rounding_base=policy.rounding_base)
        evidence = None
        if plan is not None and match.equal:
            try:
                evidence = _run_evidence(sandbox, plan, max(policy.dominance_n, 2), recomputed)
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
    return _Plan(label_names, tuple(measures), tuple(aggregates), base,
                 single if single in sandbox.tables else None, all(row_counts))


def _run_evidence(sandbox: Sandbox, plan: _Plan, top_n: int, recomputed: pa.Table | None = None) -> Evidence:
    if (recomputed is not None and plan.row_counts and plan.single_table is not None
            and sandbox.one_row_per_person(plan.single_table)):
        # Counting rows of a table with one row per person counts persons: the re-executed
        # result (already compared with the submission) is the evidence, no second scan.
        return _evidence_from_counts(plan, recomputed)
    labels = [f"spe_l{i}" for i in range(len(plan.label_names))]
    measures = range(len(plan.measure_names))
    per_person = ", ".join(
        [f"count(spe_m{j}) AS spe_n{j}, sum(spe_m{j}) AS spe_c{j}, "
         f"count(*) - count(spe_m{j}) AS spe_miss{j}, count_if(spe_m{j} < 0) AS spe_neg{j}"
         if plan.aggregates[j] != "count" else f"count(spe_m{j}) AS spe_n{j}"
         for j in measures])
    # Hook for differencing (egress.checks.differencing): the hashed persons of every cell.
    per_cell = ", ".join(
        [f"count_if(spe_n{j} > 0 AND spe_p IS NOT NULL) AS spe_persons{j}, "
         f"list(hash(spe_p)) FILTER (WHERE spe_n{j} > 0 AND spe_p IS NOT NULL) AS spe_set{j}"
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
            # person_id is known non-null and unique here: rows are persons.
            [f"count(spe_m{j}) AS spe_persons{j}, list(hash(spe_p)) FILTER (WHERE spe_m{j} IS NOT NULL) AS spe_set{j}"
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
        base_sql = _deserialize(sandbox, tree)
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
            persons = row.get(f"spe_set{j}")
            person_set = frozenset(persons or ()) if f"spe_set{j}" in row else None
            if plan.aggregates[j] == "count":
                cell = CellEvidence(persons=int(row[f"spe_persons{j}"]), aggregate="count", person_set=person_set)
            else:
                top = tuple(float(v) for v in (row[f"spe_top{j}"] or []) if v is not None)
                total = row[f"spe_total{j}"]
                cell = CellEvidence(persons=int(row[f"spe_persons{j}"]),
                                    total=None if total is None else float(total), top=top,
                                    negative=int(row[f"spe_neg{j}"] or 0), missing=int(row[f"spe_miss{j}"] or 0),
                                    aggregate=plan.aggregates[j], person_set=person_set)
            cells[(key, plan.measure_names[j])] = cell
    return Evidence(label_columns=plan.label_names, cells=cells, source="provenance")


def _evidence_from_counts(plan: _Plan, recomputed: pa.Table) -> Evidence:
    label_values = [recomputed.column(n).to_pylist() for n in plan.label_names]
    keys = [label_key(v) for v in zip(*label_values)] if label_values else [()] * recomputed.num_rows
    cells: dict[tuple[tuple, str], CellEvidence] = {}
    for name in plan.measure_names:
        for key, value in zip(keys, recomputed.column(name).to_pylist()):
            if value is not None:
                cells[(key, name)] = CellEvidence(persons=int(value), aggregate="count")
    return Evidence(label_columns=plan.label_names, cells=cells, source="provenance")


def clear_caches() -> None:
    """Forget which extract tables have one row per person (benchmarks measure a cold start)."""
    _ONE_ROW_PER_PERSON.clear()


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


# --- one call for the service ----------------------------------------------------------------

def check_with_provenance(table: pa.Table, policy: Any = None, *, kind: str, sql: str | None = None,
                          extract_dir: Path | str | None = None, released: Sequence[pa.Table] = (),
                          memory_limit: str = "512MB", timeout_seconds: float = 30):
    """`(Verdicts, Provenance | None)` for one submitted table: with `sql`, re-execute it on the
    extract, refuse a table that is not its result (`TableMismatch`), and check with the
    derived evidence; without `sql`, check what the table shows (unverified), still using the
    extract's person count for the `too_many_rows` rule when `extract_dir` is given."""
    from egress.checks import check_table

    if sql is None:
        persons = None
        if extract_dir is not None:
            manifest, _ = _read_extract(Path(extract_dir))
            persons = manifest.get("persons") if isinstance(manifest.get("persons"), int) else None
        return check_table(table, policy, kind=kind, released=released, extract_persons=persons), None
    if extract_dir is None:
        raise ExtractUnavailable("the permit has no current extract to re-execute the provenance SQL on")
    result = verify_provenance(table, sql, extract_dir, policy=policy, memory_limit=memory_limit,
                               timeout_seconds=timeout_seconds)
    check_match(result.match)
    verdicts = check_table(table, policy, kind=kind, evidence=result.evidence, released=released,
                           label_columns=result.label_columns or None, extract_persons=result.extract_persons)
    return verdicts, result
