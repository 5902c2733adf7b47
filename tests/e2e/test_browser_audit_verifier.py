"""The browser verifier (hub/audit/verifier.js, WebCrypto) in real headless Chromium agrees with
the Python verifier (`hub.audit.pack.verify_pack`) on intact evidence packs and on every kind of
tampering: with the pack file (edits, deletions, reordering, insertion, truncation, forged or
altered checkpoints, re-hashing, re-signing with another key), with the database before export,
and against saved register snapshots. Each case also states the expected verdict, so the two
cannot agree on a wrong one. The page is opened from disk (file://): no server is involved."""

from __future__ import annotations

import io
import json

import pytest
from playwright.sync_api import sync_playwright

from hub.audit.chain import content_hash, link_hash
from hub.audit.checkpoint import checkpoint, checkpoint_message, load_or_create_signer, public_key_file
from hub.audit.pack import ExportFilter, export_pack, verify_pack
from hub.audit.anchors import merge_anchors, parse_snapshot
from hub.db import dispose_engines, make_engine
from hub.register import register_document
from tests.e2e.browser import launch
from tests.hubfixture import REPO
from tests.integration.audit.helpers import append, rewrite_chain, tamper

pytestmark = [pytest.mark.browser]

PAGE = (REPO / "hub" / "audit" / "verifier.html").as_uri()


@pytest.fixture(scope="module")
def page():
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            pg = browser.new_page()
            pg.goto(PAGE)
            pg.wait_for_function("() => window.SPEAudit !== undefined")
            yield pg
        finally:
            browser.close()


def js_verdict(page, text: str, *, pinned: str | None = None, registers: list[str] = ()) -> tuple:
    r = page.evaluate("([t, k, regs]) => SPEAudit.verifyPackText(t, {pinnedKey: k, registers: regs})",
                      [text, pinned, list(registers)])
    return (r["ok"], r["damage"]["kind"] if r["damage"] else ("invalid" if not r["ok"] else None),
            r["damage"]["seq"] if r["damage"] else None)


def py_verdict(text: str, *, pinned: str | None = None, registers: list[str] = ()) -> tuple:
    from hub.audit.checkpoint import parse_public_key

    anchors = merge_anchors([parse_snapshot(s) for s in registers]) if registers else None
    r = verify_pack(io.StringIO(text, newline=""), pinned=parse_public_key(pinned) if pinned else None,
                    anchors=anchors)
    return (r.ok, r.damage.kind if r.damage else ("invalid" if not r.ok else None),
            r.damage.seq if r.damage else None)


# --- building packs -------------------------------------------------------------------------------

@pytest.fixture
def trail(tmp_path):
    """A trail of two permits with a periodic checkpoint in the middle; the signer; a register snapshot."""
    engine = make_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    signer = load_or_create_signer(tmp_path / "keys")
    append(engine, 4, permit_id="P-1", actor="alice")
    append(engine, 3, permit_id="P-2", actor="bob", start=4)
    checkpoint(engine, signer, actor="op")  # event 8 records the checkpoint at 7
    append(engine, 4, permit_id="P-1", actor="alice", start=7)
    yield engine, signer, tmp_path
    dispose_engines()


def export(engine, signer, fmt="jsonl", permit="P-1") -> str:
    out = io.StringIO(newline="")
    export_pack(engine, out, signer=signer, actor="op", flt=ExportFilter(permit_id=permit), fmt=fmt)
    return out.getvalue()


def recs(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def dump(records: list[dict]) -> str:
    return "".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n" for r in records)


def idx(records, seq, types=("event", "stub")) -> int:
    return next(i for i, r in enumerate(records) if r["type"] in types and r["seq"] == seq)


def rehash(records: list[dict], signer=None) -> list[dict]:
    """What a forger does after an edit: recompute every link (and re-sign the checkpoints with
    `signer`, replacing the pack's key)."""
    prev = None
    hashes = {}
    for r in records:
        if r["type"] not in ("event", "stub"):
            continue
        if prev is not None:
            r["prev_hash"] = prev
        content = content_hash(r) if r["type"] == "event" else r["content_hash"]
        r["hash"] = prev = link_hash(r["prev_hash"], content)
        hashes[r["seq"]] = r["hash"]
    for r in records:
        if r["type"] == "checkpoint" and r["seq"] in hashes:
            r["hash"] = hashes[r["seq"]]
            if signer is not None:
                r["signature"] = signer.sign(checkpoint_message(r["seq"], r["hash"], r["ts"], r["kind"]))
                r["key_id"] = signer.key_id
        if r["type"] == "meta" and signer is not None:
            r["public_key"], r["key_id"] = signer.public_key_hex, signer.key_id
    return records


def pack_cases(engine, signer, tmp_path) -> list[tuple]:
    """(name, text, pinned key text or None, register snapshots, expected verdict)."""
    key = public_key_file(signer)
    base = export(engine, signer)
    cases = [("intact jsonl", base, key, [], (True, None, None)),
             ("intact unpinned", base, None, [], (True, None, None))]

    def case(name, change, expected, *, pinned=key, registers=()):
        records = recs(base)
        changed = change(records)
        records = changed if isinstance(changed, list) and changed and changed[0].get("type") == "meta" else records
        cases.append((name, dump(records), pinned, list(registers), expected))

    def edit(field, value, seq=3):
        return lambda rs: rs[idx(rs, seq)].update({field: value})

    case("edit actor", edit("actor", "carol"), (False, "edited", 3))
    case("edit detail", edit("detail", '{"code":"y = 1","code_bytes":5,"kernel_id":"k2"}'), (False, "edited", 3))
    case("edit ts", edit("ts", "2020-01-01T00:00:00.000000Z", seq=10), (False, "edited", 10))
    case("null a field", edit("object_id", None), (False, "edited", 3))
    case("edit stub content", edit("content_hash", "0" * 64, seq=5), (False, "edited", 5))
    case("edit a hash", edit("hash", "f" * 64, seq=9), (False, "edited", 9))
    case("delete event", lambda rs: rs.pop(idx(rs, 3)), (False, "deleted", 3))
    case("delete stub", lambda rs: rs.pop(idx(rs, 6)), (False, "deleted", 6))
    case("delete two", lambda rs: [rs.pop(idx(rs, 3)), rs.pop(idx(rs, 4))], (False, "deleted", 3))

    def swap(rs):
        i, j = idx(rs, 2), idx(rs, 3)
        rs[i], rs[j] = rs[j], rs[i]
    case("swap two events", swap, (False, "reordered", 3))

    def insert(rs):
        i = idx(rs, 3)
        forged = {**rs[i], "seq": 3, "object_id": "forged", "prev_hash": rs[i]["prev_hash"]}
        forged["hash"] = link_hash(forged["prev_hash"], content_hash(forged))
        rs.insert(i, forged)
    case("insert forged event", insert, (False, "inserted", 3))

    def insert_unlinked(rs):
        i = idx(rs, 10)
        forged = {**rs[i], "object_id": "forged", "prev_hash": "ab" * 32}
        forged["hash"] = link_hash(forged["prev_hash"], content_hash(forged))
        rs.insert(i, forged)
    case("insert unlinked event", insert_unlinked, (False, "inserted", 10))

    def move_back(rs):  # an event moved two places later: a later event links to where it was
        row = rs.pop(idx(rs, 2))
        rs.insert(idx(rs, 4) + 1, row)
    case("move an event later", move_back, (False, "reordered", 3))

    def move_and_delete(rs):  # 1, 4, 5, 2, ...: event 3 gone, event 2 moved later
        rs.pop(idx(rs, 3))
        row = rs.pop(idx(rs, 2))
        rs.insert(idx(rs, 5) + 1, row)
    case("delete one, move another", move_and_delete, (False, "reordered", 4))

    def truncate(rs):
        end = rs[-1]
        del rs[idx(rs, 11):]
        end["events"] -= 2
        rs.append(end)
    case("truncate tail", truncate, (False, "truncated", 11))
    case("drop end record", lambda rs: rs.pop(), (False, "invalid", None))
    case("end count wrong", lambda rs: rs[-1].update(events=rs[-1]["events"] + 1), (False, "invalid", None))
    case("drop checkpoints", lambda rs: [r for r in rs if r["type"] != "checkpoint"], (False, "invalid", None))

    def forge_sig(rs):
        cp = next(r for r in rs if r["type"] == "checkpoint")
        cp["signature"] = ("0" if cp["signature"][0] != "0" else "1") + cp["signature"][1:]
    case("forged checkpoint signature", forge_sig, (False, "bad_signature", 7))

    def move_cp(rs):
        cp = next(r for r in rs if r["type"] == "checkpoint")
        cp["hash"] = rs[idx(rs, 6)]["hash"]
    case("checkpoint hash altered", move_cp, (False, "bad_signature", 7))
    case("anchor moved", lambda rs: rs[0].update(anchor_seq=7), (False, "invalid", None))
    case("wrong format", lambda rs: rs[0].update(format="spe-audit-pack/0"), (False, "invalid", None))
    case("bad public key", lambda rs: rs[0].update(public_key="abcd"), (False, "invalid", None))

    def late_cp(rs):
        cp = next(r for r in rs if r["type"] == "checkpoint")
        rs.remove(cp)
        rs.insert(len(rs) - 1, cp)
    case("checkpoint after events", late_cp, (False, "invalid", None))
    case("unknown record", lambda rs: rs.insert(len(rs) - 1, {"type": "note", "seq": 99}), (False, "invalid", None))

    def rehash_edit(rs):
        rs[idx(rs, 2)]["actor"] = "carol"
        rehash(rs)
    case("edit and rehash", rehash_edit, (False, "bad_signature", 7))

    other = load_or_create_signer(tmp_path / "forger-keys")

    def resign(rs):
        rs[idx(rs, 2)]["actor"] = "carol"
        rehash(rs, other)
    case("rewritten and re-signed, pinned", resign, (False, "invalid", None))
    case("rewritten and re-signed, unpinned", resign, (True, None, None), pinned=None)
    snapshot = json.dumps(register_document(engine), default=str)
    case("rewritten and re-signed, against register", resign, (False, "rewritten", 7), pinned=None,
         registers=[snapshot])
    cases.append(("intact against register", base, key, [snapshot], (True, None, None)))

    # CSV packs
    csv_text = export(engine, signer, fmt="csv")
    lines = csv_text.splitlines(keepends=True)
    cases.append(("intact csv", csv_text, key, [], (True, None, None)))
    row3 = next(i for i, line in enumerate(lines) if line.startswith("event,3,"))
    cases.append(("csv edit", "".join(lines[:row3] + [lines[row3].replace("alice", "alicf")] + lines[row3 + 1:]),
                  key, [], (False, "edited", 3)))
    cases.append(("csv delete row", "".join(lines[:row3] + lines[row3 + 1:]), key, [], (False, "deleted", 3)))
    cases.append(("csv cut off", "".join(lines[:-1]), key, [], (False, "invalid", None)))
    return cases


def test_js_and_python_verifiers_agree_on_packs(page, trail):
    engine, signer, tmp_path = trail
    cases = pack_cases(engine, signer, tmp_path)
    assert len(cases) >= 30
    for name, text, pinned, registers, expected in cases:
        py = py_verdict(text, pinned=pinned, registers=registers)
        js = js_verdict(page, text, pinned=pinned, registers=registers)
        assert py == expected, f"{name}: python says {py}, expected {expected}"
        assert js == py, f"{name}: the browser verifier says {js}, python {py}"


def test_database_tampering_caught_by_both_and_by_the_register(page, trail):
    """Tamper with the database after a checkpoint was published, then export: both verifiers
    name the first bad event; a rewrite that the operator re-signs passes both unless a saved
    register snapshot is given."""
    engine, signer, tmp_path = trail
    key = public_key_file(signer)
    saved = json.dumps(register_document(engine), default=str)  # an outsider saves the register
    assert parse_snapshot(saved) == [(7, register_document(engine)["audit_anchors"][0]["hash"])]

    tamper(engine, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 10")
    text = export(engine, signer)
    assert py_verdict(text, pinned=key) == js_verdict(page, text, pinned=key) == (False, "edited", 10)

    rewrite_chain(engine, lambda r: r.update(actor="mallory") if r["seq"] == 3 else None)
    text = export(engine, signer)
    assert py_verdict(text, pinned=key) == js_verdict(page, text, pinned=key) == (False, "rewritten", 7)

    # the operator holds the key: re-sign the stored checkpoints over the rewritten chain
    with engine.begin() as conn:
        for cp_id, seq, ts, kind in conn.exec_driver_sql("SELECT id, seq, ts, kind FROM audit_checkpoints").all():
            new = conn.exec_driver_sql("SELECT hash FROM audit_events WHERE seq = ?", (seq,)).scalar()
            conn.exec_driver_sql("UPDATE audit_checkpoints SET hash = ?, signature = ? WHERE id = ?",
                                 (new, signer.sign(checkpoint_message(seq, new, ts, kind)), cp_id))
    text = export(engine, signer)
    assert py_verdict(text, pinned=key) == js_verdict(page, text, pinned=key) == (True, None, None)
    assert (py_verdict(text, pinned=key, registers=[saved]) == js_verdict(page, text, pinned=key, registers=[saved])
            == (False, "rewritten", 7))


def test_the_page_form_verifies_a_pack_chosen_by_the_auditor(page, trail):
    engine, signer, tmp_path = trail
    path = tmp_path / "pack.jsonl"
    path.write_text(export(engine, signer))
    page.set_input_files("#pack", str(path))
    page.fill("#key", public_key_file(signer))
    page.click("#verify")
    page.wait_for_function("() => document.getElementById('result').dataset.ok !== undefined")
    assert page.get_attribute("#result", "data-ok") == "true"
    assert "evidence pack verified: 8 events (+4 stubs)" in page.inner_text("#result")
    records = recs(path.read_text())
    records[idx(records, 9)]["outcome"] = "refused"
    path.write_text(dump(records))
    page.set_input_files("#pack", str(path))
    page.evaluate("() => { delete document.getElementById('result').dataset.ok; }")
    page.click("#verify")
    page.wait_for_function("() => document.getElementById('result').dataset.ok !== undefined")
    assert (page.get_attribute("#result", "data-ok"), page.get_attribute("#result", "data-kind"),
            page.get_attribute("#result", "data-seq")) == ("false", "edited", "9")


def test_the_page_served_by_egress_runs_under_its_policy(page, trail):
    """Served from the egress route (`egress.web.verifier`) with its Content-Security-Policy (scripts
    from the page's origin only, no connections): the verifier still runs and verifies."""
    from egress.web.verifier import verifier_handlers
    from tests.integration.tornado_thread import TornadoThread

    engine, signer, tmp_path = trail
    path = tmp_path / "pack.jsonl"
    path.write_text(export(engine, signer))
    with TornadoThread(verifier_handlers("/services/egress/")) as srv:
        pg = page.context.browser.new_page()
        try:
            blocked = []
            pg.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
            pg.goto(f"{srv.url}/services/egress/audit/verifier")
            pg.set_input_files("#pack", str(path))
            pg.click("#verify")
            pg.wait_for_function("() => document.getElementById('result').dataset.ok !== undefined")
            assert pg.get_attribute("#result", "data-ok") == "true", pg.inner_text("#result")
            assert pg.evaluate("() => fetch('/services/egress/audit/verifier').then(() => 'sent', () => 'refused')") \
                == "refused"  # the page may not connect anywhere, even to its own origin
            assert blocked  # the refusal above is the policy's doing
        finally:
            pg.close()
