"""The DP gateway end to end on real extracts: truncation and declared categories in DuckDB,
OpenDP noise, the ledger charged before computing, refusals free of charge, audit events.
The last test drives the real control plane: Eunomia registered, demo permit applied,
extract provisioned, then DP queries against the registry's descriptor."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from egress.dp import ledger
from egress.dp.calibrate import make_plan
from egress.dp.compute import check_extract, exact_aggregate
from egress.dp.exceptions import BudgetExhausted
from egress.dp.service import budget, run_query
from egress.dp.spec import parse_query
from hub import audit
from hub.audit.tables import audit_events
from hub.exceptions import Forbidden, InvalidInput, Refused
from tests.integration.dp_fixtures import SCHEMA, make_extract, make_permit


@pytest.fixture
def extract(tmp_path):
    return make_extract(tmp_path / "extract")


def duck(sql, params=None):
    con = duckdb.connect(":memory:")
    try:
        return con.execute(sql, params or {}).fetchall()
    finally:
        con.close()


def exact(spec, extract, **kw):
    q = parse_query(spec, SCHEMA)
    return exact_aggregate(q, make_plan(q), extract, **kw)


def test_rows_beyond_the_declared_bound_are_truncated(extract):
    m = str(extract / "measurement.parquet")
    raw, truncated = duck("SELECT sum(n), sum(least(n, 5)) FROM (SELECT count(*) n FROM read_parquet($p) "
                          "GROUP BY person_id)", {"p": m})[0]
    assert raw > truncated  # some persons exceed the bound of 5
    got = exact({"kind": "count", "table": "measurement", "epsilon": 1}, extract)
    assert got.truncated and got.counts == [truncated]
    by_unit = exact({"kind": "count", "table": "measurement", "by": ["unit"], "epsilon": 1}, extract)
    assert sum(by_unit.counts) == truncated


def test_truncation_is_skipped_only_when_it_changes_nothing(extract):
    spec = {"kind": "count", "table": "person", "by": ["gender_concept_id"], "epsilon": 1}
    fast = exact(spec, extract)
    slow = exact(spec, extract, force_truncation=True)
    assert not fast.truncated and slow.truncated and fast.counts == slow.counts


@pytest.mark.parametrize("spec", [
    {"kind": "count", "table": "measurement", "by": ["unit"], "epsilon": 1},
    {"kind": "sum", "table": "measurement", "column": "value_as_number", "by": ["unit"], "epsilon": 1},
    {"kind": "count", "table": "measurement", "by": ["unit", "person.gender_concept_id"], "epsilon": 1,
     "where": [{"column": "value_as_number", "op": ">", "value": 50}]},
], ids=["count", "sum", "joined-filtered"])
def test_truncating_only_heavy_persons_equals_truncating_everyone(extract, spec):
    split = exact(spec, extract)
    full = exact(spec, extract, force_truncation=True)
    assert split.truncated and full.truncated
    assert split.counts == full.counts and split.sums == full.sums


def test_quantile_values_leave_the_truncated_rows_out(extract):
    spec = {"kind": "quantile", "table": "measurement", "column": "value_as_number", "alphas": [0.5], "epsilon": 1}
    split = exact(spec, extract)
    full = exact(spec, extract, force_truncation=True)
    assert split.truncated and sorted(split.values) == sorted(full.values)
    assert len(split.values) == exact({"kind": "count", "table": "measurement", "epsilon": 1}, extract).counts[0]


def test_cells_come_from_declared_categories_never_the_data(extract):
    p = str(extract / "person.parquet")
    got = exact({"kind": "histogram", "table": "person", "column": "race", "by": ["gender_concept_id"],
                 "epsilon": 1}, extract)
    want = dict(((g, r), n) for g, r, n in duck(
        "SELECT gender_concept_id, race, count(*) FROM read_parquet($p) GROUP BY ALL", {"p": p}))
    cells = [(g, r) for g in (8507, 8532) for r in ("white", "black", "asian")]
    assert got.counts == [want.get(c, 0) for c in cells]  # gender 0 and race 'other' are never released


def test_filters_bind_values_and_match_duckdb(extract):
    m = str(extract / "measurement.parquet")
    where = [{"column": "measurement_date", "op": "between", "value": ["2020-02-01", "2020-06-30"]},
             {"column": "unit", "op": "in", "value": ["mg"]},
             {"column": "value_as_number", "op": "<", "value": 150}]
    got = exact({"kind": "count", "table": "measurement", "where": where, "epsilon": 1}, extract)
    # truncation belongs to the table (at most 5 rows per person, chosen by content), filters
    # then apply to what is left
    content = "person_id, measurement_id, value_as_number, unit, measurement_date"
    want = duck(f"SELECT count(*) FROM (SELECT *, row_number() OVER (PARTITION BY person_id ORDER BY hash({content}), "
                f"{content}) AS rn FROM read_parquet($p)) WHERE rn <= 5 AND measurement_date BETWEEN DATE "
                f"'2020-02-01' AND DATE '2020-06-30' AND unit = 'mg' AND value_as_number < 150", {"p": m})[0][0]
    assert got.counts == [want]


def test_person_attributes_group_and_filter_event_rows(extract):
    got = exact({"kind": "count", "table": "measurement", "by": ["person.gender_concept_id"],
                 "where": [{"column": "person.year_of_birth", "op": "<", "value": 1970}], "epsilon": 1}, extract)
    # all of a person's rows fall in one sex, so the truncated count per sex is exact to check
    want = dict(duck(
        "SELECT gender_concept_id, sum(least(n, 5)) FROM (SELECT p.gender_concept_id, count(*) AS n "
        "FROM read_parquet($m) m JOIN read_parquet($p) p USING (person_id) WHERE p.year_of_birth < 1970 "
        "GROUP BY m.person_id, p.gender_concept_id) GROUP BY ALL",
        {"m": str(extract / "measurement.parquet"), "p": str(extract / "person.parquet")}))
    assert got.truncated and got.counts == [want[8507], want[8532]]
    with pytest.raises(InvalidInput, match="no declared column 'shoe_size'"):
        parse_query({"kind": "count", "table": "measurement", "by": ["person.shoe_size"], "epsilon": 1}, SCHEMA)
    with pytest.raises(InvalidInput, match="not a column"):
        parse_query({"kind": "count", "table": "measurement", "by": ["concept.x"], "epsilon": 1}, SCHEMA)


def test_a_person_listed_twice_in_the_person_table_still_counts_at_most_the_bound(extract):
    # the provisioned person table should hold each person once; if it does not, the join
    # must not count that person's (truncated) rows twice
    m, p = str(extract / "measurement.parquet"), str(extract / "person.parquet")
    heavy = duck("SELECT person_id FROM read_parquet($m) x JOIN read_parquet($p) y USING (person_id) WHERE "
                 "gender_concept_id IN (8507, 8532) GROUP BY 1 HAVING count(*) >= 5 ORDER BY 1 LIMIT 1",
                 {"m": m, "p": p})[0][0]
    spec = {"kind": "count", "table": "measurement", "by": ["person.gender_concept_id"], "epsilon": 1}
    before = exact(spec, extract).counts
    duck(f"COPY (SELECT * FROM read_parquet($p) UNION ALL SELECT * REPLACE (CASE gender_concept_id WHEN 8507 THEN "
         f"8532 ELSE 8507 END AS gender_concept_id) FROM read_parquet($p) WHERE person_id = $h) TO '{p}.new' "
         f"(FORMAT parquet)", {"p": p, "h": heavy})
    Path(p + ".new").replace(p)
    after = exact(spec, extract).counts
    # the person's 5 rows land in one of the two cells, whichever row of theirs is kept: the
    # total is unchanged, not 5 higher
    assert sum(after) == sum(before) and sorted(abs(a - b) for a, b in zip(after, before)) in ([0, 0], [5, 5])
    filtered = exact({**spec, "by": [], "where": [{"column": "person.gender_concept_id", "op": "in",
                                                  "value": [8507, 8532]}]}, extract).counts
    assert filtered == [sum(before)]


def test_sum_is_exact_on_the_integer_grid(extract):
    got = exact({"kind": "sum", "table": "measurement", "column": "value_as_number", "epsilon": 1}, extract)
    # values go up to 249 and are clamped to 200; truncation only removes rows
    rows = duck("SELECT person_id, value_as_number FROM read_parquet($p)", {"p": str(extract / 'measurement.parquet')})
    assert got.truncated
    assert got.sums[0] <= sum(min(v, 200) for _, v in rows) * 10**6
    assert got.sums[0] % 10**6 == 0  # integer values stay integers on the 10^-6 grid


def test_bounds_off_the_grid_are_clamped_on_the_grid(tmp_path):
    d = tmp_path / "x"
    d.mkdir()
    duck(f"COPY (SELECT * FROM (VALUES ('a', 0.0), ('b', 50.5), ('c', 250.0), ('d', NULL)) t(person_id, v)) "
         f"TO '{d / 'person.parquet'}' (FORMAT parquet)")
    schema = {"person": {"person_id": "person_key", "v": {"class": "sensitive", "bounds": [0.0000004, 100.0000006]}}}
    q = parse_query({"kind": "sum", "table": "person", "column": "v", "epsilon": 1}, schema)
    got = exact_aggregate(q, make_plan(q), d)
    # 0 -> 4e-7 -> 0.4 units -> 0 -> clamped up to 1; 250 -> 100.0000006 -> 100000000.6 -> 100000001 -> 1e8
    assert got.sums == [1 + 50_500_000 + 100_000_000] and got.counts == [3]
    m = parse_query({"kind": "mean", "table": "person", "column": "v", "epsilon": 1}, schema)
    plan = make_plan(m)
    assert exact_aggregate(m, plan, d).sums == [1 + 50_500_000 + 100_000_000 - 3 * plan.shift_units]


def test_rows_without_a_person_key_are_never_counted(tmp_path):
    d = tmp_path / "nulls"
    d.mkdir()
    duck(f"COPY (SELECT * FROM (VALUES ('a', 'mg'), (NULL, 'mg'), (NULL, 'g'), ('b', 'g')) t(person_id, unit)) "
         f"TO '{d / 'measurement.parquet'}' (FORMAT parquet)")
    schema = {"measurement": {"person_id": "person_key",
                              "unit": {"class": "other", "categories": ["mg", "g"], "max_per_person": 5}}}
    q = parse_query({"kind": "count", "table": "measurement", "by": ["unit"], "epsilon": 1}, schema)
    assert exact_aggregate(q, make_plan(q), d).counts == [1, 1]


def test_run_query_charges_then_answers_with_its_calibration(engine, extract):
    permit = make_permit(epsilon=2.0)
    a = run_query(engine, extract, permit, "bob", {"kind": "count", "table": "measurement", "by": ["unit"],
                                                   "epsilon": 0.5}, schema=SCHEMA)
    assert [r["unit"] for r in a["rows"]] == ["mg", "g"] and all(isinstance(r["count"], int) for r in a["rows"])
    assert a["epsilon"] == 0.5 and a["max_per_person"] == 5
    assert a["calibration"][0]["sensitivity"] == 5 and a["calibration"][0]["scale"] == pytest.approx(10.0)
    assert a["budget"]["epsilon_remaining"] == 1.5 and a["release"] == "review"
    m = run_query(engine, extract, permit, "alice", {"kind": "mean", "table": "measurement",
                                                     "column": "value_as_number", "epsilon": 0.5}, schema=SCHEMA)
    assert 0 <= m["value"] <= 200 and m["count"] > 0
    qt = run_query(engine, extract, permit, "alice", {"kind": "quantile", "table": "person", "column": "year_of_birth",
                                                      "alphas": [0.5], "epsilon": 0.5}, schema=SCHEMA)
    assert 1900 <= qt["values"]["0.5"] <= 2025
    g = run_query(engine, extract, permit, "alice", {"kind": "count", "table": "person", "epsilon": 0.25,
                                                     "mechanism": "gaussian", "delta": 1e-7}, schema=SCHEMA)
    assert g["rho"] > 0 and g["budget"]["delta_remaining"] == pytest.approx(9e-7)
    view = budget(engine, permit, "bob")
    assert view["epsilon_spent"] == 1.75 and view["epsilon_remaining"] == 0.25
    with engine.connect() as conn:
        actions = [(e["action"], e["outcome"]) for e in audit.iter_events(conn)]
    assert actions == [("dp.charge", "ok"), ("dp.query", "ok")] * 4
    assert audit.verify(engine).ok


BAD = [
    ({"kind": "count", "table": "person", "by": ["shoe_size"], "epsilon": 0.5}, InvalidInput, "no declared column"),
    ({"kind": "count", "table": "person", "by": ["year_of_birth"], "epsilon": 0.5}, InvalidInput, "no categories"),
    ({"kind": "count", "table": "person", "epsilon": 0}, InvalidInput, "greater than 0"),
    ({"kind": "count", "table": "person", "epsilon": float("nan")}, InvalidInput, "finite"),
    ({"kind": "count", "table": "person", "epsilon": 0.5,
      "where": [{"column": "race", "op": "=", "value": "white'; DROP TABLE person; --"}]}, InvalidInput,
     "not a declared category"),
    ({"kind": "count", "table": "person", "epsilon": 0.5,
      "where": [{"column": "gender_concept_id", "op": "in", "value": [8507, 12345]}]}, InvalidInput,
     "12345 is not a declared category of 'gender_concept_id'"),
    ({"kind": "count", "table": "person", "epsilon": 1e10}, InvalidInput, "at most 100"),
    ({"kind": "count", "table": "person", "epsilon": 0.5,
      "where": [{"column": "race", "op": "1=1; DROP", "value": "x"}]}, InvalidInput, "unknown operator"),
    ({"kind": "count", "table": "person", "epsilon": 0.5,
      "where": [{"column": "race\" OR 1=1 --", "op": "=", "value": "x"}]}, InvalidInput, "not a column"),
    ({"kind": "count", "table": "person", "epsilon": 0.5, "where": "1=1; DROP"}, InvalidInput, "list of filters"),
    ({"kind": "count", "table": "nosuch", "epsilon": 0.5}, InvalidInput, "unknown table"),
    ({"kind": "count", "table": "person", "epsilon": 5.0}, BudgetExhausted, "remain"),
]


@pytest.mark.parametrize("spec, error, words", BAD)
def test_refused_queries_are_not_charged(engine, extract, spec, error, words):
    permit = make_permit(epsilon=1.0)
    with pytest.raises(error, match=words):
        run_query(engine, extract, permit, "bob", spec, schema=SCHEMA)
    assert budget(engine, permit)[0]["epsilon_spent"] == 0
    assert ledger.list_charges(engine, permit.id) == []
    with engine.connect() as conn:
        outcomes = [r.outcome for r in conn.execute(sa.select(audit_events.c.outcome))]
    assert outcomes and set(outcomes) == {"refused"}


@pytest.mark.parametrize("status, today, words", [
    ("active", date(2025, 12, 31), "valid from 2026-01-01"),  # before valid_from
    ("active", date(2030, 1, 2), "valid from"),  # after valid_until, before the lifecycle expires it
    ("draft", date(2026, 6, 1), "draft"),
    ("suspended", date(2026, 6, 1), "suspended"),
    ("expired", date(2026, 6, 1), "expired"),
    ("revoked", date(2026, 6, 1), "revoked"),
])
def test_the_service_refuses_a_permit_outside_its_dates_or_not_active_before_charging(engine, extract, status,
                                                                                       today, words):
    permit = make_permit(epsilon=1.0, status=status)
    spec = {"kind": "count", "table": "person", "epsilon": 0.5}
    with pytest.raises(Refused, match=words):
        run_query(engine, extract, permit, "bob", spec, schema=SCHEMA, today=today)
    with pytest.raises(Refused, match=words):
        budget(engine, permit, "bob", today=today)
    assert ledger.list_charges(engine, permit.id) == []
    with engine.connect() as conn:
        events = conn.execute(sa.select(audit_events.c.action, audit_events.c.outcome)).all()
    assert [tuple(e) for e in events] == [("dp.query", "refused")]
    assert run_query(engine, extract, replace(permit, status="active"), "bob", spec, schema=SCHEMA,
                     today=date(2026, 6, 1))["charge_id"]


def test_values_of_the_wrong_type_for_the_extract_are_refused_before_charging(extract):
    # a descriptor that says nothing about the column's type: the extract's own type decides
    loose = {"measurement": {"person_id": "person_key", "measurement_date": "quasi_identifier",
                             "value_as_number": {"class": "sensitive", "bounds": [0, 200], "max_per_person": 5}}}
    q = parse_query({"kind": "count", "table": "measurement", "epsilon": 1.0,
                     "where": [{"column": "measurement_date", "op": ">", "value": 20200101}]}, loose)
    assert q.max_per_person == 5
    with pytest.raises(InvalidInput, match="DATE"):
        check_extract(q, extract)


def test_budget_exhaustion_returns_no_value_and_says_what_is_left(engine, extract):
    permit = make_permit(epsilon=1.0)
    spec = {"kind": "count", "table": "person", "epsilon": 0.6}
    run_query(engine, extract, permit, "bob", spec, schema=SCHEMA)
    with pytest.raises(BudgetExhausted) as err:
        run_query(engine, extract, permit, "alice", spec, schema=SCHEMA)
    assert err.value.remaining_epsilon == pytest.approx(0.4)
    run_query(engine, extract, permit, "alice", dict(spec, epsilon=0.4), schema=SCHEMA)
    assert budget(engine, permit, "alice")["epsilon_remaining"] == 0


def test_only_members_of_an_active_permit_may_query(engine, extract):
    spec = {"kind": "count", "table": "person", "epsilon": 0.1}
    with pytest.raises(Forbidden):
        run_query(engine, extract, make_permit(), "mallory", spec, schema=SCHEMA)
    with pytest.raises(Refused, match="suspended"):
        run_query(engine, extract, make_permit(status="suspended"), "bob", spec, schema=SCHEMA)
    auto = make_permit()
    auto = replace(auto, dp=replace(auto.dp, auto_release=True))
    assert run_query(engine, extract, auto, "bob", spec, schema=SCHEMA)["release"] == "auto"


def test_eunomia_through_the_control_plane(engine, settings, eunomia):
    from hub.permits.store import PermitStore
    from hub.provision.run import provision
    from tests.conftest import EXAMPLES

    store = PermitStore(engine)
    store.apply_file(EXAMPLES / "demo-gibleed.yaml", "op")
    result = provision(engine, settings, "DEMO-2026-001", "op")
    permit = store.get("DEMO-2026-001")
    a = run_query(engine, settings, permit, "bob", {"kind": "count", "table": "person",
                                                    "by": ["gender_concept_id"], "epsilon": 0.5})
    truth = duck("SELECT gender_concept_id, count(*) FROM read_parquet($p) GROUP BY 1 ORDER BY 1",
                 {"p": str(result.path / "person.parquet")})
    assert [r["gender_concept_id"] for r in a["rows"]] == [8507, 8532]
    for row, (_, n) in zip(a["rows"], truth):
        assert abs(row["count"] - n) < 60  # scale 2: |noise| >= 60 has probability ~1e-13
    c = run_query(engine, settings, permit, "alice", {"kind": "count", "table": "condition_occurrence",
                                                      "epsilon": 0.5})
    assert c["max_per_person"] == 70 and c["calibration"][0]["sensitivity"] == 70
    with pytest.raises(InvalidInput, match="not in this permit's extract"):
        run_query(engine, settings, permit, "alice", {"kind": "count", "table": "measurement", "epsilon": 0.5})
    # the guide's examples, on the generalised extract (dates to month, birth years banded)
    with pytest.raises(InvalidInput, match="no declared column 'gender_concept_id'"):
        run_query(engine, settings, permit, "alice", {"kind": "count", "table": "condition_occurrence",
                                                      "by": ["gender_concept_id"], "epsilon": 0.2})
    f = run_query(engine, settings, permit, "alice", {
        "kind": "count", "table": "condition_occurrence", "by": ["person.gender_concept_id"], "epsilon": 0.2,
        "where": [{"column": "condition_start_date", "op": ">=", "value": "2010-01-01"}]})
    assert [r["person.gender_concept_id"] for r in f["rows"]] == [8507, 8532]
    assert f["calibration"][0]["sensitivity"] == 70
    m = run_query(engine, settings, permit, "alice", {"kind": "mean", "table": "drug_exposure",
                                                      "column": "days_supply", "epsilon": 0.2})
    assert 0 <= m["value"] <= 365 and m["max_per_person"] == 100
    h = run_query(engine, settings, permit, "alice", {"kind": "histogram", "table": "person",
                                                      "column": "race_concept_id", "epsilon": 0.2})
    assert [r["race_concept_id"] for r in h["rows"]] == [0, 8515, 8516, 8527]
    assert budget(engine, permit, "alice")["epsilon_spent"] == pytest.approx(1.6)
