"""Property tests of provenance evidence for SQL as researchers write it (issue 15), on real
DuckDB extracts.

A seeded generator writes random person-level data (a person table, one row per person, and an
event table with several rows per person) as a Parquet extract, with planted boundary cells: a
region of exactly `THRESHOLD` persons and one of `THRESHOLD - 1`, and one person whose value
dominates. A random table *spec* (source, 1-3 dimensions, aggregate, filter, margins) is written
in every SQL form that computes it: plain GROUP BY, GROUP BY ALL / positional keys, a CTE or a
subquery (with and without the person column), joins (USING, ON, inside a CTE), CASE bins and
date_trunc, margins by CUBE / ROLLUP / GROUPING SETS / hand-written UNION ALL, count(*),
count(DISTINCT person_id), count_if, sum, avg, min, max, median, stddev.

Every form must be re-executed, matched and *verified*, and the checker's failing cells must
equal a brute-force recomputation in plain Python from the generated persons (independent of
`egress`). Proposed suppression patterns are attacked by an LP attacker, and differencing
verdicts are compared with a person-level differencing attacker (tests/sdc_attackers.py, both
independent of `egress.checks`).
"""

from __future__ import annotations

import itertools
import json
import math
import random
import statistics
from dataclasses import dataclass, field
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from egress.checks import check_table
from egress.checks.differencing import Related
from egress.checks.secondary import apply_pattern
from egress.provenance import reexecute, verify_provenance
from tests.sdc_attackers import differencing_attack, exposed, lp_attack

THRESHOLD = 10
DOMINANT = 1_000_000.0
REGIONS = ["n", "s", "e", "w"]
KINDS = ["a", "b", "c"]
BANDS = [(1950, "old"), (1975, "mid"), (10_000, "young")]
BAND_SQL = "CASE WHEN {t}.year_of_birth < 1950 THEN 'old' WHEN {t}.year_of_birth < 1975 THEN 'mid' ELSE 'young' END"
PERSON_DIMS = {"sex": "{t}.sex", "region": "{t}.region", "band": BAND_SQL}
EVENT_DIMS = {"kind": "{e}.kind", "year": "strftime(date_trunc('year', {e}.event_date), '%Y')"}
FAILING = {"threshold", "zero", "dominance", "p_percent", "dof"}


# --- data -------------------------------------------------------------------------------------

def make_data(rng: random.Random) -> tuple[list[dict], list[dict]]:
    """Persons (one huge-valued person) and their events; region `x` holds exactly THRESHOLD
    persons and `y` THRESHOLD - 1 (boundary cells of every table over region)."""
    count = rng.randint(260, 420)
    persons, events = [], []
    for i in range(count):
        region = "x" if i < THRESHOLD else "y" if i < 2 * THRESHOLD - 1 else rng.choice(REGIONS)
        persons.append({"person_id": f"p{i:04d}", "sex": rng.choice("FM"), "region": region,
                        "year_of_birth": rng.randint(1930, 2004),
                        "weight": float(rng.randint(40, 120)) if i != 25 else DOMINANT})
        for _ in range(rng.randint(1, 5)):
            events.append({"person_id": f"p{i:04d}", "kind": rng.choice(KINDS),
                           "event_date": date(2019, 1, 1) + timedelta(days=rng.randint(0, 3 * 365 - 1)),
                           "value": float(rng.randint(1, 400)) if i != 25 else DOMINANT})
    return persons, events


def write_extract(directory, persons, events):
    directory.mkdir(parents=True)
    manifest = {"persons": len(persons), "tables": {}}
    for name, rows in (("person", persons), ("events", events)):
        table = pa.Table.from_pylist(rows)
        pq.write_table(table, directory / f"{name}.parquet")
        manifest["tables"][name] = {"file": f"{name}.parquet", "rows": table.num_rows,
                                    "persons": len({r["person_id"] for r in rows}), "person_key": "person_id",
                                    "columns": [{"name": c, "type": str(t)} for c, t in
                                                zip(table.column_names, table.schema.types)]}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    rng = random.Random(1515)
    persons, events = make_data(rng)
    extract = write_extract(tmp_path_factory.mktemp("evidence") / "extract", persons, events)
    return persons, events, extract


# --- table specs and their brute force ---------------------------------------------------------

@dataclass
class Spec:
    source: str                      # person | events
    dims: list[str]
    aggregate: str                   # count | count_distinct | count_if | sum | avg | min | max | median | stddev
    margins: str                     # none | cube | rollup
    where: tuple | None = None       # (sql, python predicate on a row)
    drop: frozenset = field(default_factory=frozenset)  # persons removed (differencing)

    @property
    def kind(self) -> str:
        return "frequency" if self.aggregate.startswith("count") else "magnitude"

    def patterns(self) -> list[tuple[bool, ...]]:
        """Which dimensions each grouping set keeps (True) or adds up (False)."""
        k = len(self.dims)
        if self.margins == "none":
            return [(True,) * k]
        if self.margins == "rollup":
            return [tuple(i < keep for i in range(k)) for keep in range(k, -1, -1)]
        return list(itertools.product((True, False), repeat=k))


def source_rows(spec: Spec, persons, events) -> list[dict]:
    people = {p["person_id"]: p for p in persons}
    if spec.source == "person":
        rows = [dict(p, value=p["weight"]) for p in persons]
    else:
        rows = [dict(people[e["person_id"]], **e) for e in events]
    rows = [r for r in rows if r["person_id"] not in spec.drop]
    return [r for r in rows if spec.where is None or spec.where[1](r)]


def dim_value(row: dict, dim: str) -> str:
    if dim == "band":
        return next(name for limit, name in BANDS if row["year_of_birth"] < limit)
    if dim == "year":
        return str(row["event_date"].year)
    return str(row[dim])


def brute_force(spec: Spec, persons, events) -> dict[tuple, dict[str, list[float]]]:
    """label tuple -> {person: values}: every cell the query outputs, from the raw rows."""
    cells: dict[tuple, dict[str, list[float]]] = {}
    for row in source_rows(spec, persons, events):
        if spec.aggregate == "count_if" and not row["value"] > 200:
            values = None
        else:
            values = row["value"]
        for pattern in spec.patterns():
            key = tuple(dim_value(row, d) if keep else "All" for d, keep in zip(spec.dims, pattern))
            cell = cells.setdefault(key, {})
            if values is not None:
                cell.setdefault(row["person_id"], []).append(values)
            else:
                cell.setdefault(row["person_id"], [])
    return cells


def expected_failures(spec: Spec, cells) -> dict[tuple, set[str]]:
    out = {}
    for key, members in cells.items():
        contributors = {p: v for p, v in members.items() if v}
        rules = set()
        if len(contributors) < THRESHOLD:
            rules.add("threshold")
        if spec.aggregate in ("count_if",) and not contributors:
            rules.add("zero")
        if cell_value(spec, members) is None:  # an empty cell (a spread of one value): its persons only
            out[key] = rules
            continue
        if spec.aggregate in ("sum", "avg") and contributors:
            parts = sorted((sum(v) for v in contributors.values()), reverse=True)
            total = sum(parts)
            if total > 0 and sum(parts[:2]) / total >= 0.9:
                rules.add("dominance")
            rest = total - parts[0] - (parts[1] if len(parts) > 1 else 0)
            if (rest if parts[0] == 0 else rest / parts[0]) < 0.1:
                rules.add("p_percent")
        if spec.aggregate == "stddev" and len(contributors) - 1 < THRESHOLD:
            rules.add("dof")
        if rules:
            out[key] = rules
    return out


def cell_value(spec: Spec, members: dict[str, list[float]]) -> float | None:
    values = [v for vs in members.values() for v in vs]
    if spec.aggregate == "count":
        return float(len(values))
    if spec.aggregate == "count_distinct":
        return float(len(members))
    if spec.aggregate == "count_if":
        return float(len(values))
    if not values:
        return None
    return {"sum": sum, "avg": statistics.fmean, "min": min, "max": max, "median": statistics.median,
            "stddev": lambda v: statistics.stdev(v) if len(v) > 1 else None}[spec.aggregate](values)


# --- SQL forms of a spec --------------------------------------------------------------------

AGGREGATES = {"count": "count(*)", "count_distinct": "count(DISTINCT {p}.person_id)",
              "count_if": "count_if({v} > 200)", "sum": "sum({v})", "avg": "avg({v})", "min": "min({v})",
              "max": "max({v})", "median": "median({v})", "stddev": "stddev_samp({v})"}


def _dim_sql(dim: str, p: str, e: str) -> str:
    if dim in PERSON_DIMS:
        return PERSON_DIMS[dim].format(t=p)
    return EVENT_DIMS[dim].format(e=e)


def _from(spec: Spec, join: str) -> tuple[str, str, str, str]:
    """(FROM clause, person alias, event alias, value expression)."""
    if spec.source == "person":
        return "person p", "p", "p", "p.weight"
    if join == "on":
        return "events e JOIN person p ON e.person_id = p.person_id", "p", "e", "e.value"
    return "events e JOIN person p USING (person_id)", "p", "e", "e.value"


def _where(spec: Spec, p: str) -> str:
    conditions = []
    if spec.where:
        conditions.append(spec.where[0].format(p=p))
    if spec.drop:
        conditions.append(f"{p}.person_id NOT IN ({', '.join(repr(x) for x in sorted(spec.drop))})")
    return (" WHERE " + " AND ".join(conditions)) if conditions else ""


def label(expr: str, dim: str, margin: str) -> str:
    value = f"CAST({expr} AS VARCHAR)"
    if margin == "grouping":
        return f"CASE WHEN GROUPING({expr}) = 1 THEN 'All' ELSE {value} END AS {dim}"
    if margin == "coalesce":
        return f"coalesce({value}, 'All') AS {dim}"
    return f"{value} AS {dim}"


def forms(spec: Spec) -> dict[str, str]:
    """Every way of writing the spec that this test knows, by name."""
    out = {}
    for join in (("using", "on") if spec.source == "events" else ("",)):
        source, p, e, v = _from(spec, join)
        dims = {d: _dim_sql(d, p, e) for d in spec.dims}
        agg = AGGREGATES[spec.aggregate].format(p=p, v=v)
        where = _where(spec, p)
        keys = ", ".join(dims.values())
        tag = f"-{join}" if join else ""
        if spec.margins == "none":
            labels = ", ".join(label(x, d, "") for d, x in dims.items())
            out[f"plain{tag}"] = f"SELECT {labels}, {agg} AS m FROM {source}{where} GROUP BY {keys}"
            out[f"group-by-all{tag}"] = f"SELECT {labels}, {agg} AS m FROM {source}{where} GROUP BY ALL"
            out[f"positional{tag}"] = (f"SELECT {labels}, {agg} AS m FROM {source}{where} GROUP BY "
                                       + ", ".join(str(i + 1) for i in range(len(dims))) + " ORDER BY 1")
            inner = ", ".join(f"{x} AS {d}" for d, x in dims.items())
            arg = "v" if "{v}" in AGGREGATES[spec.aggregate] else None
            outer_agg = AGGREGATES[spec.aggregate].format(p="b", v="b.v")
            with_person = f"{p}.person_id, " if spec.aggregate == "count_distinct" else ""
            base = f"SELECT {with_person}{inner}{', ' + v + ' AS v' if arg else ''} FROM {source}{where}"
            casts = ", ".join(f"CAST(b.{d} AS VARCHAR) AS {d}" for d in dims)
            out[f"cte{tag}"] = (f"WITH b AS ({base}) SELECT {casts}, {outer_agg} AS m FROM b "
                                f"GROUP BY {', '.join('b.' + d for d in dims)}")
            out[f"subquery{tag}"] = (f"SELECT {casts}, {outer_agg} AS m FROM ({base}) AS b "
                                     f"GROUP BY {', '.join('b.' + d for d in dims)} ORDER BY 2 DESC")
        else:
            grouping = "CUBE" if spec.margins == "cube" else "ROLLUP"
            labels = ", ".join(label(x, d, "grouping") for d, x in dims.items())
            out[f"{grouping.lower()}{tag}"] = (f"SELECT {labels}, {agg} AS m FROM {source}{where} "
                                               f"GROUP BY {grouping} ({keys})")
            sets = ", ".join("(" + ", ".join(x for (d, x), keep in zip(dims.items(), pattern) if keep) + ")"
                             for pattern in spec.patterns())
            labels = ", ".join(label(x, d, "coalesce") for d, x in dims.items())
            out[f"grouping-sets{tag}"] = (f"SELECT {labels}, {agg} AS m FROM {source}{where} "
                                          f"GROUP BY GROUPING SETS ({sets})")
            parts = []
            for pattern in spec.patterns():
                select = ", ".join(f"CAST({x} AS VARCHAR) AS {d}" if keep else f"'All' AS {d}"
                                   for (d, x), keep in zip(dims.items(), pattern))
                kept = [x for (d, x), keep in zip(dims.items(), pattern) if keep]
                parts.append(f"SELECT {select}, {agg} AS m FROM {source}{where}"
                             + (f" GROUP BY {', '.join(kept)}" if kept else ""))
            out[f"union-all{tag}"] = "SELECT * FROM (" + "\nUNION ALL\n".join(parts) + ") AS t ORDER BY 1"
    return out


def random_spec(rng: random.Random) -> Spec:
    source = rng.choice(["person", "events"])
    pool = list(PERSON_DIMS) + (list(EVENT_DIMS) if source == "events" else [])
    dims = rng.sample(pool, rng.randint(1, min(3, len(pool))))
    if "region" not in dims and rng.random() < 0.6:
        dims[0] = "region"  # the planted boundary cells
    aggregates = ["count", "count_distinct", "sum", "avg", "min", "max", "median", "stddev"]
    if source == "events":
        aggregates.append("count_if")
    aggregate = rng.choice(aggregates)
    margins = rng.choice(["none", "cube", "rollup"]) if len(dims) > 1 else rng.choice(["none", "cube"])
    where = None
    if rng.random() < 0.3:
        where = ("{p}.year_of_birth >= 1940", lambda r: r["year_of_birth"] >= 1940)
    return Spec(source, dims, aggregate, margins, where)


SPECS = [random_spec(random.Random(seed)) for seed in range(14)] + [
    Spec("events", ["region", "kind"], "sum", "cube"),
    Spec("person", ["sex", "region"], "count", "cube"),
    Spec("events", ["region", "year", "sex"], "count_distinct", "rollup"),
    Spec("person", ["region", "band"], "stddev", "none"),
    Spec("events", ["region"], "median", "none"),
    Spec("person", ["region", "sex"], "max", "cube"),
    Spec("events", ["year", "region"], "min", "rollup"),
    Spec("events", ["kind", "sex"], "count_if", "cube"),
    Spec("events", ["region", "kind"], "count_distinct", "cube",
         ("{p}.year_of_birth >= 1940", lambda r: r["year_of_birth"] >= 1940)),
]


def table_and_cells(spec: Spec, sql: str, extract, persons, events):
    table = reexecute(sql, extract)
    labels = [table.column(d).to_pylist() for d in spec.dims]
    keys = [tuple(str(v) for v in row) for row in zip(*labels)]
    return table, keys, brute_force(spec, persons, events)


# --- the tests ----------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.source}-{'x'.join(s.dims)}-{s.aggregate}-{s.margins}")
def test_every_sql_form_is_verified_and_its_verdicts_equal_brute_force(world, spec):
    persons, events, extract = world
    truth = None
    for name, sql in forms(spec).items():
        table, keys, cells = table_and_cells(spec, sql, extract, persons, events)
        assert sorted(keys) == sorted(cells), name           # the query's cells are the brute force's
        for key, value in zip(keys, table.column("m").to_pylist()):
            expected = cell_value(spec, cells[key])
            assert (value is None and expected is None) or math.isclose(value, expected, rel_tol=1e-9), (name, key)
        result = verify_provenance(table, sql, extract)
        assert result.verified, (name, result.evidence_reason, sql)
        for key in keys:
            evidence = result.evidence.get(key, "m")
            assert evidence.persons == len({p for p, v in cells[key].items() if v}), (name, key)
        verdicts = check_table(table, None, kind=spec.kind, evidence=result.evidence,
                               extract_persons=result.extract_persons)
        found = {}
        for cell in verdicts.cells:
            rules = {f.rule for f in cell.findings if f.status == "fail"} & FAILING
            if rules:
                found[keys[cell.row]] = rules
        assert found == expected_failures(spec, cells), (name, sql)
        assert verdicts.verified
        truth = truth or (table, keys, cells, verdicts, sql)
    table, keys, cells, verdicts, sql = truth
    if not expected_failures(spec, cells):
        assert verdicts.suppression is None
        return
    pattern = verdicts.suppression
    assert pattern is not None and pattern["verified"], pattern
    released = apply_pattern(table, pattern["cells"])
    sensitive = {keys.index(k) for k in expected_failures(spec, cells)}
    if additive(spec):  # margins are sums of their cells: the attacker's equations hold
        for row, interval in lp_attack(released.column("m").to_pylist(), keys, "All").items():
            truth_value = table.column("m")[row].as_py()
            assert hidden(interval, truth_value, row in sensitive, spec), (row, interval, truth_value)
    # resubmitted with the pattern applied, the same query verifies and nothing fails but cells
    # that are empty by computation (a spread of one value): no suppression hides those, only
    # merging categories does
    again = verify_provenance(released, sql, extract)
    assert again.verified, again.evidence_reason
    recheck = check_table(released, None, kind=spec.kind, evidence=again.evidence)
    empty = {i for i, k in enumerate(keys) if cell_value(spec, cells[k]) is None}
    assert {c.row for c in recheck.cells if c.status == "fail"} <= empty, recheck.to_dict()
    assert all(f.status != "fail" for f in recheck.table), recheck.to_dict()


@pytest.mark.parametrize("seed", range(4))
def test_differencing_verdicts_equal_a_person_level_attacker(world, seed):
    persons, events, extract = world
    rng = random.Random(700 + seed)
    source = rng.choice(["person", "events"])
    aggregate = "count_distinct" if source == "events" else rng.choice(["count", "sum"])
    earlier = Spec(source, ["region"], aggregate, "cube")
    region = rng.choice(REGIONS)
    dropped = frozenset(rng.sample(sorted(p["person_id"] for p in persons if p["region"] == region),
                                   rng.randint(1, 14)))
    later = Spec(source, ["region"], aggregate, "cube", drop=dropped)
    old_sql = next(iter(forms(earlier).values()))
    new_sql = list(forms(later).values())[-1]  # another form: the check works on persons, not text
    old_table = reexecute(old_sql, extract)
    old = verify_provenance(old_table, old_sql, extract, person_sets=True)
    new_table = reexecute(new_sql, extract)
    new = verify_provenance(new_table, new_sql, extract, person_sets=True)
    assert old.verified and new.verified, (old.evidence_reason, new.evidence_reason)
    verdicts = check_table(new_table, None, kind=later.kind, evidence=new.evidence,
                           released=[Related(old_table, "r-1/earlier.parquet", "released",
                                             old.evidence)])
    flagged = {c.row for c in verdicts.cells if "differencing" in c.rules}
    old_cells = brute_force(earlier, persons, events)
    new_cells = brute_force(later, persons, events)
    new_keys = [(str(v),) for v in new_table.column("region").to_pylist()]
    new_sets = [frozenset(new_cells[k]) for k in new_keys]
    assert flagged == differencing_attack(new_sets, [frozenset(s) for s in old_cells.values()], THRESHOLD)
    assert bool(flagged) == (len(dropped) < THRESHOLD)


def test_wide_tables_of_filtered_counts_are_verified_per_column(world):
    persons, _, extract = world
    sql = ("SELECT region, count(*) FILTER (WHERE sex = 'F') AS f, count_if(sex = 'M') AS m "
           "FROM person GROUP BY region ORDER BY region")
    table = reexecute(sql, extract)
    result = verify_provenance(table, sql, extract)
    assert result.verified, result.evidence_reason
    for region, f, m in zip(*(table.column(c).to_pylist() for c in ("region", "f", "m"))):
        women = {p["person_id"] for p in persons if p["region"] == region and p["sex"] == "F"}
        men = {p["person_id"] for p in persons if p["region"] == region and p["sex"] == "M"}
        assert (result.evidence.get([region], "f").persons, result.evidence.get([region], "m").persons) \
            == (len(women), len(men)) == (f, m)
    verdicts = check_table(table, None, kind="frequency", evidence=result.evidence)
    expected = {(i, c) for i, r in enumerate(table.to_pylist()) for c in ("f", "m") if r[c] < THRESHOLD}
    assert {(c.row, c.column) for c in verdicts.cells if "threshold" in c.rules} == expected


def additive(spec: Spec) -> bool:
    """Does every margin equal the sum of its cells? Row counts and sums do; distinct persons
    do only when every dimension is a person's attribute (one category per person)."""
    if spec.aggregate in ("count", "count_if", "sum"):
        return True
    return spec.aggregate == "count_distinct" and all(d in PERSON_DIMS for d in spec.dims)


def hidden(interval, truth: float, sensitive: bool, spec: Spec) -> bool:
    if spec.kind == "magnitude" and spec.aggregate != "sum":
        return True  # means, extremes, spreads do not add up along margins
    return not exposed(interval, truth, sensitive, count=spec.kind == "frequency", threshold=THRESHOLD)
