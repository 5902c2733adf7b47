"""The DP gateway's business layer: the only way a DP answer is produced.

`run_query`: check the member and the permit (`hub.permits.access.check_can_query`: a member
whose role may query an active permit within its dates) -> validate the spec -> check it
against the extract -> build and calibrate the OpenDP measurements -> charge the ledger
(atomically, before any value exists) -> compute the exact aggregate in DuckDB -> add noise
-> audit the release.
Everything before the charge is free and changes nothing stored (a refusal is audited);
a failure after the charge keeps the charge (see `ledger`). The HTTP layer calls this and
translates `hub.exceptions` into status codes, nothing more.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import sqlalchemy as sa

from hub import audit
from hub.exceptions import Failure, NotFound, Refused
from hub.permits.access import check_can_query

from egress.dp import ledger
from egress.dp.calibrate import make_plan
from egress.dp.compute import check_extract, connect, exact_aggregate
from egress.dp.release import make_answer
from egress.dp.spec import parse_query

log = logging.getLogger("spe.egress.dp")


def _extract_dir(engine: sa.Engine, settings_or_extract_dir, permit_id: str) -> Path:
    if isinstance(settings_or_extract_dir, (str, Path)):
        return Path(settings_or_extract_dir)
    from hub.provision.extracts import current_extract_dir

    path = current_extract_dir(settings_or_extract_dir, permit_id, engine)
    if path is None:
        raise NotFound(f"permit {permit_id} has no provisioned extract yet")
    return path


def _schema(engine: sa.Engine, permit, schema):
    if schema is not None:
        return schema
    from hub.datasets.registry import get_dataset

    return get_dataset(engine, permit.dataset).schema


def run_query(engine: sa.Engine, settings_or_extract_dir, permit, member: str, spec: dict, *,
              schema=None, memory_limit: str | None = None, threads: int | None = None,
              today: date | None = None) -> dict:
    """Answer one DP query for `member` of `permit` (a `hub.permits.model.Permit`).

    `settings_or_extract_dir`: `hub.settings.Settings` (the permit's current extract is used)
    or the extract directory itself. `schema`: the dataset descriptor in any shape
    `egress.dp.schema.make_dp_schema` accepts; default: the registered dataset's schema.
    `today`: the date the permit's validity is judged on (default: today).
    """
    role = permit.member_role(member)
    con = None
    try:
        try:
            check_can_query(permit, member, today)
            extract_dir = _extract_dir(engine, settings_or_extract_dir, permit.id)
            available = {t: tuple(cols) for t, cols in permit.tables.items()} if permit.tables else None
            q = parse_query(spec, _schema(engine, permit, schema), available=available)
            # one read-only DuckDB cursor serves the type check and, after the charge, the computation
            con = connect(extract_dir, memory_limit=memory_limit, threads=threads)
            types = check_extract(q, extract_dir, con=con)
            plan = make_plan(q)
        except Refused as err:
            with engine.begin() as conn:
                audit.record(conn, actor=member, role=role, action="dp.query", permit_id=permit.id,
                             outcome="refused", detail={"reason": str(err)[:500]})
            raise
        return _charge_compute_release(engine, permit, member, role, q, plan, extract_dir, con, types)
    finally:
        if con is not None:
            con.close()


def _charge_compute_release(engine, permit, member, role, q, plan, extract_dir, con, types) -> dict:
    charge = ledger.charge(engine, permit.id, member, plan.epsilon, plan.delta, q.query_hash, budget=permit.dp,
                           kind=q.kind, role=role, epsilon_units_override=plan.epsilon_units,
                           delta_units_override=plan.delta_units)
    try:
        exact = exact_aggregate(q, plan, extract_dir, con=con, types=types)
        answer = make_answer(plan, exact)
    except Exception as err:
        log.exception("DP query %s on permit %s failed after its charge", q.query_hash, permit.id)
        with engine.begin() as conn:
            audit.record(conn, actor=member, role=role, action="dp.query", permit_id=permit.id,
                         object_id=q.query_hash, outcome="failed",
                         detail={"charge_id": charge.id, "error": type(err).__name__})
        if isinstance(err, Failure):
            raise
        raise Failure("the DP query failed after its budget was charged; the charge stands") from err
    release = "auto" if permit.dp.auto_release else "review"
    with engine.begin() as conn:
        seq = audit.record(conn, actor=member, role=role, action="dp.query", permit_id=permit.id,
                           object_id=q.query_hash,
                           detail={"charge_id": charge.id, "kind": q.kind, "table": q.table, "column": q.column,
                                   "by": list(q.by), "filters": len(q.where), "epsilon": plan.epsilon,
                                   "delta": plan.delta, "mechanism": q.mechanism, "release": release})
    answer.update({
        "query": q.canonical(), "query_hash": q.query_hash, "charge_id": charge.id, "audit_seq": seq,
        "release": release,
        "budget": {"scope": charge.scope, "epsilon_remaining": charge.epsilon_remaining,
                   "delta_remaining": charge.delta_remaining},
    })
    return answer


def budget(engine: sa.Engine, permit, member: str | None = None, today: date | None = None):
    """Operators: every budget row of the permit (member=None); a researcher: their own, while
    she may query."""
    if member is not None:
        check_can_query(permit, member, today)
    return ledger.budget_view(engine, permit.id, member, budget=permit.dp)
