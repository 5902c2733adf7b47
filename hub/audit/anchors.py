"""Anchors: signed checkpoint hashes published in the public transparency register.

A checkpoint signed with the operator's own key proves nothing against the operator: whoever
holds the key can rewrite the whole chain and sign it again. Each checkpoint's (seq, hash) is
therefore published in the register (`hub.register`, HTML and JSON), where anyone can save a
copy; a later rewrite of any event up to an anchored seq changes that event's hash and no
longer matches the saved copy. `spe audit verify --against-register FILE` and
`spe audit verify-pack PACK --against-register FILE` check against saved snapshots.

`published_anchors` reads the checkpoints table; `parse_snapshot` reads a saved register (its
JSON, or its HTML page whose anchor rows carry `data-anchor-seq` / `data-anchor-hash`); the
comparison itself is done by the verifiers, which treat anchors like checkpoints.
"""

from __future__ import annotations

import json
import re

import sqlalchemy as sa

from hub.audit.tables import audit_checkpoints
from hub.exceptions import InvalidInput

ANCHOR_KEYS = ("seq", "hash", "ts", "kind", "key_id", "signature")
_HASH = re.compile(r"^[0-9a-f]{64}$")
_HTML_ANCHOR = re.compile(r'data-anchor-seq="(\d+)"\s+data-anchor-hash="([0-9a-f]{64})"')


def published_anchors(engine: sa.Engine) -> list[dict]:
    """Every signed checkpoint, oldest first, with the public fields an outsider needs to check it."""
    q = sa.select(*[audit_checkpoints.c[k] for k in ANCHOR_KEYS]).order_by(audit_checkpoints.c.seq,
                                                                          audit_checkpoints.c.id)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def parse_snapshot(text: str, *, name: str = "register") -> list[tuple[int, str]]:
    """(seq, hash) pairs from a saved register snapshot (JSON or HTML); InvalidInput if it holds none."""
    stripped = text.strip()
    pairs: list[tuple[int, str]] = []
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
            for a in doc.get("audit_anchors") or []:
                seq, hash_ = int(a["seq"]), str(a["hash"])
                if not _HASH.match(hash_):
                    raise ValueError(f"anchor at {seq} has no SHA-256 hash")
                pairs.append((seq, hash_))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise InvalidInput(f"{name}: not a register snapshot with audit anchors ({err})",
                               field="against-register") from None
    else:
        pairs = [(int(s), h) for s, h in _HTML_ANCHOR.findall(stripped)]
    if not pairs:
        raise InvalidInput(f"{name}: the register snapshot publishes no audit anchors", field="against-register")
    return pairs


def merge_anchors(snapshots: list[list[tuple[int, str]]]) -> dict[int, str]:
    """One seq -> hash map; two snapshots that publish different hashes for one seq already
    prove a rewrite (InvalidInput names it)."""
    out: dict[int, str] = {}
    for pairs in snapshots:
        for seq, hash_ in pairs:
            if out.setdefault(seq, hash_) != hash_:
                raise InvalidInput(f"the register snapshots disagree on event {seq}: the register itself was "
                                   f"rewritten between them", field="against-register")
    return out
