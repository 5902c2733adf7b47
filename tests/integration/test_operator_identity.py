"""Operator identity: a local `spe` command is recorded under the Unix account that ran it and
the host, marked `auth: local-unix`; a forged `--actor`, $SPE_ACTOR or $USER is kept only as a
claim (the account comes from the process's effective uid, not from the environment)."""

from __future__ import annotations

import json
import os
import pwd
import socket

import sqlalchemy as sa

from hub.audit.tables import audit_events
from hub.cli import main
from hub.db import make_engine
from hub.identity import LocalOperator, local_operator
from tests.conftest import EXAMPLES


def _events(home):
    with make_engine(f"sqlite:///{home / 'registry.db'}").connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(audit_events).order_by(audit_events.c.seq)).mappings()]


def test_forged_actor_is_recorded_under_the_real_account(tmp_path, monkeypatch):
    monkeypatch.setenv("SPE_ACTOR", "someone-else")
    monkeypatch.setenv("USER", "someone-else")
    home = tmp_path / "home"
    assert main(["--home", str(home), "--actor", "the-minister", "dataset", "add-example"]) == 0
    assert main(["--home", str(home), "permit", "apply", str(EXAMPLES / "demo-gibleed.yaml")]) == 0
    events = [e for e in _events(home) if e["action"] in ("dataset.add", "permit.create", "permit.activate")]
    me = f"{pwd.getpwuid(os.geteuid()).pw_name}@{socket.gethostname()}"
    assert len(events) >= 2
    assert {e["actor"] for e in events} == {me}
    claims = {e["action"]: json.loads(e["detail"]).get("claimed_actor") for e in events}
    assert claims["dataset.add"] == "the-minister" and claims["permit.create"] == "someone-else"  # --actor, then $SPE_ACTOR
    assert {json.loads(e["detail"])["auth"] for e in events} == {"local-unix"}
    assert "kind" in json.loads(events[0]["detail"])  # the event's own detail keys are all still there


def test_claim_equal_to_the_account_is_not_repeated():
    op = LocalOperator("olga", "hdab-1", claimed="olga")
    assert (op.actor, op.detail()) == ("olga@hdab-1", {"auth": "local-unix"})
    assert LocalOperator("olga", "hdab-1", claimed="x").detail() == {"auth": "local-unix", "claimed_actor": "x"}
    assert local_operator(uid=4242424, host="h").account == "uid4242424"  # no passwd entry
