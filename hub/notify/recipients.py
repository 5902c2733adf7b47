"""Who a notice goes to: resolve recipient specs (hub.notify.rules) to user names, and the
address book (`notify_people`) that gives each a mail address, groups and an opt-out.

The registry is the only source: the author of a request is the actor of its creating audit
event, a permit's members come from the permit, an application's applicant and assessor from
the front office's table, group members from the address book (kept current at every login
and by `spe notify address set`). Must not import `egress`.
"""

from __future__ import annotations

import json
import re

import sqlalchemy as sa

from hub.audit.store import utc_now_iso
from hub.audit.tables import audit_events
from hub.exceptions import InvalidInput
from hub.frontoffice.tables import applications
from hub.notify import rules
from hub.notify.tables import notify_people
from hub.registry_tables import permits as permits_table

ADDRESS_RE = re.compile(r"[^@\s<>,;\"]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,63}|[^@\s<>,;\"]{1,64}@localhost")
MAX_GROUPS = 20


def check_address(address: str) -> str:
    """A single plain mail address (no display name, no list), or InvalidInput."""
    address = (address or "").strip()
    if not ADDRESS_RE.fullmatch(address):
        raise InvalidInput(f"{address!r} is not a plain mail address such as alice@example.org", field="address")
    return address


def _author(conn, create_action: str, object_id: str | None) -> list[str]:
    if not object_id:
        return []
    row = conn.execute(sa.select(audit_events.c.actor).where(
        audit_events.c.action == create_action, audit_events.c.object_id == object_id,
        audit_events.c.outcome == "ok").order_by(audit_events.c.seq).limit(1)).first()
    return [row[0]] if row else []


def permit_document(conn, permit_id: str | None) -> dict:
    if not permit_id:
        return {}
    row = conn.execute(sa.select(permits_table.c.document_json).where(permits_table.c.id == permit_id)).first()
    return json.loads(row[0]) if row else {}


def _permit_members(conn, permit_id: str | None) -> set[str]:
    return {m.get("username") for m in permit_document(conn, permit_id).get("members", []) if m.get("username")}


def event_context(conn, event: dict) -> dict:
    """What a rule needs beyond the event: a DP charge's budget total (from the permit)."""
    if event["action"] == "dp.charge":
        dp = permit_document(conn, event.get("permit_id")).get("dp") or {}
        return {"epsilon_total": dp.get("epsilon", 1.0)}
    return {}


def group_members(conn, group: str) -> list[str]:
    rows = conn.execute(sa.select(notify_people.c.username, notify_people.c.groups_json)).all()
    return sorted(name for name, groups in rows if group in json.loads(groups or "[]"))


def _application(conn, app_id: str | None) -> tuple[str | None, str | None]:
    if not app_id:
        return None, None
    row = conn.execute(sa.select(applications.c.applicant, applications.c.facts_json)
                       .where(applications.c.id == app_id)).first()
    if row is None:
        return None, None
    return row[0], json.loads(row[1] or "{}").get("assessor")


def resolve(conn, notice: rules.Notice, event: dict) -> list[str]:
    """User names the notice goes to, sorted, without the person who acted."""
    out: set[str] = set()
    for spec in notice.recipients:
        if spec.kind == rules.AUTHOR:
            out.update(_author(conn, spec.arg, event.get("object_id")))
        elif spec.kind == rules.CHECKERS:  # independent checkers only (never a member of the permit)
            members = _permit_members(conn, event.get("permit_id"))
            out.update(u for u in group_members(conn, "output-checkers") if u not in members)
        elif spec.kind == rules.APPLICANT:
            out.update(x for x in [_application(conn, event.get("object_id"))[0]] if x)
        elif spec.kind == rules.ASSESSOR:
            assessor = _application(conn, event.get("object_id"))[1]
            out.update([assessor] if assessor else group_members(conn, "hdab-assessors"))
        elif spec.kind == rules.GROUP:
            out.update(group_members(conn, spec.arg))
        elif spec.kind == rules.USER:
            out.add(spec.arg)
        elif spec.kind == rules.PERMIT_MEMBERS:
            out.update(_permit_members(conn, event.get("permit_id")))
    return sorted(out - set(notice.exclude))


def person(conn, username: str) -> dict | None:
    row = conn.execute(sa.select(notify_people).where(notify_people.c.username == username)).mappings().first()
    return dict(row) if row else None


def remember_login(conn, username: str, groups: list[str], address: str | None) -> None:
    """At a login: the person's current groups and, when the IdP sent a valid one, their address."""
    groups = sorted({str(g)[:100] for g in groups})[:MAX_GROUPS]
    try:
        address = check_address(address) if address else None
    except InvalidInput:
        address = None  # a malformed claim keeps the address the operator set
    current = person(conn, username)
    values = {"groups_json": json.dumps(groups), "updated_at": utc_now_iso()}
    if address:
        values["address"] = address
    if current is None:
        conn.execute(notify_people.insert().values(username=username, opt_out=False, digest=False, **values))
    else:
        conn.execute(notify_people.update().where(notify_people.c.username == username).values(**values))


def set_person(conn, username: str, *, address: str | None = None, groups: list[str] | None = None,
               opt_out: bool | None = None, digest: bool | None = None) -> dict:
    """The operator's change to one entry (only the given fields); returns the entry."""
    values: dict = {"updated_at": utc_now_iso()}
    if address is not None:
        values["address"] = check_address(address)
    if groups is not None:
        values["groups_json"] = json.dumps(sorted(set(groups))[:MAX_GROUPS])
    if opt_out is not None:
        values["opt_out"] = opt_out
    if digest is not None:
        values["digest"] = digest
    if person(conn, username) is None:
        values.setdefault("groups_json", "[]")
        values.setdefault("opt_out", False)
        values.setdefault("digest", False)
        conn.execute(notify_people.insert().values(username=username, **values))
    else:
        conn.execute(notify_people.update().where(notify_people.c.username == username).values(**values))
    return person(conn, username)


def login_address(authentication: dict) -> str | None:
    """The e-mail claim of an OAuth login (oauthenticator keeps the userinfo in auth_state)."""
    state = authentication.get("auth_state") or {}
    user = state.get("oauth_user") if isinstance(state, dict) else None
    value = user.get("email") if isinstance(user, dict) else None
    return value if isinstance(value, str) else None
