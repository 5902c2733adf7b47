""""Who used my data": the permits whose extracts held a person, from the per-extract person hashes
joined with the public transparency register (purpose, organisation, dates, status, released
outputs). Only public fields of the permit; the lookup is by the person's own hash only.
Must not import `egress`.
"""

from __future__ import annotations

import sqlalchemy as sa

from hub.citizens.membership import versions_holding
from hub.register import public_permits, released_outputs


def permits_that_used(engine: sa.Engine, id_hash: str) -> list[dict]:
    with engine.connect() as conn:
        held = versions_holding(conn, id_hash)
    versions: dict[str, list[int]] = {}
    for permit_id, version, _state in held:
        versions.setdefault(permit_id, []).append(version)
    if not versions:
        return []
    outputs = released_outputs(engine)
    out = []
    for p in public_permits(engine):
        if p["id"] in versions:
            out.append({**p, "extract_versions": versions[p["id"]],
                        "released_outputs": [o for o in outputs if o["permit_id"] == p["id"]]})
    return out
