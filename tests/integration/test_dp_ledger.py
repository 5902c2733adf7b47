"""The budget ledger on a real SQLite registry file: decisions equal OpenDP's privacy filter,
the ledger survives a restart, concurrent charges (threads and processes) never overspend,
and every charge or refusal is an audit event in the hash chain."""

from __future__ import annotations

import multiprocessing as mp
import random
import threading

import opendp.prelude as dp
import pytest
import sqlalchemy as sa

from egress.dp import ledger
from egress.dp.exceptions import BudgetExhausted
from hub import audit
from hub.audit.tables import audit_events
from hub.db import dispose_engines, make_engine
from hub.exceptions import Refused
from hub.permits.model import DpBudget

dp.enable_features("contrib")

PERMIT = "DP-LEDGER-1"


@pytest.fixture
def db_url(tmp_path):
    yield f"sqlite:///{tmp_path / 'registry.db'}"
    dispose_engines()


def laplace_query(epsilon: float):
    """A real OpenDP measurement costing exactly `epsilon` at d_in = 1 (dyadic epsilons only)."""
    return dp.m.make_laplace(dp.atom_domain(T="i64"), dp.absolute_distance(T="i64"), scale=1.0 / epsilon)


def opendp_filter_accepts(total: float, accepted: list, new) -> bool:
    """OpenDP's decision for `new` after the accepted history. OpenDP's filter halts for good at
    its first refusal; the ledger lets a later, smaller query use what is left. So each decision
    replays the accepted history into a fresh filter: the same decision a filter makes for the
    sequence of queries that were actually run."""
    odometer = dp.c.make_fully_adaptive_composition(dp.atom_domain(T="i64"), dp.absolute_distance(T="i64"),
                                                    dp.max_divergence())
    queryable = dp.c.make_privacy_filter(odometer, d_in=1, d_out=total)(0)
    for meas in accepted:
        queryable(meas)  # must not raise: the history was accepted before
    try:
        queryable(new)
        return True
    except dp.OpenDPException:
        return False


def test_ledger_decisions_equal_opendp_privacy_filter(db_url):
    engine = make_engine(db_url)
    rng = random.Random(20261123)
    choices = [1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0]
    refusals = acceptances = 0
    for seq in range(12):
        total = rng.choice([0.75, 1.0, 1.5, 2.0])
        permit_id = f"{PERMIT}-{seq}"
        budget = DpBudget(epsilon=total, delta=0.0)
        accepted = []
        for i in range(14):
            meas = laplace_query(rng.choice(choices))
            cost = meas.map(1)
            expected = opendp_filter_accepts(total, accepted, meas)
            try:
                ledger.charge(engine, permit_id, "alice", cost, 0.0, f"q{seq}-{i}", budget=budget)
                got = True
            except BudgetExhausted:
                got = False
            assert got == expected, (seq, i, total, cost, [m.map(1) for m in accepted])
            if got:
                accepted.append(meas)
                acceptances += 1
            else:
                refusals += 1
        spent = ledger.budget_view(engine, permit_id, "alice", budget=budget)["epsilon_spent"]
        assert spent == sum(m.map(1) for m in accepted) <= total
    assert refusals > 10 and acceptances > 30  # the sequences exercise both outcomes


def test_refusal_says_what_is_left_and_changes_no_budget(db_url):
    engine = make_engine(db_url)
    budget = DpBudget(epsilon=1.0, delta=1e-6)
    ledger.charge(engine, PERMIT, "alice", 0.7, 0.0, "q1", budget=budget)
    before = ledger.budget_view(engine, PERMIT, budget=budget)
    with pytest.raises(BudgetExhausted) as err:
        ledger.charge(engine, PERMIT, "alice", 0.5, 0.0, "q2", budget=budget)
    assert isinstance(err.value, Refused) and err.value.http_status == 409
    assert err.value.remaining_epsilon == pytest.approx(0.3) and "0.3" in str(err.value)
    assert ledger.budget_view(engine, PERMIT, budget=budget) == before
    with pytest.raises(BudgetExhausted):
        ledger.charge(engine, PERMIT, "alice", 0.1, 2e-6, "q3", budget=budget)  # delta over budget
    ledger.charge(engine, PERMIT, "alice", 0.3, 1e-6, "q4", budget=budget)  # exactly what is left
    view = ledger.budget_view(engine, PERMIT, "alice", budget=budget)
    assert view["epsilon_remaining"] == 0 and view["delta_remaining"] == 0
    with engine.connect() as conn:
        events = [(e["action"], e["outcome"], e["object_id"]) for e in audit.iter_events(conn)
                  if e["action"] == "dp.charge"]
    assert events == [("dp.charge", "ok", "q1"), ("dp.charge", "refused", "q2"), ("dp.charge", "refused", "q3"),
                      ("dp.charge", "ok", "q4")]
    assert [c["query_hash"] for c in ledger.list_charges(engine, PERMIT)] == ["q1", "q4"]
    assert audit.verify(engine).ok


def test_ten_tenths_fit_a_budget_of_one(db_url):
    engine = make_engine(db_url)
    budget = DpBudget(epsilon=1.0, delta=0.0)
    for i in range(10):
        ledger.charge(engine, PERMIT, "alice", 0.1, 0.0, f"q{i}", budget=budget)
    with pytest.raises(BudgetExhausted):
        ledger.charge(engine, PERMIT, "alice", 1e-12, 0.0, "q10", budget=budget)


def test_ledger_survives_a_restart(db_url):
    budget = DpBudget(epsilon=1.0, delta=0.0)
    engine = make_engine(db_url)
    ledger.charge(engine, PERMIT, "alice", 0.6, 0.0, "before-restart", budget=budget)
    dispose_engines()  # the service stops; a new process opens the same file
    engine = make_engine(db_url)
    assert ledger.budget_view(engine, PERMIT, "alice", budget=budget)["epsilon_spent"] == pytest.approx(0.6)
    with pytest.raises(BudgetExhausted):
        ledger.charge(engine, PERMIT, "alice", 0.6, 0.0, "after-restart", budget=budget)
    # the row exists now, so a charge without the permit's budget at hand still works
    ledger.charge(engine, PERMIT, "alice", 0.4, 0.0, "rest")
    assert ledger.budget_view(engine, PERMIT)[0]["epsilon_remaining"] == 0


def test_per_member_budgets_are_separate_and_operators_see_all(db_url):
    engine = make_engine(db_url)
    budget = DpBudget(epsilon=1.0, delta=0.0, per_member=True)
    ledger.charge(engine, PERMIT, "alice", 1.0, 0.0, "a1", budget=budget)
    with pytest.raises(BudgetExhausted, match="member alice"):
        ledger.charge(engine, PERMIT, "alice", 0.1, 0.0, "a2", budget=budget)
    ledger.charge(engine, PERMIT, "bob", 0.25, 0.0, "b1", budget=budget)
    assert ledger.budget_view(engine, PERMIT, "bob", budget=budget)["epsilon_remaining"] == 0.75
    assert ledger.budget_view(engine, PERMIT, "carol", budget=budget)["epsilon_spent"] == 0  # before any charge
    operator = ledger.budget_view(engine, PERMIT)
    assert [(v["scope"], v["epsilon_spent"]) for v in operator] == [("alice", 1.0), ("bob", 0.25)]


def test_a_new_permit_version_changes_the_total_not_the_spending(db_url):
    engine = make_engine(db_url)
    ledger.charge(engine, PERMIT, "alice", 1.0, 0.0, "q1", budget=DpBudget(epsilon=1.0, delta=0.0))
    with pytest.raises(BudgetExhausted):
        ledger.charge(engine, PERMIT, "alice", 0.5, 0.0, "q2", budget=DpBudget(epsilon=1.0, delta=0.0))
    ledger.charge(engine, PERMIT, "alice", 0.5, 0.0, "q3", budget=DpBudget(epsilon=2.0, delta=0.0))
    view = ledger.budget_view(engine, PERMIT, budget=DpBudget(epsilon=1.2, delta=0.0))[0]
    assert view["epsilon_spent"] == 1.5 and view["epsilon_remaining"] == 0


def test_an_accepted_charge_writes_the_permits_current_totals(db_url):
    # an accepted charge on an existing row is one UPDATE that also writes the totals: a
    # larger budget takes effect in that same charge, a smaller one refuses and is written too
    engine = make_engine(db_url)
    ledger.charge(engine, PERMIT, "alice", 0.5, 0.0, "q1", budget=DpBudget(epsilon=1.0, delta=1e-6))
    c = ledger.charge(engine, PERMIT, "alice", 0.7, 0.0, "q2", budget=DpBudget(epsilon=2.0, delta=2e-6))
    assert c.epsilon_remaining == pytest.approx(0.8) and c.delta_remaining == pytest.approx(2e-6)
    with engine.connect() as conn:
        row = conn.execute(sa.select(ledger.dp_budgets)).one()._mapping
    assert row["epsilon_total_units"] == 2 * 10**12 and row["delta_total_units"] == 2 * 10**12
    assert row["epsilon_spent_units"] == 12 * 10**11
    with pytest.raises(BudgetExhausted):
        ledger.charge(engine, PERMIT, "alice", 0.1, 0.0, "q3", budget=DpBudget(epsilon=1.0, delta=1e-6))
    with engine.connect() as conn:
        row = conn.execute(sa.select(ledger.dp_budgets)).one()._mapping
    assert row["epsilon_total_units"] == 10**12 and row["epsilon_spent_units"] == 12 * 10**11
    assert [c["query_hash"] for c in ledger.list_charges(engine, PERMIT)] == ["q1", "q2"]


def test_twenty_concurrent_threads_accept_exactly_two(db_url):
    engine = make_engine(db_url)
    budget = DpBudget(epsilon=1.0, delta=0.0)
    start = threading.Barrier(20)
    outcomes = []
    lock = threading.Lock()

    def worker(i):
        start.wait()
        try:
            ledger.charge(engine, PERMIT, f"user{i}", 0.5, 0.0, f"t{i}", budget=budget)
            result = "ok"
        except BudgetExhausted:
            result = "refused"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 2 and outcomes.count("refused") == 18
    check_ledger_after_race(engine)


def check_ledger_after_race(engine):
    view = ledger.budget_view(engine, PERMIT)[0]
    assert view["epsilon_spent"] == 1.0 and view["epsilon_remaining"] == 0
    assert len(ledger.list_charges(engine, PERMIT)) == 2
    with engine.connect() as conn:
        outcomes = [r.outcome for r in conn.execute(sa.select(audit_events.c.outcome)
                                                    .where(audit_events.c.action == "dp.charge"))]
    assert sorted(outcomes) == ["ok"] * 2 + ["refused"] * 18
    assert audit.verify(engine).ok


def _process_worker(db_url, i, go, results):
    from egress.dp import ledger as ledger_mod
    from egress.dp.exceptions import BudgetExhausted as Exhausted
    from hub.db import make_engine as make
    from hub.permits.model import DpBudget as Budget

    engine = make(db_url)
    go.wait(60)
    try:
        ledger_mod.charge(engine, PERMIT, f"user{i}", 0.5, 0.0, f"p{i}", budget=Budget(epsilon=1.0, delta=0.0))
        results.put("ok")
    except Exhausted:
        results.put("refused")
    except Exception as err:  # reported to the test, which fails on it
        results.put(f"error: {err!r}")


def test_twenty_concurrent_processes_accept_exactly_two(db_url):
    make_engine(db_url)  # creates the tables once, like the running service would
    dispose_engines()  # no pooled connection may cross the fork
    # fork: 20 separate processes (own engines, own SQLite connections) without re-importing
    ctx = mp.get_context("fork")
    go = ctx.Event()
    results = ctx.Queue()
    procs = [ctx.Process(target=_process_worker, args=(db_url, i, go, results)) for i in range(20)]
    for p in procs:
        p.start()
    go.set()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert outcomes.count("ok") == 2 and outcomes.count("refused") == 18, outcomes
    check_ledger_after_race(make_engine(db_url))


def test_a_charge_needs_a_budget(db_url):
    engine = make_engine(db_url)
    from hub.exceptions import NotFound

    with pytest.raises(NotFound):
        ledger.charge(engine, "NO-SUCH-PERMIT", "alice", 0.1, 0.0, "q")
