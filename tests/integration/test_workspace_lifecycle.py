"""An ended permit's running workspace is stopped by the lifecycle service (≤ 60 s), new spawns refused."""

from __future__ import annotations

import time

import docker
import pytest
import sqlalchemy as sa

from hub.audit.tables import audit_events
from hub.db import make_engine
from hub.lifecycle import delete_permit_data
from hub.permits.store import PermitStore
from hub.naming import safe_slug

pytestmark = pytest.mark.docker

LIFECYCLE_LIMIT_SECONDS = 60  # issue 3: stopped within 60 s of expiry


def test_expired_permit_workspace_is_stopped_then_its_data_deleted(spe_hub):
    alice = spe_hub.client("alice")
    alice.spawn("alice", "test-expire-1")
    assert alice.server("alice", "test-expire-1")["ready"]
    engine = make_engine(spe_hub.settings.db_url)
    PermitStore(engine).transition("TEST-EXPIRE-1", "expire", "tester", reason="integration test")
    deadline = time.monotonic() + LIFECYCLE_LIMIT_SECONDS
    while alice.server("alice", "test-expire-1") is not None and time.monotonic() < deadline:
        time.sleep(1)
    assert alice.server("alice", "test-expire-1") is None, spe_hub.log_tail()
    with engine.connect() as conn:
        rows = conn.execute(sa.select(audit_events).where(audit_events.c.permit_id == "TEST-EXPIRE-1")
                            .order_by(audit_events.c.seq)).mappings().all()
    actions = [(r["actor"], r["action"]) for r in rows]
    assert ("system", "workspace.terminate") in actions
    assert ("alice", "workspace.stop") in actions
    resp = alice.start_server("alice", "test-expire-1")
    assert resp.status_code == 403
    assert "expired" in resp.json()["message"]

    # after the grace period the lifecycle deletes extracts and work volumes (called directly here)
    client = docker.from_env()
    # this hub's volumes only: other runs on the same engine have a TEST-EXPIRE-1 of their own
    label = [f"spe.permit={safe_slug('TEST-EXPIRE-1', prefix='p')}", f"spe.deployment={spe_hub.name_prefix}"]
    assert client.volumes.list(filters={"label": label}), "the workspace's work volume should exist"
    assert (spe_hub.settings.extracts_dir / "TEST-EXPIRE-1").is_dir()
    delete_permit_data(spe_hub.settings, engine, "TEST-EXPIRE-1", client, spe_hub.name_prefix)
    assert not (spe_hub.settings.extracts_dir / "TEST-EXPIRE-1").exists()
    assert client.volumes.list(filters={"label": label}) == []
    with engine.connect() as conn:
        actions = [r.action for r in conn.execute(sa.select(audit_events.c.action)
                                                  .where(audit_events.c.permit_id == "TEST-EXPIRE-1"))]
    assert "extract.delete" in actions and "workspace.volumes.delete" in actions
