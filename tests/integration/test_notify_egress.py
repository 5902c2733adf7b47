"""Egress review mail, end to end: a real hub and egress service, a researcher submits from the
workspace, the notifier reads the audit trail and a real SMTP server (aiosmtpd) receives: the
independent checkers get "waits for review" (never a checker who is a member of the permit),
the author gets the decision; no mail holds any of the output."""

from __future__ import annotations

import pytest

from hub.db import make_engine
from hub.notify import recipients, service
from hub.notify.settings import SpeNotify
from tests.integration.egress_hub import (CHECKER_SCOPES, PERMIT, RESEARCHER_SCOPES, Client, count_table, hub,  # noqa: F401
                                          parquet_bytes, suppressed)
from tests.integration.smtp_server import SmtpServer
from tests.integration.test_egress_api import TABLE, upload

PUBLIC = "https://spe.example.org/"
BOOK = {"alice": ["researchers"], "bob": ["researchers"], "carol": ["output-checkers"], "dave": ["output-checkers"],
        "erin": ["researchers", "output-checkers"]}


@pytest.fixture
def smtp():
    server = SmtpServer("plain").start()
    yield server
    server.stop()


def subjects(server, user):
    return [m["Subject"] for m in server.inbox.to(f"{user}@example.org")]


def test_checkers_hear_of_a_waiting_request_and_the_author_of_the_decision(hub, smtp):  # noqa: F811
    engine = make_engine(hub.db_url)
    with engine.begin() as conn:
        for user, groups in BOOK.items():
            recipients.set_person(conn, user, address=f"{user}@example.org", groups=groups)
    notify = SpeNotify(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_security="plain", public_url=PUBLIC)
    service.run_once(engine, notify)  # whatever earlier tests left in the trail
    smtp.inbox.messages.clear()

    alice_ws = Client(hub, hub.workspace_token("alice"))
    table = suppressed(count_table(hub.extract_dir))
    r = upload(alice_ws, [(TABLE, parquet_bytes(table))])
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    assert r.json()["state"] == "checked"
    service.run_once(engine, notify)
    waiting = f"[SPE] Output request {rid} (permit {PERMIT}) waits for review"
    assert subjects(smtp, "carol") == [waiting] and subjects(smtp, "dave") == [waiting]
    assert subjects(smtp, "erin") == [] and subjects(smtp, "alice") == []  # erin is a member of the permit
    body = smtp.inbox.to("carol@example.org")[0].get_content()
    assert f"{PUBLIC}services/egress/requests/{rid}" in body
    assert "persons by sex" not in body and str(table.column("n")[0]) not in body.split("Open:")[0]

    for checker in ("carol", "dave"):
        c = Client(hub, hub.user_token(checker, CHECKER_SCOPES))
        r = c.post(f"api/requests/{rid}/reviews", json={"version": 1, "decision": "approve"})
        assert r.status_code in (200, 201), r.text
    service.run_once(engine, notify)
    approved = f"[SPE] Output request {rid} (permit {PERMIT}) was approved"
    assert subjects(smtp, "alice") == [approved]
    assert subjects(smtp, "bob") == []  # a member who is not the author


def test_checkers_hear_of_an_import_request_and_the_researcher_of_the_decision(hub, smtp):  # noqa: F811
    engine = make_engine(hub.db_url)
    with engine.begin() as conn:
        for user, groups in BOOK.items():
            recipients.set_person(conn, user, address=f"{user}@example.org", groups=groups)
    notify = SpeNotify(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_security="plain", public_url=PUBLIC)
    service.run_once(engine, notify)
    smtp.inbox.messages.clear()

    alice = Client(hub, hub.user_token("alice", RESEARCHER_SCOPES))
    r = alice.post("api/imports", data={"permit": PERMIT, "justification": "ICD-10 code list"},
                   files=[("file", ("codes.csv", b"code,label\nE11,type 2 diabetes\n", "application/octet-stream"))])
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    service.run_once(engine, notify)
    waiting = f"[SPE] Import request {iid} (permit {PERMIT}) waits for review"
    assert subjects(smtp, "carol") == [waiting] and subjects(smtp, "dave") == [waiting]
    assert subjects(smtp, "erin") == [] and subjects(smtp, "alice") == []

    carol = Client(hub, hub.user_token("carol", CHECKER_SCOPES))
    r = carol.post(f"api/imports/{iid}/decision", json={"decision": "approve", "comment": "E11 is fine"})
    assert r.status_code == 200, r.text
    service.run_once(engine, notify)
    assert subjects(smtp, "alice") == [f"[SPE] Import request {iid} (permit {PERMIT}) was approved"]
    body = smtp.inbox.to("alice@example.org")[0].get_content()
    assert f"{PUBLIC}services/egress/imports/{iid}" in body and "E11" not in body and "codes.csv" not in body
    assert len(subjects(smtp, "carol")) == 1  # the checker who decided is not told of her own decision
