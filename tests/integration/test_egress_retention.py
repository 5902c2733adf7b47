"""Retention of output requests: past the permit's `retention.egress_days`, the files of withdrawn,
rejected and draft requests are deleted from the blob store with an audit event that keeps their
hashes; released or pending requests, a blob a kept request shares, and younger requests stay;
the audit trail still verifies. Real egress service in-process, real registry and blob store."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
import yaml

from egress import workflow as wf
from egress.business import EgressService, Submission
from egress.retention import expired
from egress.store import BlobStore
from egress.tables import egress_requests
from hub.audit.tables import audit_events
from hub.cli import main
from hub.naming import server_name_for
from hub.permits.store import PermitStore
from hub.provision.run import provision
from tests.conftest import EXAMPLES

P1 = "DEMO-2026-001"
LONG_AGO = "2020-01-01T00:00:00.000000Z"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_expired_rule():
    now = datetime(2026, 3, 1, tzinfo=timezone.utc)
    old = (now - timedelta(days=31)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    young = (now - timedelta(days=29)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert expired("withdrawn", old, 30, now) and expired("rejected", old, 30, now) and expired("draft", old, 30, now)
    assert not expired("withdrawn", young, 30, now)
    assert expired("released", old, 30, now)  # its working copies: the caller keeps the released version
    assert not expired("checked", old, 30, now) and not expired("returned", old, 30, now)
    assert not expired("withdrawn", old, None, now)  # no retention set: kept


def test_retention_deletes_what_it_should_and_nothing_else(engine, settings, eunomia, tmp_path, capsys):
    doc = yaml.safe_load((EXAMPLES / "demo-gibleed.yaml").read_text())
    doc["retention"] = {"egress_days": 30}
    path = tmp_path / "permit.yaml"
    path.write_text(yaml.safe_dump(doc))
    PermitStore(engine).apply_file(path, "op")
    provision(engine, settings, P1, "op")
    svc = EgressService(engine, settings)
    alice = wf.Actor("alice", frozenset({wf.SCOPE_SUBMIT}), server_name_for(P1))

    def submit(*files):
        return svc.submit(alice, Submission(files=list(files), description="notes", kind="text"))["id"]

    shared, only_a, only_b, only_d = b"shared notes\n", b"only in A\n", b"only in B\n", b"only in D\n"
    a = submit(("x.txt", shared), ("a.txt", only_a))
    b = submit(("b.txt", only_b))
    c = submit(("c.txt", shared))  # pending review: kept, and so is the blob it shares with A
    d = submit(("d.txt", only_d))  # withdrawn too, but recently
    for rid in (a, b, d):
        svc.withdraw(alice, rid)
    # a released request: version 1 returned (a working copy), version 2 released
    first, second = b"first draft\n", b"released text\n"
    e = submit(("v1.txt", first))
    carol, dave = (wf.Actor(n, frozenset({wf.SCOPE_REVIEW})) for n in ("carol", "dave"))
    for checker in (carol, dave):
        svc.review(checker, e, version=1, decision="return", comment="say more")
    svc.resubmit(alice, e, Submission(files=[("v2.txt", second)], description="notes", kind="text"))
    for checker in (carol, dave):
        svc.review(checker, e, version=2, decision="approve")
    assert svc.release(wf.Actor("rita", frozenset({wf.SCOPE_RELEASE})), e)["state"] == "released"
    with engine.begin() as conn:  # time passes for A and B only
        conn.execute(egress_requests.update().where(egress_requests.c.id.in_([a, b, e])).values(updated_at=LONG_AGO))
    store = BlobStore(settings.store_dir)
    cli = ["--home", str(settings.home), "--db-url", settings.db_url]

    capsys.readouterr()
    assert main([*cli, "retention", "run", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"{a} (withdrawn since 2020-01-01, retention 30 days): would delete 2 file(s), 1 stored blob(s)" in out
    assert f"{b} (withdrawn" in out and c not in out and d not in out and "3 request(s)" in out
    assert f"{e} (released since 2020-01-01, retention 30 days): would delete 1 file(s), 1 stored blob(s)" in out
    assert all(store.has(sha(x)) for x in (shared, only_a, only_b, only_d, first, second))

    assert main([*cli, "retention", "run"]) == 0
    assert "deleted 1 file(s), 1 stored blob(s)" in capsys.readouterr().out
    assert [store.has(sha(x)) for x in (shared, only_a, only_b, only_d, first, second)] == [
        True, False, False, True, False, True]  # the released version stays
    with engine.connect() as conn:
        events = conn.execute(sa.select(audit_events).where(audit_events.c.action == "retention.delete")
                              .order_by(audit_events.c.seq)).mappings().all()
    assert [ev["object_id"] for ev in events] == [a, b, e]
    assert [f["name"] for f in json.loads(events[2]["detail"])["files"]] == ["v1.txt"]
    kept = json.loads(events[0]["detail"])
    assert {(f["name"], f["sha256"]) for f in kept["files"]} == {("x.txt", sha(shared)), ("a.txt", sha(only_a))}
    assert kept["blobs"] == [sha(only_a)] and events[0]["permit_id"] == P1

    shown = svc.get(alice, a, with_previews=True)  # the request page still opens; its files are marked deleted
    # x.txt's bytes stay while request C (pending) holds the same blob
    assert [(f["name"], f.get("deleted")) for v in shown["versions"] for f in v["files"]] == [
        ("a.txt", True), ("x.txt", None)]
    assert svc.get(alice, c, with_previews=True)["versions"][0]["files"][0]["preview"] is not None
    assert main([*cli, "retention", "run"]) == 0  # nothing twice
    assert "0 request(s) past retention" in capsys.readouterr().out
    assert main([*cli, "audit", "verify"]) == 0
    assert "audit trail verified" in capsys.readouterr().out
