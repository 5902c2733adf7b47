"""Evidence packs: a streamed export of audit events that an auditor verifies offline.

A pack holds, in order: a `meta` record (filter, the operator's public key), the signed
checkpoints covering the range, then every chain row from the first matching event up to an
anchoring checkpoint — matching events in full, all others as *stubs* (seq, links and content
hash only, so other permits' activity is not disclosed but the chain is still provably
unbroken), and an `end` record with counts (a cut-off file is detected). Formats: JSON lines
or CSV with the same records. Writing and verifying both stream: memory does not grow with
the number of events.

Imports only `hub.audit` modules and the standard library.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO, Iterator

import sqlalchemy as sa

from hub.audit.chain import FIELDS, ChainWalker, Damage, content_hash_values
from hub.audit.checkpoint import Signer, Verifier, check_signatures, load_checkpoints, make_checkpoint
from hub.audit.store import iter_raw_rows, record, utc_now_iso
from hub.audit.tables import audit_events
from hub.exceptions import InvalidInput, NotFound

FORMAT = "spe-audit-pack/1"
FORMATS = ("jsonl", "csv")
CSV_COLUMNS = ("type", "seq", "prev_hash", "hash", "content_hash", *FIELDS, "kind", "algorithm", "key_id",
               "signature", "extra")
_CHECKPOINT_KEYS = ("seq", "hash", "ts", "kind", "algorithm", "key_id", "signature")


@dataclass(frozen=True)
class ExportFilter:
    permit_id: str | None = None
    ts_from: str | None = None  # inclusive, ISO 8601 UTC
    ts_to: str | None = None  # exclusive

    def matches(self, permit_id, ts) -> bool:
        return ((self.permit_id is None or permit_id == self.permit_id)
                and (self.ts_from is None or ts >= self.ts_from)
                and (self.ts_to is None or ts < self.ts_to))

    def as_dict(self) -> dict:
        return {"permit_id": self.permit_id, "from": self.ts_from, "to": self.ts_to}


def parse_time_bound(value: str | None, field: str) -> str | None:
    """'2026-01-31' or a full ISO timestamp -> the canonical stored form, or InvalidInput."""
    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"not a date or ISO timestamp: {value!r}", field=field) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return utc_now_iso(dt)


class _Writer:
    def __init__(self, out: IO[str], fmt: str):
        if fmt not in FORMATS:
            raise InvalidInput(f"must be one of {FORMATS}", field="format")
        self.fmt, self.out = fmt, out
        if fmt == "csv":
            self.csv = csv.writer(out, lineterminator="\n")
            self.csv.writerow(CSV_COLUMNS)

    def write(self, rec: dict) -> None:
        if self.fmt == "jsonl":
            self.out.write(json.dumps(rec, separators=(",", ":"), ensure_ascii=False))
            self.out.write("\n")
            return
        extra = {k: v for k, v in rec.items() if k not in CSV_COLUMNS}
        self.csv.writerow(["" if k == "extra" and not extra else json.dumps(extra) if k == "extra"
                           else ("" if rec.get(k) is None else rec[k]) for k in CSV_COLUMNS])


def export_pack(engine: sa.Engine, out: IO[str], *, signer: Signer, actor: str, flt: ExportFilter,
                fmt: str = "jsonl", batch: int = 5000) -> dict:
    """Stream an evidence pack for `flt` to `out`; returns counts. Signs an anchor checkpoint if needed."""
    writer = _Writer(out, fmt)
    conds = []
    if flt.permit_id is not None:
        conds.append(audit_events.c.permit_id == flt.permit_id)
    if flt.ts_from is not None:
        conds.append(audit_events.c.ts >= flt.ts_from)
    if flt.ts_to is not None:
        conds.append(audit_events.c.ts < flt.ts_to)
    with engine.connect() as conn:
        bounds = conn.execute(sa.select(sa.func.min(audit_events.c.seq), sa.func.max(audit_events.c.seq))
                              .where(*conds)).one()
        conn.rollback()
    if bounds[0] is None:
        raise NotFound(f"no audit events match {flt.as_dict()}")
    first_seq, last_seq = bounds
    with engine.begin() as conn:
        cps = load_checkpoints(conn)
        anchors = [cp for cp in cps if cp["seq"] >= last_seq and cp["algorithm"] == signer.algorithm
                   and cp["key_id"] == signer.key_id]
        if anchors:
            anchor = min(anchors, key=lambda cp: cp["seq"])
        else:
            anchor = make_checkpoint(conn, signer, kind="export", ts=utc_now_iso())
            cps.append(anchor)
    # only the current key's checkpoints: one key verifies a pack (earlier keys' checkpoints are
    # covered by the current key's anchor, and published in the register)
    covering = [cp for cp in cps if first_seq - 1 <= cp["seq"] <= anchor["seq"] and cp["key_id"] == signer.key_id]
    writer.write({"type": "meta", "format": FORMAT, "created": utc_now_iso(), "filter": flt.as_dict(),
                  "algorithm": signer.algorithm, "key_id": signer.key_id, "public_key": signer.public_key_hex,
                  "first_seq": first_seq, "anchor_seq": anchor["seq"]})
    for cp in covering:
        writer.write({"type": "checkpoint", **{k: cp[k] for k in _CHECKPOINT_KEYS}})
    events = stubs = 0
    for r in iter_raw_rows(engine, after_seq=first_seq - 1, upto_seq=anchor["seq"], batch=batch):
        seq, prev_hash, hash_, values = r[0], r[1], r[2], r[3:]
        if flt.matches(values[5], values[1]):  # permit_id, ts
            rec = {"type": "event", "seq": seq, "prev_hash": prev_hash, "hash": hash_}
            rec.update(zip(FIELDS, values))
            events += 1
        else:
            rec = {"type": "stub", "seq": seq, "prev_hash": prev_hash, "hash": hash_,
                   "content_hash": content_hash_values(values)}
            stubs += 1
        writer.write(rec)
    writer.write({"type": "end", "events": events, "stubs": stubs})
    out.flush()
    with engine.begin() as conn:
        record(conn, actor=actor, role="operator", action="audit.export", permit_id=flt.permit_id,
               detail={"events": events, "stubs": stubs, "format": fmt, "filter": flt.as_dict(),
                       "anchor_seq": anchor["seq"]})
    return {"events": events, "stubs": stubs, "first_seq": first_seq, "anchor_seq": anchor["seq"],
            "checkpoints": len(covering)}


def _read_records(fh: IO[str]) -> Iterator[dict]:
    first = fh.readline()
    if first.startswith("type,"):
        reader = csv.reader(fh)
        for row in reader:
            rec = {k: (v if v != "" else None) for k, v in zip(CSV_COLUMNS, row)}
            extra = rec.pop("extra")
            if extra:
                rec.update(json.loads(extra))
            if rec.get("seq") is not None:
                rec["seq"] = int(rec["seq"])
            yield {k: v for k, v in rec.items() if v is not None}
        return
    if first.strip():
        yield json.loads(first)
    for line in fh:
        if line.strip():
            yield json.loads(line)


@dataclass(frozen=True)
class PackResult:
    ok: bool
    events: int
    stubs: int
    key_id: str | None
    damage: Damage | None = None
    problem: str | None = None

    def describe(self) -> str:
        if self.ok:
            return (f"evidence pack verified: {self.events} events (+{self.stubs} stubs) chained to a checkpoint "
                    f"signed by key {self.key_id}")
        if self.damage is not None:
            return f"evidence pack DAMAGED at event {self.damage.seq} ({self.damage.kind}): {self.damage.message}"
        return f"evidence pack INVALID: {self.problem}"


def verify_pack(fh: IO[str], *, pinned: Verifier | None = None, anchors: dict[int, str] | None = None) -> PackResult:
    """Verify a pack in one streaming pass. `pinned`: the operator key the auditor trusts;
    `anchors`: seq -> hash published in saved register snapshots (`hub.audit.anchors`), checked
    for the events the pack holds."""
    records = _read_records(fh)
    anchors = anchors or {}
    seen: dict[int, str] = {}  # hashes of the pack's rows at anchored seqs

    def bad(problem: str, events=0, stubs=0, key_id=None) -> PackResult:
        return PackResult(False, events, stubs, key_id, problem=problem)

    try:
        meta = next(records, None)
        if not meta or meta.get("type") != "meta" or meta.get("format") != FORMAT:
            return bad(f"not an {FORMAT} evidence pack (first record is not its meta record)")
        if meta.get("algorithm") != "ed25519":
            return bad("only Ed25519-signed packs can be verified offline")
        try:
            verifier = Verifier.ed25519(meta["public_key"])
        except (ValueError, KeyError):
            return bad("the pack's public key is malformed")
        if pinned is not None and pinned.key_id != verifier.key_id:
            return bad(f"the pack is signed by key {verifier.key_id}, not by the pinned operator key {pinned.key_id}")
        walker: ChainWalker | None = None
        checkpoints: list[dict] = []
        events = stubs = 0
        end = None
        pending: list[tuple] = []
        for rec in records:
            kind = rec.get("type")
            if kind == "checkpoint":
                if walker is not None:
                    return bad("a checkpoint record appears after the events")
                rec["seq"] = int(rec["seq"])
                checkpoints.append(rec)
                continue
            if kind in ("event", "stub"):
                if walker is None:
                    damage = check_signatures(checkpoints, verifier)
                    if damage is not None:
                        return PackResult(False, 0, 0, verifier.key_id, damage=damage)
                    if not checkpoints:
                        return bad("the pack carries no signed checkpoint")
                    walker = ChainWalker(start_prev=rec["prev_hash"],
                                         checkpoints={c["seq"]: c["hash"] for c in checkpoints})
                if kind == "event":
                    content = content_hash_values(rec.get(f) for f in FIELDS)
                    events += 1
                else:
                    content = rec["content_hash"]
                    stubs += 1
                pending.append((int(rec["seq"]), rec["prev_hash"], rec["hash"], content))
                if pending[-1][0] in anchors:
                    seen[pending[-1][0]] = rec["hash"]
                if len(pending) >= 4096:
                    if walker.walk(pending):
                        return PackResult(False, events, stubs, verifier.key_id, damage=walker.damage)
                    pending = []
                continue
            if kind == "end":
                end = rec
                break
            return bad(f"unknown record type {kind!r}")
        if walker is None:
            return bad("the pack holds no events")
        if pending and walker.walk(pending):
            return PackResult(False, events, stubs, verifier.key_id, damage=walker.damage)
        damage = walker.finish()
        if damage is not None:
            return PackResult(False, events, stubs, verifier.key_id, damage=damage)
        if end is None:
            return bad("the pack is cut off: no end record", events, stubs, verifier.key_id)
        if int(end.get("events", -1)) != events or int(end.get("stubs", -1)) != stubs:
            return bad(f"the end record counts {end.get('events')} events and {end.get('stubs')} stubs, "
                       f"the pack holds {events} and {stubs}", events, stubs, verifier.key_id)
        anchor = int(meta.get("anchor_seq", -1))
        if walker.last_seq != anchor or anchor not in walker.checkpoints:
            return bad(f"the chain in the pack ends at {walker.last_seq}, not at its signed anchor {anchor}",
                       events, stubs, verifier.key_id)
        for seq in sorted(anchors):
            if seq in seen and seen[seq] != anchors[seq]:
                return PackResult(False, events, stubs, verifier.key_id, damage=Damage(
                    seq, "rewritten", f"event {seq} does not match the hash the register published for it: "
                                      f"the chain up to here was rewritten"))
        return PackResult(True, events, stubs, verifier.key_id)
    except (ValueError, KeyError, TypeError, json.JSONDecodeError, csv.Error) as err:
        return bad(f"malformed record: {type(err).__name__}: {err}")
