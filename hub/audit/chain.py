"""Pure hash-chain logic: canonical event payloads, hashes, and damage classification.

No I/O here. The hash of an event covers its content and the previous event's hash (not
its sequence number), so the order is carried by the chain itself: an edit breaks the
event's own hash, a deletion, insertion or reordering breaks the links.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from dataclasses import dataclass
from typing import Iterable

SCHEMA_VERSION = 1
GENESIS = "0" * 64
FIELDS = ("schema_version", "ts", "actor", "role", "action", "permit_id", "object_id", "outcome", "detail")


def canonical_detail(detail: dict | None) -> str | None:
    if detail is None:
        return None
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def event_hash(prev_hash: str, event: dict) -> str:
    """SHA-256 over the previous hash and the event's fields in a fixed order."""
    parts = [prev_hash] + ["" if event.get(f) is None else str(event[f]) for f in FIELDS]
    # \x1f (unit separator) cannot occur ambiguously: fields are joined with their lengths.
    blob = "\x1f".join(f"{len(p)}:{p}" for p in parts)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Damage:
    seq: int
    kind: str  # edited | deleted | inserted | reordered | truncated | checkpoint_mismatch
    message: str


def find_damage(rows: Iterable[dict], *, head: tuple[int, str] | None = None,
                start_prev: str = GENESIS, lookahead: int = 256) -> Damage | None:
    """Walk events in seq order (streaming); return the first damage or None.

    `rows` yields dicts with FIELDS plus seq, prev_hash, hash. `head` is the stored chain head
    (seq, hash), used to detect a truncated tail. `start_prev` lets a verification start after
    a purged prefix, from a signed checkpoint. A broken link is classified by looking at most
    `lookahead` events ahead (a swapped pair links forward; an inserted event is skipped over).
    """
    it = iter(rows)
    buffer: deque[dict] = deque()
    prev_hash, prev_prev_hash, last_seq = start_prev, None, None
    while True:
        if buffer:
            r = buffer.popleft()
        else:
            r = next(it, None)
            if r is None:
                break
        if event_hash(r["prev_hash"], r) != r["hash"]:
            return Damage(r["seq"], "edited", f"event {r['seq']} was edited: its content does not match its hash")
        if r["prev_hash"] != prev_hash:
            if prev_prev_hash is not None and r["prev_hash"] == prev_prev_hash:
                return Damage(last_seq, "inserted", f"event {last_seq} was inserted: event {r['seq']} links past it")
            while len(buffer) < lookahead:
                nxt = next(it, None)
                if nxt is None:
                    break
                buffer.append(nxt)
            if any(b["hash"] == r["prev_hash"] for b in buffer):
                return Damage(r["seq"], "reordered", f"event {r['seq']} is out of order: it links to a later event")
            if any(b["prev_hash"] == prev_hash for b in buffer):
                return Damage(r["seq"], "reordered", f"event {r['seq']} is out of order: a later event links here")
            first_missing = (last_seq + 1) if last_seq is not None else r["seq"]
            return Damage(first_missing, "deleted",
                          f"event(s) before {r['seq']} were deleted: its link points to a missing event")
        prev_prev_hash, prev_hash, last_seq = prev_hash, r["hash"], r["seq"]
    if head is not None and head[1] != prev_hash:
        at = (last_seq or 0) + 1
        return Damage(at, "truncated",
                      f"the chain ends at event {last_seq} but its head is event {head[0]}: the tail was removed")
    return None
