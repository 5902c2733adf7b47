"""Auditor pages: auditors only, filters, a permit's timeline, read-only; the public sees only
the register."""

from __future__ import annotations

import requests
import sqlalchemy as sa
from tornado import web

from egress.web.auditor import auditor_handlers
from egress.web.register import register_handlers
from hub.audit import record
from hub.audit.tables import audit_events
from hub.sessionlog.meter import Key
from hub.sessionlog.meterdb import add_counts
from tests.integration.tornado_thread import TornadoThread

USERS = {
    "tok-auditor": {"name": "audrey", "scopes": ["custom:spe:audit"]},
    "tok-researcher": {"name": "alice", "scopes": ["custom:spe:submit"]},
}


class TokenBase(web.RequestHandler):
    """Edge test double for the hub's OAuth: a fixed token -> user model table."""

    def get_current_user(self):
        auth = self.request.headers.get("Authorization", "")
        return USERS.get(auth.removeprefix("token ").strip()) if auth.startswith("token ") else None


def _trail(engine):
    events = [
        dict(actor="op", action="extract.provision", permit_id="P-1", detail={"rows": 10, "seconds": 1.0},
             ts="2026-02-01T09:00:00.000000Z"),
        dict(actor="alice", action="auth.login", ts="2026-02-02T09:00:00.000000Z"),
        dict(actor="alice", action="workspace.spawn", permit_id="P-1", detail={"server": "P-1"},
             ts="2026-02-02T09:01:00.000000Z"),
        dict(actor="alice", action="session.cell", permit_id="P-1",
             detail={"kernel_id": "k1", "code": "df.describe()", "code_bytes": 13}, ts="2026-02-02T09:02:00.000000Z"),
        dict(actor="bob", action="session.cell", permit_id="P-2",
             detail={"kernel_id": "k2", "code": "x = 1", "code_bytes": 5}, ts="2026-02-03T09:02:00.000000Z"),
        dict(actor="alice", action="workspace.stop", permit_id="P-1", detail={"server": "P-1"},
             ts="2026-02-02T10:00:00.000000Z"),
        dict(actor="op", action="extract.delete", permit_id="P-1", detail={"versions": [1]},
             ts="2026-03-01T09:00:00.000000Z"),
    ]
    for e in events:
        with engine.begin() as conn:
            record(conn, **e)


def _count(engine):
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(audit_events)).scalar()


def test_auditor_filters_and_timeline(engine):
    _trail(engine)
    with engine.begin() as conn:  # what the session recorder counted (hub.sessionlog.meterdb)
        add_counts(conn, Key("P-1", "alice", "2026-02-02"), used=4096, withheld=512, warned=False)
    routes = auditor_handlers("/services/egress", engine, base=TokenBase)
    with TornadoThread(routes) as srv:
        def get(path, token="tok-auditor", **params):
            return requests.get(srv.url + "/services/egress" + path, params={"format": "json", **params},
                                headers={"Authorization": f"token {token}"} if token else {}, timeout=10)

        by_permit = get("/audit/events", permit="P-1").json()["events"]
        assert [e["action"] for e in by_permit] == ["extract.provision", "workspace.spawn", "session.cell",
                                                     "workspace.stop", "extract.delete"]
        assert [e["actor"] for e in get("/audit/events", user="bob").json()["events"]] == ["bob"]
        cells = get("/audit/events", action="session").json()["events"]
        assert [e["summary"] for e in cells] == ["ran cell in kernel k1: df.describe()", "ran cell in kernel k2: x = 1"]
        window = get("/audit/events", **{"from": "2026-02-02", "to": "2026-02-03"}).json()["events"]
        assert {e["action"] for e in window} == {"auth.login", "workspace.spawn", "session.cell", "workspace.stop"}

        tl = get("/audit/permits/P-1/timeline").json()
        assert tl["events"][0]["action"] == "extract.provision" and tl["events"][-1]["action"] == "extract.delete"
        assert all(e["permit_id"] == "P-1" for e in tl["events"])
        page = get("/audit/permits/P-1/timeline", format="html")
        assert page.status_code == 200 and "df.describe()" in page.text

        meter = get("/audit/permits/P-1/meter").json()
        assert [(r["username"], r["used_bytes"], r["withheld_bytes"]) for r in meter["rows"]] == [("alice", 4096, 512)]
        assert meter["rows"][0]["budget_bytes"] == 25 * 1024 * 1024
        assert get("/audit/permits/P-2/meter").json()["rows"] == []
        page = get("/audit/permits/P-1/meter", format="html")
        assert page.status_code == 200 and "<td>alice</td><td>4096</td>" in page.text

        assert get("/audit/events", limit="abc").status_code == 400
        assert get("/audit/events", limit="100000").status_code == 400
        assert "from: not a date" in get("/audit/events", **{"from": "last week"}).json()["error"]

    with engine.connect() as conn:
        views = conn.execute(sa.select(audit_events.c.actor, audit_events.c.role)
                             .where(audit_events.c.action == "audit.view")).all()
    assert views and set(views) == {("audrey", "auditor")}


def test_only_auditors_read_and_nobody_writes(engine):
    _trail(engine)
    routes = auditor_handlers("/e", engine, base=TokenBase) + register_handlers("/e", engine)
    with TornadoThread(routes) as srv:
        before = _count(engine)
        anon = requests.get(srv.url + "/e/audit/events", params={"format": "json"}, timeout=10)
        researcher = requests.get(srv.url + "/e/audit/events", params={"format": "json"},
                                  headers={"Authorization": "token tok-researcher"}, timeout=10)
        public = requests.get(srv.url + "/e/register.json", timeout=10)
        assert (anon.status_code, researcher.status_code, public.status_code) == (401, 403, 200)
        meter = requests.get(srv.url + "/e/audit/permits/P-1/meter", params={"format": "json"},
                             headers={"Authorization": "token tok-researcher"}, timeout=10)
        assert meter.status_code == 403 and "used_bytes" not in meter.text
        assert "alice" not in anon.text and "df.describe" not in researcher.text
        for method in ("post", "put", "delete", "patch"):
            r = requests.request(method, srv.url + "/e/audit/events", headers={"Authorization": "token tok-auditor"},
                                 data="{}", timeout=10)
            assert r.status_code == 405
            for page in ("timeline", "meter"):
                r = requests.request(method, srv.url + f"/e/audit/permits/P-1/{page}",
                                     headers={"Authorization": "token tok-auditor"}, data="{}", timeout=10)
                assert r.status_code == 405
        assert _count(engine) == before  # refused requests changed nothing (not even a view record)
