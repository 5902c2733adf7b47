"""Who may open which workspace: members of active permits only; hostile options refused; all audited."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from hub.audit.tables import audit_events
from hub.db import make_engine
from hub.hubapp.client import HubClient

pytestmark = pytest.mark.docker


def events(spe_hub, **where) -> list[dict]:
    engine = make_engine(spe_hub.settings.db_url)
    q = sa.select(audit_events)
    for key, value in where.items():
        q = q.where(getattr(audit_events.c, key) == value)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q.order_by(audit_events.c.seq)).mappings()]


def test_non_member_cannot_spawn_and_is_audited(spe_hub):
    bob = spe_hub.client("bob")  # member of DEMO-2026-001 only
    before = len(events(spe_hub, actor="bob", action="workspace.spawn", outcome="refused"))
    resp = bob.start_server("bob", "demo-2026-002")
    assert resp.status_code == 403
    assert "not a member of permit DEMO-2026-002" in resp.json()["message"]
    assert bob.server("bob", "demo-2026-002") is None or not bob.server("bob", "demo-2026-002").get("ready")
    refused = events(spe_hub, actor="bob", action="workspace.spawn", outcome="refused")
    assert len(refused) == before + 1
    assert refused[-1]["permit_id"] == "DEMO-2026-002"


def test_cannot_spawn_for_another_user(spe_hub):
    bob = spe_hub.client("bob")
    resp = bob.start_server("alice", "demo-2026-001")
    assert resp.status_code in (403, 404)


@pytest.mark.parametrize("server, options, status, text", [
    ("demo-2026-001", {"image": "evil/root:latest"}, 400, "unknown spawn option"),
    ("demo-2026-001", {"permit": "DEMO-2026-002"}, 400, "opens as"),
    ("demo-2026-001", {"permit": ["DEMO-2026-001"]}, 400, "must be a permit id"),
    ("demo-2026-001", {"permit": "x" * 10_000}, 400, "must be a permit id"),
    ("no-such-permit", {}, 404, "no permit opens as workspace"),
])
def test_hostile_spawn_options_are_refused(spe_hub, server, options, status, text):
    alice = spe_hub.client("alice")
    resp = alice.start_server("alice", server, options)
    assert resp.status_code == status, resp.text
    assert text in resp.json()["message"]
    info = alice.server("alice", server)
    assert info is None or not info.get("ready")


def test_wrong_password_is_refused_and_audited(spe_hub):
    before = len(events(spe_hub, action="auth.login", outcome="failed"))
    assert HubClient(spe_hub.url).login("alice", "not-the-password") is False
    assert HubClient(spe_hub.url).login("mallory" * 20, "x") is False
    failed = events(spe_hub, action="auth.login", outcome="failed")
    assert len(failed) == before + 2
    assert failed[-2]["actor"] == "alice"
    assert len(failed[-1]["actor"]) <= 64


def test_spawn_form_lists_only_active_member_permits(spe_hub):
    alice = spe_hub.client("alice")
    page = alice.session.get(f"{spe_hub.url}/hub/spawn/alice/demo-2026-001").text
    assert 'value="DEMO-2026-001"' in page and 'value="DEMO-2026-002"' in page  # alice is in both
    bob = spe_hub.client("bob")
    page = bob.session.get(f"{spe_hub.url}/hub/spawn/bob/demo-2026-001").text
    assert 'value="DEMO-2026-001"' in page and "DEMO-2026-002" not in page
    home = bob.session.get(f"{spe_hub.url}/hub/home").text
    assert 'data-permit="DEMO-2026-001"' in home and "DEMO-2026-002" not in home


def test_audit_trail_records_login_spawn_and_stop(spe_hub):
    carol = HubClient(spe_hub.url)
    assert carol.login("carol", spe_hub.passwords["carol"])
    carol.create_token()
    carol.spawn("carol", "demo-2026-002")
    carol.stop_server("carol", "demo-2026-002")
    mine = [(e["action"], e["outcome"], e["permit_id"]) for e in events(spe_hub, actor="carol")]
    assert ("auth.login", "ok", None) in mine
    spawn = mine.index(("workspace.spawn", "ok", "DEMO-2026-002"))
    stop = mine.index(("workspace.stop", "ok", "DEMO-2026-002"))
    assert spawn < stop
    detail = [e for e in events(spe_hub, actor="carol", action="workspace.spawn")][-1]["detail"]
    assert "DEMO-2026-002/1" in str(detail)


def test_roles_give_custom_scopes_and_operators_no_access_to_data(spe_hub):
    scopes = {}
    for user in ("alice", "carla", "olga", "aud"):
        resp = spe_hub.client(user).api("GET", "/user")
        assert resp.status_code == 200
        scopes[user] = set(resp.json()["scopes"])
    assert {"custom:spe:submit", "custom:spe:download"} <= scopes["alice"]
    assert "custom:spe:review" not in scopes["alice"]
    assert {"custom:spe:review", "custom:spe:release"} <= scopes["carla"]
    assert "custom:spe:audit" in scopes["aud"]
    assert {"custom:spe:operate", "admin:servers"} <= scopes["olga"]
    assert not any(s.startswith("access:servers") and s != "access:servers!user=olga" for s in scopes["olga"])
    # the operator can list servers but cannot open alice's workspace
    olga = spe_hub.client("olga")
    assert olga.api("GET", "/users").status_code == 200
