"""Pure hash-chain logic: canonical event payloads, hashes, and damage classification.

No I/O here (and no imports from the rest of `hub`). Each event has a *content hash* over its
fields in a fixed order, and a *chain hash* over the previous event's chain hash and its own
content hash. The order is carried by the chain itself (not by the sequence number): an edit
breaks the event's own hash, a deletion, insertion or reordering breaks the links. Splitting
content from link lets an evidence pack carry other permits' events as stubs (seq, links and
content hash, no content) that still prove the chain is unbroken up to a signed checkpoint.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from dataclasses import dataclass
from typing import Iterable, Mapping

SCHEMA_VERSION = 2
GENESIS = "0" * 64
FIELDS = ("schema_version", "ts", "actor", "role", "action", "permit_id", "object_id", "outcome", "detail")

_sha256 = hashlib.sha256


def canonical_detail(detail: dict | None) -> str | None:
    if detail is None:
        return None
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


# Field separator and the NULL marker of the canonical content string. `record` refuses both
# (and every other control character) in the plain fields, and canonical JSON escapes them in
# `detail`, so the join below is unambiguous and NULL differs from "".
SEP = "\x1f"
NULL = "\x1e"


def content_hash_values(values: Iterable) -> str:
    """SHA-256 of the canonical content of an event: field values in FIELDS order, SEP-joined,
    NULL for None."""
    return _sha256(SEP.join([NULL if v is None else str(v) for v in values]).encode("utf-8")).hexdigest()


def content_hash(event: Mapping) -> str:
    return content_hash_values(event.get(f) for f in FIELDS)


def link_hash(prev_hash: str, content: str) -> str:
    return _sha256(f"{prev_hash}:{content}".encode("ascii")).hexdigest()


def event_hash(prev_hash: str, event: Mapping) -> str:
    """Chain hash of an event: SHA-256 over the previous hash and the event's content hash."""
    return link_hash(prev_hash, content_hash(event))


@dataclass(frozen=True)
class Damage:
    seq: int
    kind: str  # edited | deleted | inserted | reordered | truncated | rewritten | bad_signature (auditor guide)
    message: str


class ChainWalker:
    """Streaming verifier: feed rows in seq order with `feed`, then call `finish`.

    Rows are (seq, prev_hash, hash, content_hash) — the caller computes content_hash (or, for
    a stub in an evidence pack, takes it as given). `checkpoints` maps seq -> signed hash (the
    signatures already checked); an event whose hash differs from its checkpoint means the
    chain was recomputed from some point before it. A broken link is classified by looking at
    most `lookahead` rows ahead (a swapped pair links forward; an inserted event is skipped over).
    """

    def __init__(self, *, start_prev: str = GENESIS, checkpoints: Mapping[int, str] | None = None,
                 lookahead: int = 256, after_seq: int | None = None):
        self.prev_hash = start_prev
        self.prev_prev_hash: str | None = None
        self.last_seq: int | None = after_seq  # seq that start_prev belongs to, when known
        self.checkpoints = dict(checkpoints or {})
        self.lookahead = lookahead
        self.count = 0
        self.damage: Damage | None = None

    def walk(self, rows: Iterable[tuple]) -> Damage | None:
        it = iter(rows)
        buffer: deque = deque()
        prev_hash, prev_prev_hash, last_seq = self.prev_hash, self.prev_prev_hash, self.last_seq
        checkpoints = self.checkpoints
        sha = _sha256
        count = 0
        try:
            while True:
                if buffer:
                    r = buffer.popleft()
                else:
                    r = next(it, None)
                    if r is None:
                        break
                seq, r_prev, r_hash, r_content = r[0], r[1], r[2], r[3]
                count += 1
                if sha(f"{r_prev}:{r_content}".encode("ascii")).hexdigest() != r_hash:  # link_hash, inlined
                    return self._set(Damage(seq, "edited", f"event {seq} was edited: its content does not match its hash"))
                if r_prev != prev_hash:
                    if prev_prev_hash is not None and r_prev == prev_prev_hash:
                        return self._set(Damage(last_seq, "inserted",
                                                f"event {last_seq} was inserted: event {seq} links past it"))
                    while len(buffer) < self.lookahead:
                        nxt = next(it, None)
                        if nxt is None:
                            break
                        buffer.append(nxt)
                    if any(b[2] == r_prev for b in buffer):
                        return self._set(Damage(seq, "reordered", f"event {seq} is out of order: it links to a later event"))
                    if buffer and buffer[0][1] == prev_hash:
                        return self._set(Damage(seq, "inserted",
                                                f"event {seq} was inserted: it links to no event and the next one links past it"))
                    if any(b[1] == prev_hash for b in buffer):
                        return self._set(Damage(seq, "reordered", f"event {seq} is out of order: a later event links here"))
                    first_missing = (last_seq + 1) if last_seq is not None else seq
                    return self._set(Damage(first_missing, "deleted",
                                            f"event(s) before {seq} were deleted: its link points to a missing event"))
                if checkpoints and seq in checkpoints and checkpoints[seq] != r_hash:
                    return self._set(Damage(seq, "rewritten",
                                            f"event {seq} does not match the signed checkpoint at {seq}: "
                                            f"the chain up to here was rewritten"))
                prev_prev_hash, prev_hash, last_seq = prev_hash, r_hash, seq
            return None
        finally:
            self.prev_hash, self.prev_prev_hash, self.last_seq = prev_hash, prev_prev_hash, last_seq
            self.count += count

    def _set(self, damage: Damage) -> Damage:
        self.damage = damage
        return damage

    def finish(self, head: tuple[int, str] | None = None) -> Damage | None:
        """After the last row: compare with the stored head and with checkpoints past the end."""
        if self.damage is not None:
            return self.damage
        last = self.last_seq or 0
        beyond = [s for s in self.checkpoints if s > last]
        if beyond:
            cp = min(beyond)
            return self._set(Damage(last + 1, "truncated",
                                    f"the chain ends at event {last} but a signed checkpoint covers event {cp}: "
                                    f"the tail was removed"))
        if head is not None and head[1] != self.prev_hash:
            return self._set(Damage(last + 1, "truncated",
                                    f"the chain ends at event {last} but its head is event {head[0]}: the tail was removed"))
        return None


def find_damage(rows: Iterable[Mapping], *, head: tuple[int, str] | None = None,
                start_prev: str = GENESIS, checkpoints: Mapping[int, str] | None = None,
                lookahead: int = 256) -> Damage | None:
    """Walk event dicts (FIELDS plus seq, prev_hash, hash) in seq order; the first damage or None."""
    walker = ChainWalker(start_prev=start_prev, checkpoints=checkpoints, lookahead=lookahead)
    tuples = ((r["seq"], r["prev_hash"], r["hash"], content_hash(r)) for r in rows)
    return walker.walk(tuples) or walker.finish(head)
