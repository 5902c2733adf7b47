"""Pure rules of the notifier (which audit event mails whom, with what) and of the OIDC
multi-factor check, as tables."""

from __future__ import annotations

import pytest

from hub.audit.events import EVENT_TYPES
from hub.hubapp.oidc import SECOND_FACTORS, used_mfa
from hub.notify import rules
from hub.notify.rules import Spec, make_notice

URL = "https://spe.example.org/"


def event(action, detail=None, outcome="ok", actor="carla", **kw):
    return {"seq": 7, "action": action, "actor": actor, "permit_id": kw.get("permit_id", "P-1"),
            "object_id": kw.get("object_id", "r-1"), "outcome": outcome, "detail": detail or {}}


@pytest.mark.parametrize("action, recipients, mandatory", [
    ("egress.check", (Spec(rules.CHECKERS),), False),
    ("egress.approve", (Spec(rules.AUTHOR, "egress.create"), Spec(rules.CHECKERS)), False),
    ("egress.return", (Spec(rules.AUTHOR, "egress.create"),), False),
    ("egress.reject", (Spec(rules.AUTHOR, "egress.create"),), False),
    ("egress.release", (Spec(rules.AUTHOR, "egress.create"),), False),
    ("import.create", (Spec(rules.CHECKERS),), False),
    ("import.approve", (Spec(rules.AUTHOR, "import.create"),), False),
    ("import.reject", (Spec(rules.AUTHOR, "import.create"),), False),
    ("session.meter_warning", (Spec(rules.USER, "carla"),), False),
    ("optout.propagate", (Spec(rules.PERMIT_MEMBERS),), True),
])
def test_who_each_event_mails(action, recipients, mandatory):
    n = make_notice(event(action), URL)
    assert n.recipients == recipients and n.mandatory is mandatory
    # nobody is told of their own action, except of a warning about their own use
    assert n.exclude == (() if action == "session.meter_warning" else ("carla",))


@pytest.mark.parametrize("to, extra", [
    ("submitted", Spec(rules.ASSESSOR)), ("completeness_check", Spec(rules.ASSESSOR)),
    ("assessment", Spec(rules.ASSESSOR)), ("decision", Spec(rules.GROUP, "hdab-deciders")),
    ("granted", None), ("refused", None), ("information_requested", None),
])
def test_application_changes_mail_the_applicant_and_whoever_acts_next(to, extra):
    n = make_notice(event("application.submit", {"from": "draft", "to": to}, object_id="a-1"), URL)
    assert n.recipients == ((Spec(rules.APPLICANT),) + ((extra,) if extra else ()))
    assert n.mandatory and f"{URL}services/frontoffice/applications/a-1" in n.body


def test_every_application_transition_has_a_rule():
    transitions = [a for a in EVENT_TYPES if a.startswith("application.") and "from" in EVENT_TYPES[a].required]
    assert transitions and all(a in rules.RULES for a in transitions)


@pytest.mark.parametrize("outcome", ["refused", "failed"])
def test_refused_or_failed_events_mail_nobody(outcome):
    assert make_notice(event("egress.check", outcome=outcome), URL) is None


def test_unknown_events_mail_nobody_and_free_text_never_travels():
    assert make_notice(event("dp.query"), URL) is None
    n = make_notice(event("egress.return", {"from": "in_review", "to": "returned",
                                            "comment": "cell 3 shows 2 patients aged 97"}), URL)
    assert "97" not in n.body and "97" not in n.subject
    assert n.subject == "[SPE] Output request r-1 (permit P-1) was returned for changes"
    assert f"{URL}services/egress/requests/r-1" in n.body


def test_reminders_mail_the_named_people_and_deciders_at_the_decision_stage():
    n = make_notice(event("application.reminder", {"due": "2027-01-01", "days_left": 7, "notify": ["hugo"],
                                                   "state": "decision", "owner": "decider"}, actor="system"), URL)
    assert n.recipients == (Spec(rules.USER, "hugo"), Spec(rules.GROUP, "hdab-deciders")) and n.exclude == ()
    assert "in 7 day(s)" in n.body


@pytest.mark.parametrize("attempts, wait", [(1, 60), (2, 120), (3, 240), (20, 86400)])
def test_backoff_doubles_and_is_capped_at_a_day(attempts, wait):
    assert rules.backoff_seconds(attempts, 60) == wait


@pytest.mark.parametrize("claims, acr_values, ok", [
    ({"amr": ["pwd"]}, set(), False),
    ({"amr": ["pwd", "otp"]}, set(), True),
    ({"amr": ["mfa"]}, set(), True),
    ({"amr": "hwk"}, set(), True),
    ({"amr": ["pwd", "pin"]}, set(), False),  # two things one knows are one factor
    ({}, set(), False),
    ({"acr": "gold"}, {"gold"}, True),
    ({"acr": "silver"}, {"gold"}, False),
])
def test_multi_factor_by_amr_or_acr(claims, acr_values, ok):
    assert used_mfa(claims, SECOND_FACTORS, acr_values) is ok


@pytest.mark.parametrize("epsilon, remaining, total, crossed", [
    (0.7, 0.3, 2.0, True),    # 1.0 -> 1.7 of 2.0: across 1.6
    (0.6, 0.4, 2.0, True),    # exactly at 80 %
    (0.1, 0.2, 2.0, False),   # 1.7 -> 1.8: already past
    (0.5, 1.0, 2.0, False),   # 0.5 -> 1.0: not yet
])
def test_a_budget_warning_only_when_a_charge_crosses_80_percent(epsilon, remaining, total, crossed):
    e = event("dp.charge", {"epsilon": epsilon, "epsilon_remaining": remaining, "scope": "*"}, actor="bob")
    e["context"] = {"epsilon_total": total}
    n = make_notice(e, URL)
    assert (n is not None) is crossed
    if n:
        assert n.recipients == (Spec(rules.PERMIT_MEMBERS),) and n.exclude == ()
    e["detail"]["scope"] = "bob"  # a member's own budget: only that member
    if crossed:
        assert make_notice(e, URL).recipients == (Spec(rules.USER, "bob"),)


def test_permits_ending_within_the_window_once_per_end_date():
    from datetime import date

    from hub.notify.ending import permits_ending

    today = date(2027, 3, 1)
    permits = [("P-soon", "active", date(2027, 3, 15)), ("P-later", "active", date(2027, 3, 16)),
               ("P-ended", "expired", date(2027, 3, 5)), ("P-past", "active", date(2027, 2, 28)),
               ("P-told", "active", date(2027, 3, 2))]
    assert permits_ending(permits, today, 14, {("P-told", "2027-03-02")}) == [("P-soon", date(2027, 3, 15), 14)]


def test_members_learn_of_a_new_extract_version_but_never_who_left():
    n = make_notice(event("optout.propagate", {"extract_version": 3, "removed_versions": [2],
                                               "members_to_tell": ["alice", "bob"]}, actor="citizens",
                          object_id="P-1/3"), URL)
    assert n.mandatory and "version 3" in n.subject
    text = n.subject + n.body
    assert "alice" not in text and "bob" not in text and "cora" not in text
