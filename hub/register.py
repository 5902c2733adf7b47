"""The public transparency register (EHDS Art. 58): which permits exist and what was released.

Pure queries over the registry DB returning only public, non-personal fields: no member,
principal investigator, author or reviewer name ever leaves this module (a test checks it).
Released outputs come from the egress service's tables when they exist; they are read by
reflection so that `hub` never imports `egress`.
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

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


def _reflect(engine: sa.Engine, names: tuple[str, ...]) -> dict[str, sa.Table] | None:
    inspector = sa.inspect(engine)
    if not all(inspector.has_table(n) for n in names):
        return None
    md = sa.MetaData()
    return {n: sa.Table(n, md, autoload_with=engine) for n in names}


def released_outputs(engine: sa.Engine) -> list[dict]:
    """(permit, title, date, kind) of every released output; [] until the egress tables exist."""
    tables = _reflect(engine, ("egress_releases", "egress_request_versions"))
    if tables is None:
        return []
    rel, ver = tables["egress_releases"], tables["egress_request_versions"]
    needed = {"request_id", "version", "permit_id", "released_at"} <= set(rel.c.keys()) and \
        {"request_id", "version", "kind", "description"} <= set(ver.c.keys())
    if not needed:  # an incompatible schema: show nothing rather than guess (fail closed)
        return []
    q = (sa.select(rel.c.request_id, rel.c.permit_id, rel.c.released_at, ver.c.kind, ver.c.description)
         .join(ver, sa.and_(ver.c.request_id == rel.c.request_id, ver.c.version == rel.c.version))
         .order_by(rel.c.released_at.desc()))
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    out = []
    for r in rows:
        title = (r.description or "").strip().splitlines()[0] if (r.description or "").strip() else "(untitled)"
        if len(title) > MAX_TITLE_CHARS:
            title = title[: MAX_TITLE_CHARS - 1] + "…"
        out.append({"permit_id": r.permit_id, "output_id": r.request_id, "title": title,
                    "date": str(r.released_at)[:10], "kind": r.kind})
    return out


def register_document(engine: sa.Engine, now: datetime | None = None) -> dict:
    return {
        "generated_at": (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "permits": public_permits(engine),
        "released_outputs": released_outputs(engine),
    }
