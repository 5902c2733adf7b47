"""Audit verification: walk the stored chain from its base and name the first damaged event.

The base is genesis, or the latest signed purge checkpoint (`hub.audit.retention`); checkpoint
signatures are checked with the operator's public key (`hub.audit.checkpoint`); the pure
walking and damage classification is `hub.audit.chain`. Reads only: never writes a row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterator

import sqlalchemy as sa

from hub.audit.chain import FIELDS, GENESIS, NULL, SEP, ChainWalker, Damage
from hub.audit.checkpoint import Verifier, chain_base, check_signatures, load_checkpoints
from hub.audit.store import paged_rows
from hub.audit.tables import audit_events, audit_head


def iter_chain_rows(engine: sa.Engine, *, after_seq: int = 0, upto_seq: int | None = None,
                    batch: int = 50000) -> Iterator[tuple]:
    """(seq, prev_hash, hash, content_hash) with the canonical content string built by the
    database (string concatenation in C is several times faster than in Python)."""
    ch = "char" if engine.dialect.name == "sqlite" else "chr"
    sep, null = f"{ch}({ord(SEP)})", f"{ch}({ord(NULL)})"
    parts = []
    for f in FIELDS:
        col = "CAST(schema_version AS TEXT)" if f == "schema_version" else f
        parts.append(f"COALESCE({col}, {null})")
    content_sql = f" || {sep} || ".join(parts)
    sha = hashlib.sha256
    for seq, prev, h, content in paged_rows(engine, f"seq, prev_hash, hash, {content_sql}", after_seq=after_seq,
                                            upto_seq=upto_seq, batch=batch):
        yield (seq, prev, h, sha(content.encode("utf-8")).hexdigest())  # chain.content_hash_values of the string


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events: int
    damage: Damage | None = None
    head_seq: int = 0
    base_seq: int = 0  # events up to here were purged under retention (0: none)
    checkpoints: int = 0
    signatures_checked: bool = False

    def describe(self) -> str:
        if not self.ok:
            return f"audit trail DAMAGED at event {self.damage.seq} ({self.damage.kind}): {self.damage.message}"
        sig = "signatures checked" if self.signatures_checked else "signatures NOT checked (no key)"
        base = f", starting after purged event {self.base_seq}" if self.base_seq else ""
        return (f"audit trail verified: {self.events} events up to {self.head_seq}{base}, chain intact, "
                f"{self.checkpoints} checkpoint(s), {sig}")

    def as_dict(self) -> dict:
        return {"ok": self.ok, "events": self.events, "head_seq": self.head_seq, "base_seq": self.base_seq,
                "checkpoints": self.checkpoints, "signatures_checked": self.signatures_checked,
                "damage": None if self.damage is None else
                {"seq": self.damage.seq, "kind": self.damage.kind, "message": self.damage.message}}


def _walk_segment(url: str, start_prev: str, after_seq: int, upto_seq: int, checkpoints: dict,
                  batch: int) -> tuple[bool, int, str | None]:
    """Worker: verify one seq range on its own connection -> (intact, events, last hash)."""
    engine = sa.create_engine(url)  # a plain engine: read-only work, no table creation
    try:
        walker = ChainWalker(start_prev=start_prev, after_seq=after_seq, checkpoints=checkpoints)
        walker.walk(iter_chain_rows(engine, after_seq=after_seq, upto_seq=upto_seq, batch=batch))
        return walker.damage is None, walker.count, walker.prev_hash
    finally:
        engine.dispose()


def _hash_at_or_before(engine: sa.Engine, seq: int) -> str | None:
    with engine.connect() as conn:
        h = conn.execute(sa.select(audit_events.c.hash).where(audit_events.c.seq <= seq)
                         .order_by(audit_events.c.seq.desc()).limit(1)).scalar()
        conn.rollback()
    return h


def _verify_parallel(engine, workers, base_seq, start_prev, head, cps, batch) -> int | None:
    """Events verified when every segment is intact and the segments link; None otherwise.

    Each event's own hash and its link to the previous row are independent of the rest, so
    seq ranges can be checked side by side; the segment seams are then compared here.
    """
    import multiprocessing as mp

    span = head.seq - base_seq
    bounds = [base_seq + span * i // workers for i in range(workers + 1)]
    starts = [start_prev] + [_hash_at_or_before(engine, b) for b in bounds[1:-1]]
    if any(h is None for h in starts):
        return None
    url = engine.url.render_as_string(hide_password=False)
    ctx = mp.get_context("spawn")  # never fork a process that may hold threads (the hub)
    with ctx.Pool(workers) as pool:
        results = pool.starmap(_walk_segment, [
            (url, starts[i], bounds[i], bounds[i + 1], {s: h for s, h in cps.items() if bounds[i] < s <= bounds[i + 1]},
             batch) for i in range(workers)])
    for i, (intact, _n, last_hash) in enumerate(results):
        if not intact:
            return None
        seam = starts[i + 1] if i + 1 < workers else head.hash
        if last_hash != seam:
            return None
    return sum(n for _ok, n, _h in results)


def verify(engine: sa.Engine, *, verifier: Verifier | None = None, batch: int = 50000,
           workers: int = 1, anchors: dict[int, str] | None = None) -> VerifyResult:
    """Walk the stored chain from its base (genesis, or the latest signed purge checkpoint).

    With `verifier` (the operator's public key) every checkpoint signature is checked and a
    whole-chain rewrite shows as a checkpoint hash mismatch; without it only the links are.
    `workers` > 1 checks seq ranges in parallel processes (for large trails); if anything is
    wrong the chain is walked again in one pass to name the first damage exactly.
    `anchors` (seq -> hash from saved register snapshots, `hub.audit.anchors`) are checked like
    checkpoints, and win over a stored checkpoint at the same seq: the operator can re-sign its
    own checkpoints, not the copies others saved. Anchors inside a purged prefix are skipped.
    """
    with engine.connect() as conn:
        head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash)).one()
        checkpoints = load_checkpoints(conn)
        conn.rollback()
    common = {"head_seq": head.seq, "checkpoints": len(checkpoints), "signatures_checked": verifier is not None}
    bad = check_signatures(checkpoints, verifier)
    if bad is not None:
        return VerifyResult(ok=False, events=0, damage=bad, **common)
    base = chain_base(checkpoints)
    base_seq, start_prev = (base["seq"], base["hash"]) if base else (0, GENESIS)
    cps = {cp["seq"]: cp["hash"] for cp in checkpoints if cp["seq"] > base_seq}
    if anchors:
        if base_seq in anchors and anchors[base_seq] != start_prev:
            damage = Damage(base_seq, "rewritten", f"the purge checkpoint at event {base_seq} does not match the "
                                                   f"hash the register published for it: the chain was rewritten")
            return VerifyResult(ok=False, events=0, damage=damage, base_seq=base_seq, **common)
        cps.update({s: h for s, h in anchors.items() if s > base_seq})
    if workers > 1 and head.seq - base_seq >= 10 * batch and not any(s > head.seq for s in cps):
        count = _verify_parallel(engine, workers, base_seq, start_prev, head, cps, batch)
        if count is not None and count == head.seq - base_seq:
            return VerifyResult(ok=True, events=count, base_seq=base_seq, **common)
    walker = ChainWalker(start_prev=start_prev, after_seq=base_seq, checkpoints=cps)
    # Read only up to the head seen above: events appended meanwhile are not part of this check.
    walker.walk(iter_chain_rows(engine, after_seq=base_seq, upto_seq=head.seq, batch=batch))
    damage = walker.finish((head.seq, head.hash))
    return VerifyResult(ok=damage is None, events=walker.count, damage=damage, base_seq=base_seq, **common)
