"""Exact aggregates for a DP query, computed in DuckDB over the extract's Parquet files.

One narrow door to the data: an in-memory DuckDB connection that may read only the extract
directory (external access off, configuration locked), SQL built from descriptor-checked
identifiers and bound parameters only. Nothing here adds noise or touches the ledger.

Per-person truncation: rows are cut to the declared `max_per_person` per person
(`row_number() OVER (PARTITION BY person ORDER BY hash(...)) <= m`) before aggregating, so
the calibration's contribution bound holds whatever the data hold. Truncation depends only
on that person's own rows, so neighbouring datasets stay neighbours. When the extract file
already has at most m rows for every person (measured once per immutable file and cached),
the window is skipped: filters only remove rows, so the result is identical and cheaper.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb

from hub.exceptions import Failure, InvalidInput

from egress.dp.calibrate import I64_SAFE, Plan, grid_bounds
from egress.dp.spec import NUMERIC_TYPE_RE, STRING_TYPE_RE, TEMPORAL_TYPE_RE, DpQuery

_SAFE_TYPE_RE = re.compile(r"^[A-Z0-9_ (),]+$")


def quote_ident(name: str) -> str:
    # Names were matched against the descriptor already; quoting is the second fence.
    return '"' + name.replace('"', '""') + '"'


def table_path(extract_dir: Path, table: str) -> Path:
    manifest = extract_dir / "manifest.json"
    if manifest.is_file():
        info = json.loads(manifest.read_text()).get("tables", {}).get(table)
        if info is None:
            raise InvalidInput(f"table {table!r} is not in this permit's extract", field="table")
        return extract_dir / info.get("file", f"{table}.parquet")
    path = extract_dir / f"{table}.parquet"
    if not path.is_file():
        raise InvalidInput(f"table {table!r} is not in this permit's extract", field="table")
    return path


def connect(extract_dir: Path, *, memory_limit: str | None = None, threads: int | None = None):
    con = duckdb.connect(":memory:")
    if memory_limit:
        con.execute("SET memory_limit = $m", {"m": memory_limit})
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute("SET allowed_directories = $d", {"d": [str(extract_dir.resolve()) + "/"]})
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def column_types(con, path: Path) -> dict[str, str]:
    rows = con.execute("DESCRIBE SELECT * FROM read_parquet($p)", {"p": str(path)}).fetchall()
    return {r[0]: str(r[1]).upper() for r in rows}


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


def _where_sql(q: DpQuery, types: dict[str, str], params: dict) -> list[str]:
    conds = []
    for i, f in enumerate(q.where):
        col = quote_ident(f.column)
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
_max_rows_cache: dict[tuple, int] = {}


def max_rows_per_person(con, path: Path, person_key: str) -> int:
    """Largest number of rows any person has in the file (cached per immutable file)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, person_key)
    with _stats_lock:
        if key in _max_rows_cache:
            return _max_rows_cache[key]
    n = con.execute(f"SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM read_parquet($p) "
                    f"GROUP BY {quote_ident(person_key)})", {"p": str(path)}).fetchone()[0]
    with _stats_lock:
        _max_rows_cache[key] = int(n)
    return int(n)


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


def exact_aggregate(q: DpQuery, plan: Plan, extract_dir: Path, *, memory_limit: str | None = None,
                    threads: int | None = None, force_truncation: bool = False) -> Exact:
    extract_dir = Path(extract_dir)
    path = table_path(extract_dir, q.table)
    con = connect(extract_dir, memory_limit=memory_limit, threads=threads)
    try:
        types = column_types(con, path)
        check_types(q, types)
        params: dict = {"p": str(path)}
        conds = _where_sql(q, types, params)
        if q.column and q.kind != "histogram":
            conds.append(f"{quote_ident(q.column)} IS NOT NULL")
        used = list(dict.fromkeys(list(q.group_columns) + ([q.column] if q.column else [])))
        pid = quote_ident(q.person_key)
        select = ", ".join([f"{pid} AS __pid"] + [quote_ident(c) for c in used])
        base = f"SELECT {select} FROM read_parquet($p)" + (f" WHERE {' AND '.join(conds)}" if conds else "")
        m = q.max_per_person
        truncate = force_truncation or max_rows_per_person(con, path, q.person_key) > m
        if truncate:
            order = ", ".join(["__pid"] + [quote_ident(c) for c in used])
            base = (f"SELECT * EXCLUDE (__rn) FROM (SELECT *, row_number() OVER (PARTITION BY __pid "
                    f"ORDER BY hash({order})) AS __rn FROM ({base})) WHERE __rn <= {int(m)}")
        groups = [quote_ident(c) for c in q.group_columns]
        if q.kind == "quantile":
            lo, hi = q.bounds
            params.update(lo=lo, hi=hi)
            arr = con.execute(f"SELECT least(greatest(CAST({quote_ident(q.column)} AS DOUBLE), $lo), $hi) "
                              f"FROM ({base})", params).fetchnumpy()
            values = next(iter(arr.values())).tolist() if arr else []
            return Exact(values=[float(v) for v in values], truncated=truncate)
        aggs = ["count(*)"]
        if q.kind in ("sum", "mean"):
            lo_i, hi_i = grid_bounds(q.bounds, plan.decimals)
            params.update(lo=q.bounds[0], hi=q.bounds[1], lo_i=lo_i, hi_i=hi_i, scale=float(10**plan.decimals),
                          shift=plan.shift_units)
            # clamp in DOUBLE (tames inf/NaN), round onto the integer grid, clamp again on the grid
            grid = (f"least(greatest(CAST(round(least(greatest(CAST({quote_ident(q.column)} AS DOUBLE), $lo), $hi)"
                    f" * $scale) AS BIGINT), $lo_i), $hi_i)")
            aggs.append(f"sum({grid} - $shift)")
        sql = f"SELECT {', '.join(groups + aggs)} FROM ({base})" + (f" GROUP BY {', '.join(groups)}" if groups else "")
        rows = con.execute(sql, params).fetchall()
    except duckdb.Error as err:
        raise Failure(f"the DP query failed in DuckDB: {str(err).splitlines()[0]}") from err
    finally:
        con.close()
    ng = len(groups)
    found = {_cell_key(r[:ng]): r[ng:] for r in rows}
    cells = list(itertools.product(*q.categories)) if ng else [()]
    # Cells come from the declared categories only: values outside them are dropped, and
    # every declared cell is released (an empty cell omitted would itself disclose).
    counts, sums = [], []
    for cell in cells:
        agg = found.get(_cell_key(cell))
        counts.append(int(agg[0]) if agg else 0)
        if q.kind in ("sum", "mean"):
            s = int(agg[1]) if agg and agg[1] is not None else 0
            if abs(s) >= I64_SAFE:
                raise Failure("the exact sum exceeds the integer range; narrow the bounds")
            sums.append(s)
    return Exact(counts=counts, sums=sums if q.kind in ("sum", "mean") else None, truncated=truncate)


def check_extract(q: DpQuery, extract_dir: Path) -> dict[str, str]:
    """Check the query against the extract's actual columns and types (before any charge)."""
    extract_dir = Path(extract_dir)
    path = table_path(extract_dir, q.table)
    con = connect(extract_dir)
    try:
        types = column_types(con, path)
    except duckdb.Error as err:
        raise Failure(f"cannot read the extract table {q.table!r}: {str(err).splitlines()[0]}") from err
    finally:
        con.close()
    check_types(q, types)
    return types
