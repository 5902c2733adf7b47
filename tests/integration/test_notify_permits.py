"""Mail about permits, through a real registry, the real DP ledger and a real SMTP server: a
permit ending within 14 days tells its members and the operators once per end date; a DP charge
that crosses 80 % of the budget tells the members, once."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import pytest
import yaml

from egress.dp.ledger import charge
from hub.notify import recipients, service
from hub.notify.settings import SpeNotify
from hub.permits.store import PermitStore
from tests.conftest import EXAMPLES
from tests.integration.smtp_server import SmtpServer

PUBLIC = "https://spe.example.org/"


@pytest.fixture
def smtp():
    server = SmtpServer("plain").start()
    yield server
    server.stop()


@pytest.fixture
def permit(engine, eunomia):
    doc = yaml.safe_load((EXAMPLES / "demo-gibleed.yaml").read_text())
    doc["valid_from"], doc["valid_until"] = "2026-01-01", "2030-12-31"
    PermitStore(engine).apply(doc, "tester")
    with engine.begin() as conn:
        for user, groups in {"alice": ["researchers"], "bob": ["researchers"], "olga": ["operators"],
                             "carla": ["output-checkers"]}.items():
            recipients.set_person(conn, user, address=f"{user}@example.org", groups=groups)
    return doc


def at(day: date) -> datetime:
    return datetime.combine(day, time(9), tzinfo=timezone.utc)


def subjects(server, user):
    return [m["Subject"] for m in server.inbox.to(f"{user}@example.org")]


def test_members_and_operators_hear_of_the_end_once_per_end_date(engine, permit, smtp):
    notify = SpeNotify(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_security="plain", public_url=PUBLIC)
    end = date(2030, 12, 31)
    assert service.run_once(engine, notify, at(end - timedelta(days=15))).sent == 0
    assert service.run_once(engine, notify, at(end - timedelta(days=14))).sent == 3
    ending = "[SPE] Permit DEMO-2026-001 ends on 2030-12-31"
    assert subjects(smtp, "alice") == subjects(smtp, "bob") == subjects(smtp, "olga") == [ending]
    assert subjects(smtp, "carla") == []
    assert "in 14 day(s)" in smtp.inbox.to("alice@example.org")[0].get_content()
    assert service.run_once(engine, notify, at(end - timedelta(days=3))).sent == 0  # told once
    # the end is moved: a new notice for the new date when it comes near
    PermitStore(engine).apply(dict(permit, valid_until="2031-01-10"), "tester")
    assert service.run_once(engine, notify, at(date(2030, 12, 28))).sent == 3
    assert subjects(smtp, "alice")[-1] == "[SPE] Permit DEMO-2026-001 ends on 2031-01-10"


def test_a_charge_crossing_80_percent_of_the_budget_tells_the_members_once(engine, permit, smtp):
    notify = SpeNotify(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_security="plain", public_url=PUBLIC,
                       permit_ending_days=0)
    budget = PermitStore(engine).get("DEMO-2026-001").dp  # epsilon 2.0, shared
    charge(engine, "DEMO-2026-001", "alice", 1.0, 0.0, "q1", budget=budget)  # 50 %
    assert service.run_once(engine, notify).sent == 0
    charge(engine, "DEMO-2026-001", "bob", 0.7, 0.0, "q2", budget=budget)  # 85 %: crosses 80 %
    assert service.run_once(engine, notify).sent == 2
    warning = "[SPE] Permit DEMO-2026-001: 80 % of the differential-privacy budget spent"
    assert subjects(smtp, "alice") == subjects(smtp, "bob") == [warning]
    assert subjects(smtp, "olga") == []
    charge(engine, "DEMO-2026-001", "alice", 0.1, 0.0, "q3", budget=budget)  # 90 %: already told
    assert service.run_once(engine, notify).sent == 0


def test_a_person_on_the_daily_digest_gets_non_mandatory_mail_once_a_day_in_one(engine, permit, smtp, spe):
    code, out, err = spe("notify", "address", "set", "alice", "--digest")
    assert code == 0 and "(daily digest)" in out, err
    notify = SpeNotify(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_security="plain", public_url=PUBLIC,
                       permit_ending_days=0)
    budget = PermitStore(engine).get("DEMO-2026-001").dp
    charge(engine, "DEMO-2026-001", "bob", 1.7, 0.0, "q1", budget=budget)  # crosses 80 %
    now = datetime.now(timezone.utc)
    assert service.run_once(engine, notify, now).sent == 1  # bob at once; alice's is held
    assert subjects(smtp, "alice") == [] and len(subjects(smtp, "bob")) == 1
    assert service.run_once(engine, notify, now + timedelta(hours=23)).sent == 0
    assert service.run_once(engine, notify, now + timedelta(hours=25)).sent == 1
    assert subjects(smtp, "alice") == ["[SPE] Daily digest: 1 notice(s)"]
    body = smtp.inbox.to("alice@example.org")[0].get_content()
    assert "Permit DEMO-2026-001: 80 % of the differential-privacy budget spent" in body
    assert "Open: https://spe.example.org/hub/home" in body
    assert service.run_once(engine, notify, now + timedelta(hours=50)).sent == 0
    code, out, _ = spe("notify", "list", "--state", "digested")
    assert code == 0 and "alice" in out and "dp.charge" in out
