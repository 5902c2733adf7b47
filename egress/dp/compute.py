"""Exact aggregates for a DP query, computed in DuckDB over the extract's Parquet files.

One narrow door to the data: a session of the egress DuckDB sandbox (`egress.sandbox`: only
the extract's files are readable, no extensions, configuration locked, memory limit with
spill, time limit), on a database of the extract version that has a writable scratch catalog
for this module's truncation tables. SQL is built from descriptor-checked identifiers and
bound parameters only. Nothing here adds noise or touches the ledger.

Per-person truncation: the table is cut to the declared `max_per_person` rows per person
(per person, rows in a fixed pseudo-random order of their content; `dropped_rows`), then the
query's filters and groups apply, so the calibration's contribution bound holds whatever the
data hold. Truncation depends only on that person's own rows, so neighbouring datasets stay
neighbours. It is a property of the table, not of the query, so it is computed once per
immutable file: the rows it removes are kept in the sandbox database's scratch catalog and a
count or sum is aggregate(file) - aggregate(removed rows) with the same filters; quantiles
leave the removed rows out. Rows without a person key are never counted. A person the person
table lists more than once is joined through one of their rows (chosen by content), never several.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import duckdb

from hub.datasets.source import quote_ident  # names were matched against the descriptor; quoting is the second fence
from hub.exceptions import Failure, InvalidInput

from egress import sandbox
from egress.dp.calibrate import I64_SAFE, Plan, grid_bounds
from egress.dp.spec import NUMERIC_TYPE_RE, STRING_TYPE_RE, TEMPORAL_TYPE_RE, DpQuery
from egress.sandbox import Extract, Session

_SAFE_TYPE_RE = re.compile(r"^[A-Z0-9_ (),]+$")


def table_path(extract: Extract, table: str) -> Path:
    """The Parquet file of `table` in the extract (the sandbox's manifest reader decides)."""
    try:
        return extract.tables[table]
    except KeyError:
        raise InvalidInput(f"table {table!r} is not in this permit's extract", field="table") from None


def connect(extract_dir: Path, *, memory_limit: str | None = None, threads: int | None = None) -> Session:
    """A sandbox session on the extract (`egress.sandbox`), on the pooled database of its
    version that keeps this module's truncation tables in its scratch catalog.

    Creating a DuckDB database costs tens of milliseconds, as much as a small aggregate, so one
    database per extract version is kept (extracts are immutable) and each query gets its own
    session (cursor and time budget). `memory_limit`/`threads`: None = the sandbox settings.
    The caller closes the session.
    """
    return sandbox.open_session(extract_dir, memory_limit=memory_limit, threads=threads, scratch=True)


_types_lock = threading.Lock()
_types_cache: dict[tuple, dict[str, str]] = {}


def column_types(con, path: Path) -> dict[str, str]:
    """Column -> DuckDB type of a Parquet file (cached per immutable file)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _types_lock:
        if key in _types_cache:
            return dict(_types_cache[key])
    rows = con.execute("DESCRIBE SELECT * FROM read_parquet($p)", {"p": str(path)}).fetchall()
    types = {r[0]: str(r[1]).upper() for r in rows}
    with _types_lock:
        _types_cache[key] = types
    return dict(types)


def joins_person(q: DpQuery) -> bool:
    return any("." in c for c in list(q.group_columns) + [f.column for f in q.where])


def query_types(con: Session, q: DpQuery) -> dict[str, str]:
    """Column -> type of the queried table, plus `person.<column>` when the query joins it."""
    types = column_types(con, table_path(con.extract, q.table))
    if joins_person(q):
        person = column_types(con, table_path(con.extract, q.person_table))
        if q.person_key not in person:
            raise InvalidInput(f"the person table has no person key {q.person_key!r}", field="by")
        types.update({f"{q.person_table}.{c}": t for c, t in person.items()})
    return types


def check_types(q: DpQuery, types: dict[str, str]) -> None:
    """Refuse (before any charge) values that do not fit the extract's column types."""
    if q.person_key not in types:
        raise InvalidInput(f"table {q.table!r} has no person key {q.person_key!r}: DP queries need the privacy "
                           f"unit", field="table")
    for name in set(q.group_columns) | {f.column for f in q.where} | ({q.column} if q.column else set()):
        if name not in types:
            raise InvalidInput(f"column {name!r} of {q.table!r} is not in this permit's extract", field="column")
    if q.column and q.kind in ("sum", "mean", "quantile") and not NUMERIC_TYPE_RE.match(types[q.column]):
        raise InvalidInput(f"column {q.column!r} is {types[q.column]}, not numeric", field="column")
    for i, f in enumerate(q.where):
        t = types[f.column]
        values = f.value if isinstance(f.value, tuple) else (f.value,)
        for v in values:
            ok = (isinstance(v, (int, float)) and not isinstance(v, bool)) if NUMERIC_TYPE_RE.match(t) else \
                isinstance(v, str) if (STRING_TYPE_RE.match(t) or TEMPORAL_TYPE_RE.match(t)) else \
                isinstance(v, bool) if t.startswith("BOOL") else False
            if not ok:
                raise InvalidInput(f"column {f.column!r} is {t}; value {str(v)[:40]!r} does not fit",
                                   field=f"where.{i}.value")


def col_expr(name: str) -> str:
    """`t."c"` for the queried table's column, `p."c"` for a joined `person.c`."""
    if "." in name:
        return "p." + quote_ident(name.split(".", 1)[1])
    return "t." + quote_ident(name)


def _where_sql(q: DpQuery, types: dict[str, str], params: dict) -> list[str]:
    conds = []
    for i, f in enumerate(q.where):
        col = col_expr(f.column)
        t = types[f.column]
        cast = TEMPORAL_TYPE_RE.match(t) and _SAFE_TYPE_RE.match(t)

        def p(value, j=None):
            name = f"w{i}" if j is None else f"w{i}_{j}"
            params[name] = value
            return f"CAST(${name} AS {t})" if cast else f"${name}"

        if f.op == "in":
            conds.append(f"{col} IN ({', '.join(p(v, j) for j, v in enumerate(f.value))})")
        elif f.op == "between":
            conds.append(f"{col} BETWEEN {p(f.value[0], 0)} AND {p(f.value[1], 1)}")
        else:
            conds.append(f"{col} {f.op} {p(f.value)}")  # op is one of OPS (checked in spec)
    return conds


_stats_lock = threading.Lock()
_null_keys_cache: dict[tuple, bool] = {}


def has_null_keys(con, path: Path, person_key: str) -> bool:
    """Whether any row of the file lacks a person key (cached per immutable file)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, person_key)
    with _stats_lock:
        if key in _null_keys_cache:
            return _null_keys_cache[key]
    # The file's own statistics answer without a scan when every row group records its null
    # count (DuckDB and Arrow always write it); DuckDB itself trusts the same statistics to skip
    # an `IS NOT NULL` filter, so reading them is no weaker than the scan.
    counts = [r[0] for r in con.execute("SELECT stats_null_count FROM parquet_metadata($p) WHERE path_in_schema = $c",
                                        {"p": str(path), "c": person_key}).fetchall()]
    if counts and all(c is not None for c in counts):
        n = sum(counts)
    else:
        n = con.execute(f"SELECT count(*) FROM read_parquet($p) WHERE {quote_ident(person_key)} IS NULL",
                        {"p": str(path)}).fetchone()[0]
    with _stats_lock:
        _null_keys_cache[key] = n > 0
    return n > 0


MAX_DROPPED_ROWS = 1_000_000  # beyond this, truncate per query instead of keeping the excess rows


def _rank_sql(pid: str, columns: list[str], m_cmp: str, source: str) -> str:
    # Per person, rows in a fixed pseudo-random order of their CONTENT (every column of the file,
    # never the position in the file, which other persons' rows would shift): truncation
    # depends on that person's rows only. Rows equal in every column are interchangeable.
    content = ", ".join(quote_ident(c) for c in columns)
    return (f"SELECT * EXCLUDE (__rn) FROM (SELECT *, row_number() OVER (PARTITION BY {pid} ORDER BY "
            f"hash({content}), {content}) AS __rn FROM {source}) WHERE __rn {m_cmp}")


def dropped_rows(con: Session, path: Path, person_key: str, m: int) -> tuple[str, int]:
    """The rows that truncation to m rows per person removes from the file, kept as a table in
    the scratch catalog of the session's sandbox database (built once per immutable file and
    bound), and their number.

    Truncation is a property of the table, not of a query: every query sees the table with at
    most m rows per person, so aggregate(truncated) = aggregate(file) - aggregate(dropped rows),
    computed with the same filters and groups. Usually few persons exceed the bound, so this
    costs a second aggregate over a small table instead of a window over the whole table.
    """
    st = path.stat()
    ident = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{person_key}|{int(m)}"
    table = f"{con.scratch}.dropped_{hashlib.sha256(ident.encode()).hexdigest()[:20]}"
    state = con.database.state  # {table: rows} of what this database already holds
    if table in state:
        return table, state[table]
    pid = quote_ident(person_key)
    columns = list(column_types(con, path))
    heavy = (f"(SELECT * FROM read_parquet($p, file_row_number = true) WHERE {pid} IN (SELECT {pid} FROM "
             f"read_parquet($p) WHERE {pid} IS NOT NULL GROUP BY {pid} HAVING count(*) > {int(m)}))")
    with con.database.state_lock:  # one builder per database; other sessions see the finished table
        if table not in state:
            con.execute(f"CREATE TABLE {table} AS {_rank_sql(pid, columns, f'> {int(m)}', heavy)}", {"p": str(path)})
            state[table] = int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    return table, state[table]


def _used(sql: str, params: dict) -> dict:
    """Only the parameters the statement names (DuckDB refuses unused ones; `$p` vs `$pp`)."""
    return {k: v for k, v in params.items() if re.search(rf"\${re.escape(k)}\b", sql)}


# Exact sums without 128-bit accumulation.
#
# A sum runs on the integer grid: each row contributes k = round_half_even(clamp(v) * 10^d),
# an integer in [lo_i, hi_i] (`grid_bounds`). DuckDB sums BIGINTs into a 128-bit HUGEINT
# (10 M rows: about 16 ms of CPU more than a DOUBLE sum on this machine), so the grid values
# are summed as DOUBLEs instead, centred on c = (lo_i + hi_i) // 2 - only where that is
# provably exact:
#
# 1. y = clamp(v) * 10^d satisfies |y| <= max(|lo|, |hi|) * 10^d <= 2^62 / ROW_CAP < 2^33
#    (`sum_decimals`). For |y| < 2^51, y + M with M = 1.5 * 2^52 lies in [2^52, 2^53), where
#    the doubles are exactly the integers, so IEEE round-to-nearest-even gives M + k with
#    k = round_half_even(y) (M is even, so ties go the way DuckDB's DOUBLE -> BIGINT cast
#    goes); (M + k) - (M + c) is a difference of two integers below 2^53: exactly k - c.
# 2. k stays in [lo_i, hi_i]: with bounds on the grid, lo * 10^d and hi * 10^d round to lo_i
#    and hi_i and rounding is monotone; with a bound off the grid, k - c is clamped again to
#    [lo_i - c, hi_i - c]. So each term t = k - c is an integer with |t| <= B =
#    max(hi_i - c, c - lo_i).
# 3. In any order of addition (threads, partial aggregates) every intermediate is the sum of
#    a subset of one group's terms, so |intermediate| <= n * B for the group's n rows. If
#    n * B < 2^53, every intermediate is an integer a double represents exactly, so every
#    addition is exact and the DOUBLE result is exactly sum(k) - n * c: no overflow, no
#    rounding, the same integer as the BIGINT sum. (No int64 is involved; the BIGINT path
#    below sums in 128 bits, and `I64_SAFE` bounds the result for OpenDP's i64 input.)
# 4. n comes from count(*) over the same rows in the same statement, so the condition is
#    checked on the rows actually summed; when it fails (or the result is not an integer
#    below 2^53, which cannot happen but is checked), the statement is run again with the
#    BIGINT grid summed in 128 bits.
_ROUND_MAGIC = 3 * 2**51  # 1.5 * 2^52
_DOUBLE_EXACT = 2**53


@dataclass(frozen=True)
class _SumTerms:
    double_sql: str  # k - c as an exact DOUBLE
    bigint_sql: str  # k as BIGINT (summed by DuckDB in 128 bits)
    center: int  # c
    max_abs_term: int  # B

    def exact_in_double(self, rows, total) -> bool:
        """Whether a DOUBLE sum over `rows` terms is exact (point 3), and its result sane."""
        if int(rows or 0) * self.max_abs_term >= _DOUBLE_EXACT:
            return False
        return total is None or (float(total).is_integer() and abs(total) < _DOUBLE_EXACT)


def _sum_terms(q: DpQuery, plan: Plan, params: dict) -> _SumTerms:
    scale = 10**plan.decimals
    lo_i, hi_i = grid_bounds(q.bounds, plan.decimals)
    center = (lo_i + hi_i) // 2
    params.update(lo=q.bounds[0], hi=q.bounds[1], lo_i=lo_i, hi_i=hi_i, scale=float(scale),
                  magic=float(_ROUND_MAGIC), magic_c=float(_ROUND_MAGIC + center),
                  lo_t=float(lo_i - center), hi_t=float(hi_i - center))
    # clamp in DOUBLE first (tames inf/NaN; on dictionary-encoded columns it runs once per
    # distinct value), then onto the grid
    y = f"least(greatest(CAST({quote_ident(q.column)} AS DOUBLE), $lo), $hi) * $scale"
    bigint = f"CAST({y} AS BIGINT)"  # DuckDB's DOUBLE -> BIGINT cast rounds half to even
    double = f"(({y} + $magic) - $magic_c)"
    if Fraction(Decimal(repr(q.bounds[0]))) * scale != lo_i or Fraction(Decimal(repr(q.bounds[1]))) * scale != hi_i:
        # a bound off the grid: clamp again on the grid so rounding never leaves [lo_i, hi_i]
        bigint = f"least(greatest({bigint}, $lo_i), $hi_i)"
        double = f"least(greatest({double}, $lo_t), $hi_t)"
    if max(abs(lo_i), abs(hi_i)) >= 2**51:  # excluded by `sum_decimals`; point 1 needs it
        raise Failure("the sum's integer grid is too fine for its bounds")
    return _SumTerms(double, bigint, center, max(hi_i - center, center - lo_i))


@dataclass(frozen=True)
class Exact:
    """Exact (un-noised) aggregates, in the plan's cell order. Never leaves the service."""

    counts: list[int] | None = None
    sums: list[int] | None = None  # integer grid units
    values: list[float] | None = None  # clamped values (quantiles)
    truncated: bool = False  # whether the truncation window ran


def _cell_key(values) -> tuple:
    out = []
    for v in values:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        out.append(str(v))
    return tuple(out)


def exact_aggregate(q: DpQuery, plan: Plan, extract_dir: Path, *, con=None, types: dict | None = None,
                    memory_limit: str | None = None, threads: int | None = None,
                    force_truncation: bool = False) -> Exact:
    """Exact aggregates for the plan. `con`: a session from `connect(extract_dir)` to reuse
    (the caller closes it); without it one is opened and closed here."""
    own = con is None
    if own:
        con = connect(Path(extract_dir), memory_limit=memory_limit, threads=threads)
    try:
        path = table_path(con.extract, q.table)
        if types is None:
            types = query_types(con, q)
            check_types(q, types)
        params: dict = {"p": str(path)}
        conds = _where_sql(q, types, params)
        if q.column and q.kind != "histogram":
            conds.append(f"{col_expr(q.column)} IS NOT NULL")
        used = list(dict.fromkeys(list(q.group_columns) + ([q.column] if q.column else [])))
        pid = quote_ident(q.person_key)
        # rows without a person key belong to nobody we can bound: never counted (the check is
        # skipped when the file has none, so the person key column need not be read at all)
        if has_null_keys(con, path, q.person_key):
            conds.insert(0, f"t.{pid} IS NOT NULL")
        select = ", ".join([f"t.{pid} AS __pid"] + [f"{col_expr(c)} AS {quote_ident(c)}" for c in used])
        m = q.max_per_person
        join = ""
        full_window = force_truncation
        if joins_person(q):
            person_path = table_path(con.extract, q.person_table)
            params["pp"] = str(person_path)
            person = "read_parquet($pp)"
            if dropped_rows(con, person_path, q.person_key, 1)[1] > 0:
                # a person listed twice would join each of their rows twice, past the bound the
                # calibration used: join one row per person, chosen by its content (so by that
                # person's rows only, like truncation)
                person = "(" + _rank_sql(pid, list(column_types(con, person_path)), "<= 1", person) + ")"
            join = f" LEFT JOIN {person} p ON t.{pid} = p.{pid}"
        dropped, n_dropped = dropped_rows(con, path, q.person_key, m)
        full_window = full_window or n_dropped > MAX_DROPPED_ROWS
        where = (" WHERE " + " AND ".join(conds)) if conds else ""

        def base_of(table_sql: str) -> str:
            return f"SELECT {select} FROM {table_sql} t{join}{where}"

        truncate = full_window or n_dropped > 0
        if full_window:  # truncation computed here, for this query
            columns = list(column_types(con, path))
            bases = [(base_of("(" + _rank_sql(pid, columns, f"<= {int(m)}", "read_parquet($p)") + ")"), 1)]
        elif n_dropped and q.kind == "quantile":  # values, not sums: leave the dropped rows out
            bases = [(base_of(f"(SELECT * FROM read_parquet($p, file_row_number = true) WHERE file_row_number "
                              f"NOT IN (SELECT file_row_number FROM {dropped}))"), 1)]
        elif n_dropped:
            bases = [(base_of("read_parquet($p)"), 1), (base_of(dropped), -1)]
        else:
            bases = [(base_of("read_parquet($p)"), 1)]
        base = bases[0][0]
        groups = [quote_ident(c) for c in q.group_columns]
        if q.kind == "quantile":
            lo, hi = q.bounds
            params.update(lo=lo, hi=hi)
            sql = f"SELECT least(greatest(CAST({quote_ident(q.column)} AS DOUBLE), $lo), $hi) FROM ({base})"
            arr = con.execute(sql, _used(sql, params)).fetchnumpy()
            values = next(iter(arr.values())).tolist() if arr else []
            return Exact(values=[float(v) for v in values], truncated=truncate)
        ng = len(groups)
        summing = q.kind in ("sum", "mean")
        terms = _sum_terms(q, plan, params) if summing else None

        def statement(sum_sql: str | None) -> str:
            # the whole table and the rows truncation removed (or the truncated table alone) in
            # one statement, each part aggregated on its own and tagged with its sign
            aggs = ["count(*)"] + ([f"sum({sum_sql})"] if sum_sql else [])
            return " UNION ALL ".join(
                f"SELECT {sign} AS __sign, {', '.join(groups + aggs)} FROM ({base})"
                + (f" GROUP BY {', '.join(groups)}" if groups else "") for base, sign in bases)

        sql = statement(terms.double_sql if summing else None)
        rows = con.execute(sql, _used(sql, params)).fetchall()
        center = 0
        if summing:
            if all(terms.exact_in_double(r[ng + 1], r[ng + 2]) for r in rows):
                center = terms.center
            else:  # too many rows for an exact DOUBLE sum: the BIGINT grid, summed in 128 bits
                sql = statement(terms.bigint_sql)
                rows = con.execute(sql, _used(sql, params)).fetchall()
        found: dict[tuple, list[int]] = {}
        for r in rows:
            sign, cell, values = r[0], r[1:ng + 1], r[ng + 1:]
            acc = found.setdefault(_cell_key(cell), [0] * len(values))
            n = int(values[0] or 0)
            acc[0] += sign * n
            if summing:  # the DOUBLE path summed k - c: add n * c back, in Python integers
                acc[1] += sign * (int(values[1] or 0) + center * n)
    except duckdb.Error as err:
        raise Failure(f"the DP query failed in DuckDB: {str(err).splitlines()[0]}") from err
    finally:
        if own:
            con.close()
    cells = list(itertools.product(*q.categories)) if ng else [()]
    # Cells come from the declared categories only: values outside them are dropped, and
    # every declared cell is released (an empty cell omitted would itself disclose).
    counts, sums = [], []
    for cell in cells:
        agg = found.get(_cell_key(cell))
        counts.append(agg[0] if agg else 0)
        if q.kind in ("sum", "mean"):
            s = agg[1] - plan.shift_units * agg[0] if agg else 0
            if abs(s) >= I64_SAFE:
                raise Failure("the exact sum exceeds the integer range; narrow the bounds")
            sums.append(s)
    return Exact(counts=counts, sums=sums if q.kind in ("sum", "mean") else None, truncated=truncate)


def check_extract(q: DpQuery, extract_dir: Path, *, con=None) -> dict[str, str]:
    """Check the query against the extract's actual columns and types (before any charge)."""
    own = con is None
    if own:
        con = connect(Path(extract_dir))
    try:
        types = query_types(con, q)  # refuses a table the extract does not hold
    except duckdb.Error as err:
        raise Failure(f"cannot read the extract table {q.table!r}: {str(err).splitlines()[0]}") from err
    finally:
        if own:
            con.close()
    check_types(q, types)
    return types
