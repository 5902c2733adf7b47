"""The privacy-budget ledger: budgets per permit (or per member), charged atomically before
any DP value is computed.

Invariant: for every budget row, spent <= total, in exact integer units (1e-12 epsilon,
1e-18 delta; see `units`), so no float drift ever lets spending creep past
the budget. A charge is ONE conditional UPDATE
    UPDATE dp_budgets SET spent = spent + :e WHERE key = :k AND spent + :e <= total
whose row count says accepted (1) or refused (0). The database serialises concurrent
updates of the row (SQLite: BEGIN IMMEDIATE; PostgreSQL: the row lock of UPDATE), so
concurrent queries can never both pass the check on a stale `spent`: no lost update, no
overspend. (When the budget row exists, that UPDATE also writes the permit's current totals
and returns the row, so an accepted charge is one statement plus its audit event.) The charge row and its audit event commit in the same transaction; a refusal
commits only its audit event and raises `BudgetExhausted` with what is left.

If the computation fails after the charge, the charge stays: conservative, because a value
may already have been computed (and refunds would let a caller probe for free).

The budget totals come from the permit (`DpBudget`) on every charge, so a new permit version
changes the budget at once; what was spent stays spent.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from hub import audit
from hub.audit.store import utc_now_iso
from hub.exceptions import InvalidInput, NotFound

from egress.tables import metadata
from egress.dp.units import DELTA_UNITS_PER_1, EPSILON_UNITS_PER_1, delta_units, epsilon_units, units_to_float
from egress.dp.exceptions import BudgetExhausted

SHARED = "*"  # scope of a permit-wide budget (permit.dp.per_member false)

dp_budgets = sa.Table(
    "dp_budgets",
    metadata,
    sa.Column("permit_id", sa.String(64), primary_key=True),
    sa.Column("scope", sa.String(200), primary_key=True),  # member username, or "*" for the whole permit
    sa.Column("epsilon_total_units", sa.BigInteger, nullable=False),
    sa.Column("epsilon_spent_units", sa.BigInteger, nullable=False),
    sa.Column("delta_total_units", sa.BigInteger, nullable=False),
    sa.Column("delta_spent_units", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
)

dp_charges = sa.Table(
    "dp_charges",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("permit_id", sa.String(64), nullable=False),
    sa.Column("scope", sa.String(200), nullable=False),
    sa.Column("member", sa.String(200), nullable=False),
    sa.Column("epsilon_units", sa.BigInteger, nullable=False),
    sa.Column("delta_units", sa.BigInteger, nullable=False),
    sa.Column("query_hash", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(20)),
    sa.Column("ts", sa.String(32), nullable=False),
    sa.Column("audit_seq", sa.BigInteger),
    sa.Index("ix_dp_charges_permit", "permit_id", "scope"),
)


@dataclass(frozen=True)
class Charge:
    id: int
    permit_id: str
    scope: str
    member: str
    epsilon: float
    delta: float
    epsilon_remaining: float
    delta_remaining: float
    audit_seq: int


def _budget_key(permit_id: str, scope: str):
    return sa.and_(dp_budgets.c.permit_id == permit_id, dp_budgets.c.scope == scope)


def _view(row: dict) -> dict:
    e_left = max(0, row["epsilon_total_units"] - row["epsilon_spent_units"])
    d_left = max(0, row["delta_total_units"] - row["delta_spent_units"])
    return {
        "permit_id": row["permit_id"],
        "scope": row["scope"],
        "epsilon_total": units_to_float(row["epsilon_total_units"], EPSILON_UNITS_PER_1),
        "epsilon_spent": units_to_float(row["epsilon_spent_units"], EPSILON_UNITS_PER_1),
        "epsilon_remaining": units_to_float(e_left, EPSILON_UNITS_PER_1),
        "delta_total": units_to_float(row["delta_total_units"], DELTA_UNITS_PER_1),
        "delta_spent": units_to_float(row["delta_spent_units"], DELTA_UNITS_PER_1),
        "delta_remaining": units_to_float(d_left, DELTA_UNITS_PER_1),
    }


def _scope_for(budget, member: str) -> str:
    return member if budget is not None and budget.per_member else SHARED


def _ensure_budget(conn, permit_id: str, scope: str, budget) -> None:
    totals = {"epsilon_total_units": epsilon_units(budget.epsilon), "delta_total_units": delta_units(budget.delta)}
    res = conn.execute(dp_budgets.update().where(_budget_key(permit_id, scope)).values(**totals))
    if res.rowcount == 0:
        conn.execute(dp_budgets.insert().values(permit_id=permit_id, scope=scope, epsilon_spent_units=0,
                                                delta_spent_units=0, updated_at=utc_now_iso(), **totals))


def _existing_scope(conn, permit_id: str, member: str) -> str:
    for scope in (member, SHARED):
        if conn.execute(sa.select(dp_budgets.c.scope).where(_budget_key(permit_id, scope))).first():
            return scope
    raise NotFound(f"permit {permit_id} has no DP budget")


def charge(engine: sa.Engine, permit_id: str, member: str, epsilon: float, delta: float, query_hash: str, *,
           budget=None, kind: str | None = None, role: str | None = None,
           epsilon_units_override: int | None = None, delta_units_override: int | None = None) -> Charge:
    """Charge (epsilon, delta) to the budget of `permit_id` (the member's own if the permit's
    budget is per member) or raise `BudgetExhausted`. `budget` is the permit's `DpBudget`;
    without it the budget row must already exist."""
    e_units = epsilon_units_override if epsilon_units_override is not None else epsilon_units(epsilon)
    d_units = delta_units_override if delta_units_override is not None else delta_units(delta)
    if e_units <= 0 or d_units < 0:
        raise InvalidInput("a charge needs epsilon > 0 and delta >= 0", field="epsilon")
    for attempt in range(3):
        try:
            with engine.begin() as conn:
                b = dp_budgets.c
                row = None
                if budget is not None:
                    scope = _scope_for(budget, member)
                    # the usual case in one statement: the row exists and the charge fits the
                    # permit's current totals, which the same UPDATE writes (what
                    # `_ensure_budget` would do first) and returns with the new spent amounts
                    e_total, d_total = epsilon_units(budget.epsilon), delta_units(budget.delta)
                    row = conn.execute(
                        dp_budgets.update()
                        .where(_budget_key(permit_id, scope),
                               b.epsilon_spent_units + e_units <= e_total,
                               b.delta_spent_units + d_units <= d_total)
                        .values(epsilon_spent_units=b.epsilon_spent_units + e_units,
                                delta_spent_units=b.delta_spent_units + d_units, updated_at=utc_now_iso(),
                                epsilon_total_units=e_total, delta_total_units=d_total)
                        .returning(*dp_budgets.c)).first()
                if row is not None:
                    accepted, view = True, _view(row._mapping)
                else:  # a first charge, a refusal, or no budget at hand: the full path
                    if budget is not None:
                        _ensure_budget(conn, permit_id, scope, budget)
                    else:
                        scope = _existing_scope(conn, permit_id, member)
                    res = conn.execute(
                        dp_budgets.update()
                        .where(_budget_key(permit_id, scope),
                               b.epsilon_spent_units + e_units <= b.epsilon_total_units,
                               b.delta_spent_units + d_units <= b.delta_total_units)
                        .values(epsilon_spent_units=b.epsilon_spent_units + e_units,
                                delta_spent_units=b.delta_spent_units + d_units, updated_at=utc_now_iso()))
                    accepted = res.rowcount == 1
                    view = _view(conn.execute(sa.select(dp_budgets).where(_budget_key(permit_id, scope))).one()._mapping)
                detail = {"epsilon": units_to_float(e_units, EPSILON_UNITS_PER_1),
                          "delta": units_to_float(d_units, DELTA_UNITS_PER_1), "scope": scope, "kind": kind,
                          "epsilon_remaining": view["epsilon_remaining"], "delta_remaining": view["delta_remaining"]}
                seq = audit.record(conn, actor=member, role=role, action="dp.charge", permit_id=permit_id,
                                   object_id=query_hash, outcome="ok" if accepted else "refused", detail=detail)
                charge_id = 0
                if accepted:
                    charge_id = conn.execute(dp_charges.insert().values(
                        permit_id=permit_id, scope=scope, member=member, epsilon_units=e_units, delta_units=d_units,
                        query_hash=query_hash, kind=kind, ts=utc_now_iso(), audit_seq=seq)).inserted_primary_key[0]
            break
        except sa.exc.IntegrityError:
            # two first charges of a new budget raced on the INSERT (PostgreSQL); the loser retries
            if attempt == 2:
                raise
    if not accepted:
        raise BudgetExhausted(remaining_epsilon=view["epsilon_remaining"], remaining_delta=view["delta_remaining"],
                              epsilon=detail["epsilon"], delta=detail["delta"],
                              scope=f"permit {permit_id}" + (f" member {scope}" if scope != SHARED else ""))
    return Charge(charge_id, permit_id, scope, member, detail["epsilon"], detail["delta"],
                  view["epsilon_remaining"], view["delta_remaining"], seq)


def budget_view(engine: sa.Engine, permit_id: str, member: str | None = None, *, budget=None):
    """Operators (member=None): every budget row of the permit. A researcher: their own scope
    (their per-member budget, or the permit's shared one). Before the first charge the view
    shows the permit's budget unspent."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(dp_budgets).where(dp_budgets.c.permit_id == permit_id)
                            .order_by(dp_budgets.c.scope)).all()
    if budget is not None:  # the permit is the source of truth for the totals
        e_total, d_total = epsilon_units(budget.epsilon), delta_units(budget.delta)
        rows = [dict(r._mapping, epsilon_total_units=e_total, delta_total_units=d_total) for r in rows]
    else:
        rows = [dict(r._mapping) for r in rows]
    views = {r["scope"]: _view(r) for r in rows}
    if member is None:
        if not views and budget is not None:
            return [_fresh(permit_id, SHARED if not budget.per_member else "(none yet)", budget)]
        return list(views.values())
    scope = _scope_for(budget, member) if budget is not None else (member if member in views else SHARED)
    if scope in views:
        return views[scope]
    if budget is None:
        raise NotFound(f"permit {permit_id} has no DP budget")
    return _fresh(permit_id, scope, budget)


def _fresh(permit_id: str, scope: str, budget) -> dict:
    e, d = epsilon_units(budget.epsilon), delta_units(budget.delta)
    return {"permit_id": permit_id, "scope": scope,
            "epsilon_total": units_to_float(e, EPSILON_UNITS_PER_1), "epsilon_spent": 0.0,
            "epsilon_remaining": units_to_float(e, EPSILON_UNITS_PER_1),
            "delta_total": units_to_float(d, DELTA_UNITS_PER_1), "delta_spent": 0.0,
            "delta_remaining": units_to_float(d, DELTA_UNITS_PER_1)}


def list_charges(engine: sa.Engine, permit_id: str, member: str | None = None) -> list[dict]:
    q = sa.select(dp_charges).where(dp_charges.c.permit_id == permit_id).order_by(dp_charges.c.id)
    if member is not None:
        q = q.where(dp_charges.c.member == member)
    with engine.connect() as conn:
        rows = conn.execute(q).mappings().all()
    return [{"id": r["id"], "member": r["member"], "scope": r["scope"], "kind": r["kind"], "ts": r["ts"],
             "query_hash": r["query_hash"], "epsilon": units_to_float(r["epsilon_units"], EPSILON_UNITS_PER_1),
             "delta": units_to_float(r["delta_units"], DELTA_UNITS_PER_1)} for r in rows]
