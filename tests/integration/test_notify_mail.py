"""The notifier against a real SMTP server (aiosmtpd): application state changes reach the
applicant, the assessor and the deciders, with ids and links only; a send that fails is retried
later and nothing is lost; STARTTLS with login and implicit TLS verify the server; a server
without STARTTLS is refused rather than spoken to in clear; `spe notify list|retry`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from hub.audit.tables import audit_events
from hub.exceptions import InvalidInput
from hub.frontoffice.applications import workflow as wf
from hub.identity import local_operator
from hub.notify import recipients, service
from hub.notify.settings import SpeNotify, notify_settings_from
from hub.notify.tables import notify_outbox
from tests.integration.frontoffice.conftest import DIANE, HUGO, PAULA, application, fo  # noqa: F401
from tests.integration.smtp_server import SmtpServer

PUBLIC = "https://spe.example.org/"


@pytest.fixture
def smtp_plain():
    server = SmtpServer("plain").start()
    yield server
    server.stop()


def people(engine, **extra):
    book = {"paula": ("paula@example.org", ["applicants"]), "hugo": ("hugo@hdab.example.org", ["hdab-assessors"]),
            "diane": ("diane@hdab.example.org", ["hdab-deciders"]), **extra}
    with engine.begin() as conn:
        for user, (address, groups) in book.items():
            recipients.set_person(conn, user, address=address, groups=groups)


def to_decision(fo):  # noqa: F811
    apps = fo.applications
    app = apps.create(PAULA, application())
    fee = apps.estimate(app.document, app.applicant)
    apps.act(PAULA, app.id, wf.SUBMIT, accept_fee_estimate=True, accepted_total_cents=fee.total_cents)
    apps.act(HUGO, app.id, wf.TAKE)
    apps.act(HUGO, app.id, wf.MARK_COMPLETE)
    return apps.act(HUGO, app.id, wf.RECOMMEND, decision="grant", reasons="proportionate and lawful")


def outbox(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(notify_outbox).order_by(notify_outbox.c.id)).mappings()]


def test_application_changes_mail_the_applicant_the_assessor_and_the_deciders(fo, engine, smtp_plain):  # noqa: F811
    people(engine)
    app = to_decision(fo)
    notify = SpeNotify(smtp_host="127.0.0.1", smtp_port=smtp_plain.port, smtp_security="plain",
                       mail_from="spe@hdab.example.org", public_url=PUBLIC)
    result = service.run_once(engine, notify)
    assert result.sent == result.queued == 5 and result.failed_tries == 0
    inbox = smtp_plain.inbox
    # submit -> every assessor (nobody has taken it yet); take, mark_complete, recommend -> the applicant;
    # recommend -> the deciders. Nobody is told about their own action.
    assert [m["Subject"] for m in inbox.to("hugo@hdab.example.org")] == [f"[SPE] Application {app.id} is now submitted"]
    assert [m["Subject"] for m in inbox.to("paula@example.org")] == [
        f"[SPE] Application {app.id} is now {s}" for s in ("completeness_check", "assessment", "decision")]
    [to_diane] = inbox.to("diane@hdab.example.org")
    body = to_diane.get_content()
    assert f"{PUBLIC}services/frontoffice/applications/{app.id}" in body
    assert "proportionate" not in body  # free text (reasons, comments) never travels by mail
    assert to_diane["From"] == "spe@hdab.example.org" and to_diane["Auto-Submitted"] == "auto-generated"
    # a second round sends nothing again
    assert service.run_once(engine, notify).sent == 0 and len(inbox.messages) == 5

    # an opted-out applicant still gets the decision on their own application (mandatory)
    with engine.begin() as conn:
        recipients.set_person(conn, "paula", opt_out=True)
    fo.applications.act(DIANE, app.id, wf.REFUSE, reasons="the purpose does not need these data")
    assert service.run_once(engine, notify).sent == 1
    assert inbox.to("paula@example.org")[-1]["Subject"] == f"[SPE] Application {app.id} is now refused"


def test_a_failed_send_is_retried_later_and_a_person_without_address_gets_it_once_known(fo, engine, tmp_path):  # noqa: F811
    people(engine)
    with engine.begin() as conn:
        recipients.set_person(conn, "hugo", address="hugo@hdab.example.org", groups=["hdab-assessors"])
        recipients.set_person(conn, "ivan", groups=["hdab-assessors"])  # no address yet
    apps = fo.applications
    app = apps.create(PAULA, application())
    fee = apps.estimate(app.document, app.applicant)
    apps.act(PAULA, app.id, wf.SUBMIT, accept_fee_estimate=True, accepted_total_cents=fee.total_cents)

    server = SmtpServer("plain").start()
    notify = SpeNotify(smtp_host="127.0.0.1", smtp_port=server.port, smtp_security="plain", public_url=PUBLIC,
                       retry_base_seconds=60)
    now = datetime.now(timezone.utc)
    try:
        server.inbox.refuse = True  # 451: the server is busy
        result = service.run_once(engine, notify, now)
        assert (result.queued, result.sent, result.failed_tries) == (2, 0, 1)
        rows = {r["recipient"]: r for r in outbox(engine)}
        assert rows["hugo"]["state"] == "pending" and rows["hugo"]["attempts"] == 1
        assert "451" in rows["hugo"]["last_error"]
        assert rows["ivan"]["state"] == "unaddressed"
        # not due yet: the next round (same moment) does not try again
        assert service.deliver(engine, notify, now) == (0, 0)
    finally:
        server.stop()
    # the server is down altogether: a failed try again, still nothing lost
    later = now + timedelta(seconds=61)
    assert service.deliver(engine, notify, later) == (0, 1)
    [hugo] = [r for r in outbox(engine) if r["recipient"] == "hugo"]
    assert hugo["state"] == "pending" and hugo["attempts"] == 2
    assert hugo["next_attempt_at"] > (later + timedelta(seconds=119)).strftime("%Y-%m-%dT%H:%M:%S")

    # back up, and ivan got an address meanwhile: both mails go out on the first due round
    server = SmtpServer("plain").start()
    try:
        notify.smtp_port = server.port
        with engine.begin() as conn:
            recipients.set_person(conn, "ivan", address="ivan@hdab.example.org")
        assert service.deliver(engine, notify, later + timedelta(seconds=121)) == (2, 0)
        assert [m["Subject"] for m in server.inbox.to("hugo@hdab.example.org")] == [
            f"[SPE] Application {app.id} is now submitted"]
        assert len(server.inbox.to("ivan@hdab.example.org")) == 1
    finally:
        server.stop()
    assert {r["state"] for r in outbox(engine)} == {"sent"}


def test_starttls_with_login_and_implicit_tls_verify_the_server(fo, engine, tmp_path):  # noqa: F811
    people(engine)
    apps = fo.applications
    app = apps.create(PAULA, application())
    fee = apps.estimate(app.document, app.applicant)
    apps.act(PAULA, app.id, wf.SUBMIT, accept_fee_estimate=True, accepted_total_cents=fee.total_cents)
    password = tmp_path / "smtp-password"
    password.write_text("s3cret\n")
    server = SmtpServer("starttls", tmp_path / "starttls", users={"spe": "s3cret"}).start()
    try:
        # without our CA the certificate is not trusted: nothing is sent, the mail waits
        notify = SpeNotify(smtp_host="127.0.0.1", smtp_port=server.port, smtp_security="starttls",
                           smtp_username="spe", smtp_password_file=str(password), public_url=PUBLIC)
        assert service.run_once(engine, notify).failed_tries == 1
        assert "CERTIFICATE_VERIFY_FAILED" in outbox(engine)[0]["last_error"]
        assert server.inbox.messages == []
        notify.smtp_ca_file = str(server.ca)
        later = datetime.now(timezone.utc) + timedelta(seconds=notify.retry_base_seconds + 1)
        assert service.deliver(engine, notify, later) == (1, 0)
        [got] = server.inbox.messages
        assert got["tls"] and got["login"] == b"spe" and got["to"] == ["hugo@hdab.example.org"]
    finally:
        server.stop()

    apps.act(HUGO, app.id, wf.TAKE)  # -> a mail to paula, now over implicit TLS (port 465 style)
    server = SmtpServer("tls", tmp_path / "tls").start()
    try:
        notify = SpeNotify(smtp_host="127.0.0.1", smtp_port=server.port, smtp_security="tls",
                           smtp_ca_file=str(server.ca), public_url=PUBLIC)
        assert service.run_once(engine, notify).sent == 1
        [got] = server.inbox.messages
        assert got["tls"] and got["to"] == ["paula@example.org"]
    finally:
        server.stop()


def test_starttls_is_never_skipped_and_a_password_never_goes_in_clear(fo, engine, smtp_plain, tmp_path):  # noqa: F811
    people(engine)
    app = fo.applications.create(PAULA, application())
    fee = fo.applications.estimate(app.document, app.applicant)
    fo.applications.act(PAULA, app.id, wf.SUBMIT, accept_fee_estimate=True, accepted_total_cents=fee.total_cents)
    # the plain server offers no STARTTLS: a starttls client refuses to go on in clear text
    notify = SpeNotify(smtp_host="127.0.0.1", smtp_port=smtp_plain.port, smtp_security="starttls", public_url=PUBLIC)
    assert service.run_once(engine, notify).failed_tries == 1
    assert "does not offer STARTTLS" in outbox(engine)[0]["last_error"]
    # plain mode with a login configured: refused before connecting
    (tmp_path / "pw").write_text("x")
    notify = SpeNotify(smtp_host="127.0.0.1", smtp_port=smtp_plain.port, smtp_security="plain",
                       smtp_username="spe", smtp_password_file=str(tmp_path / "pw"), public_url=PUBLIC)
    later = datetime.now(timezone.utc) + timedelta(seconds=notify.retry_base_seconds + 1)
    assert service.deliver(engine, notify, later) == (0, 1)
    assert "without TLS" in outbox(engine)[0]["last_error"]
    assert smtp_plain.inbox.messages == []


def test_cli_lists_and_retries_failed_mail_and_the_retry_is_audited(fo, engine, spe, monkeypatch):  # noqa: F811
    code, out, err = spe("notify", "address", "set", "hugo", "hugo@hdab.example.org", "--group", "hdab-assessors")
    assert code == 0, err
    code, _, err = spe("notify", "address", "set", "hugo", "not an address")
    assert code == 2 and "not a plain mail address" in err
    app = fo.applications.create(PAULA, application())
    fee = fo.applications.estimate(app.document, app.applicant)
    fo.applications.act(PAULA, app.id, wf.SUBMIT, accept_fee_estimate=True, accepted_total_cents=fee.total_cents)

    server = SmtpServer("plain").start()
    try:
        server.inbox.refuse = True
        monkeypatch.setenv("SPE_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("SPE_SMTP_PORT", str(server.port))
        monkeypatch.setenv("SPE_SMTP_SECURITY", "plain")
        notify = notify_settings_from({"SPE_SMTP_HOST": "127.0.0.1", "SPE_SMTP_PORT": str(server.port),
                                       "SPE_SMTP_SECURITY": "plain"})
        notify.max_attempts = 1
        assert service.run_once(engine, notify).failed_tries == 1
        code, out, _ = spe("notify", "list", "--state", "failed")
        assert code == 0 and "hugo" in out and "application.submit" in out
        [mail_id] = [r["id"] for r in outbox(engine)]
        code, _, err = spe("notify", "retry", "999")
        assert code == 2 and "no mail with id 999" in err
        server.inbox.refuse = False
        code, out, _ = spe("notify", "retry")
        assert code == 0 and f"({mail_id})" in out
        code, out, err = spe("notify", "run", "--once")
        assert code == 0, err
        assert "1 sent" in out and len(server.inbox.to("hugo@hdab.example.org")) == 1
    finally:
        server.stop()
    with engine.connect() as conn:
        retried = conn.execute(sa.select(audit_events.c.actor, audit_events.c.detail)
                               .where(audit_events.c.action == "notify.retry")).all()
    assert len(retried) == 1 and retried[0][0] == local_operator().actor and f"[{mail_id}]" in retried[0][1]
    assert json.loads(retried[0][1])["claimed_actor"] == "olga"  # the name the operator gave, beside the account


@pytest.mark.parametrize("env, needle", [
    ({"SPE_SMTP_SECURITY": "ssl"}, "SPE_SMTP_SECURITY"),
    ({"SPE_SMTP_PORT": "twenty-five"}, "SPE_SMTP_PORT"),
    ({"SPE_MAIL_FROM": "SPE <spe@x.org>"}, "SPE_MAIL_FROM"),
])
def test_bad_settings_are_refused_naming_the_variable(env, needle):
    with pytest.raises(InvalidInput, match=needle):
        notify_settings_from(env)


def test_every_login_updates_the_address_book_and_a_bad_claim_keeps_the_operators_address(settings, engine):
    from hub.hubapp.auth import SpeDemoAuthenticator, make_audit_login_hook

    hook = make_audit_login_hook(settings.db_url)
    authenticator = SpeDemoAuthenticator()
    hook(authenticator, None, {"name": "carla", "groups": ["output-checkers"]})
    with engine.begin() as conn:
        assert recipients.person(conn, "carla")["address"] is None
        recipients.set_person(conn, "carla", address="carla@hdab.example.org")
    # an OIDC login: groups change, the e-mail claim is kept; a malformed claim changes nothing
    hook(authenticator, None, {"name": "carla", "groups": ["output-checkers", "auditors"],
                               "auth_state": {"oauth_user": {"email": "carla.new@hdab.example.org"}}})
    hook(authenticator, None, {"name": "carla", "groups": ["auditors"],
                               "auth_state": {"oauth_user": {"email": "x@y, evil@z.org"}}})
    with engine.connect() as conn:
        who = recipients.person(conn, "carla")
        assert who["address"] == "carla.new@hdab.example.org" and who["groups_json"] == '["auditors"]'
        assert recipients.group_members(conn, "output-checkers") == []


def test_turned_on_late_the_notifier_does_not_mail_the_history(fo, engine, smtp_plain):  # noqa: F811
    people(engine)
    app = fo.applications.create(PAULA, application())
    fee = fo.applications.estimate(app.document, app.applicant)
    fo.applications.act(PAULA, app.id, wf.SUBMIT, accept_fee_estimate=True, accepted_total_cents=fee.total_cents)
    notify = SpeNotify(smtp_host="127.0.0.1", smtp_port=smtp_plain.port, smtp_security="plain", public_url=PUBLIC)
    # first round two days later: the submission is history, nobody is mailed about it
    r = service.run_once(engine, notify, datetime.now(timezone.utc) + timedelta(days=2))
    assert (r.queued, r.sent) == (0, 0) and smtp_plain.inbox.messages == []
    fo.applications.act(HUGO, app.id, wf.TAKE)  # a new event is mailed as usual
    assert service.run_once(engine, notify, datetime.now(timezone.utc) + timedelta(days=2)).sent == 1


def test_an_event_with_odd_detail_mails_nobody_and_blocks_nothing(fo, engine, smtp_plain):  # noqa: F811
    from hub import audit

    people(engine)
    with engine.begin() as conn:  # a charge on a permit that does not exist, with detail of the wrong types
        audit.record(conn, actor="system", action="dp.charge", permit_id="NO-SUCH-PERMIT", object_id="q",
                     detail={"epsilon": "lots", "epsilon_remaining": None})
    app = fo.applications.create(PAULA, application())
    fee = fo.applications.estimate(app.document, app.applicant)
    fo.applications.act(PAULA, app.id, wf.SUBMIT, accept_fee_estimate=True, accepted_total_cents=fee.total_cents)
    notify = SpeNotify(smtp_host="127.0.0.1", smtp_port=smtp_plain.port, smtp_security="plain", public_url=PUBLIC)
    assert service.run_once(engine, notify).sent == 1
    assert [m["Subject"] for m in smtp_plain.inbox.to("hugo@hdab.example.org")] == [
        f"[SPE] Application {app.id} is now submitted"]
