"""The public transparency register (EHDS Art. 58): which permits exist and what was released.

Pure queries over the registry DB returning only public, non-personal fields: no member,
principal investigator, author or reviewer name ever leaves this module (a test checks it).
Signed audit checkpoints are published as anchors (`hub.audit.anchors`): hashes, no content.
Released outputs come from the extensions that report them through `hub.extensions` (egress
registers its releases there), as `ReleasedOutput`s that hold no name; hub never imports egress.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa

from hub import extensions
from hub.audit.anchors import published_anchors
from hub.permits.purposes import ALLOWED
from hub.permits.store import PermitStore

# A draft is not a granted permit; everything from activation on is public.
PUBLIC_STATUSES = ("active", "suspended", "expired", "revoked")
MAX_TITLE_CHARS = 120


def public_permits(engine: sa.Engine) -> list[dict]:
    out = []
    for p in PermitStore(engine).list():
        if p.status not in PUBLIC_STATUSES:
            continue
        out.append({
            "id": p.id,
            "title": p.title,
            "purpose_category": p.purpose,
            "purpose_legal_basis": ALLOWED.get(p.purpose, ""),
            "organisation": p.organisation,
            "datasets": [p.dataset],
            "valid_from": p.valid_from.isoformat(),
            "valid_until": p.valid_until.isoformat(),
            "status": p.status,
        })
    return sorted(out, key=lambda r: r["id"])


@dataclass(frozen=True)
class ReleasedOutput:
    """One released output as an extension reports it (`hub.extensions`: egress does). Only
    these fields exist, and only the first line of the description becomes the public title."""

    permit_id: str
    output_id: str
    description: str
    released_at: str  # ISO 8601
    kind: str


def public_output(out: ReleasedOutput) -> dict:
    text = (out.description or "").strip()
    title = text.splitlines()[0] if text else "(untitled)"
    if len(title) > MAX_TITLE_CHARS:
        title = title[: MAX_TITLE_CHARS - 1] + "…"
    return {"permit_id": out.permit_id, "output_id": out.output_id, "title": title,
            "date": str(out.released_at)[:10], "kind": out.kind}


def released_outputs(engine: sa.Engine) -> list[dict]:
    """(permit, title, date, kind) of every released output that a registered extension reports,
    newest first; [] when no extension reports any."""
    found = [out for ext in extensions.installed() if ext.released_outputs
             for out in ext.released_outputs(engine)]
    found.sort(key=lambda o: (str(o.released_at), o.output_id), reverse=True)
    return [public_output(o) for o in found]


def public_decisions(engine: sa.Engine) -> list[dict]:
    """Decided data access applications and data requests (EHDS Art. 58: decisions and their reasons):
    the application id, kind, decision and its reasons, purpose, organisation, datasets and the permits
    it made. Never the applicant's or the team's names."""
    from hub.frontoffice.tables import applications

    with engine.connect() as conn:
        rows = conn.execute(sa.select(applications.c.id, applications.c.kind, applications.c.state,
                                      applications.c.document_json, applications.c.facts_json)
                            .where(applications.c.state.in_(("granted", "partially_granted", "refused")))).all()
    out = []
    for r in rows:
        doc, facts = json.loads(r.document_json), json.loads(r.facts_json)
        decision = facts.get("decision") or {}
        out.append({
            "application_id": r.id,
            "kind": r.kind,
            "decision": r.state,
            "decided_on": facts.get("decided_on", ""),
            "reasons": decision.get("reasons", ""),
            "title": doc.get("title", ""),
            "purpose_category": doc.get("purpose", ""),
            "purpose_legal_basis": ALLOWED.get(doc.get("purpose", ""), ""),
            "organisation": doc.get("organisation", ""),
            "datasets": sorted(decision.get("granted") or [d["dataset"] for d in doc.get("datasets", [])]),
            "permits": facts.get("permits", []),
        })
    return sorted(out, key=lambda d: (d["decided_on"], d["application_id"]), reverse=True)


def register_document(engine: sa.Engine, now: datetime | None = None) -> dict:
    return {
        "generated_at": (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "permits": public_permits(engine),
        "decisions": public_decisions(engine),
        "released_outputs": released_outputs(engine),
        # signed audit checkpoints: save a copy to prove a later rewrite (hub.audit.anchors)
        "audit_anchors": published_anchors(engine),
    }
