"""Pure parts of the front office at their boundaries: the decision clock (EHDS Art. 68: three months
from the complete application, one extension, paused while information is requested), reminders
once each, CPU-hours from workspace events, GB-months from daily samples, catalogue search facets."""

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from hub.frontoffice.applications import workflow as wf
from hub.frontoffice.applications.deadlines import add_months, clock, pause, reminders_due, resume
from hub.frontoffice.catalogue.search import search
from hub.frontoffice.fees.metering import cpu_hours, month_bounds, storage_gb_months

RULES = {"decision_months": 3, "extension_months": 3, "pause_clock_on_information_request": True,
         "reminder_days": [14, 7, 1]}


@pytest.mark.parametrize("day, months, want", [(date(2026, 1, 31), 1, date(2026, 2, 28)),
                                               (date(2026, 11, 30), 3, date(2027, 2, 28)),
                                               (date(2024, 11, 29), 3, date(2025, 2, 28)),
                                               (date(2026, 3, 15), 6, date(2026, 9, 15))])
def test_add_months_clamps_to_the_month_end(day, months, want):
    assert add_months(day, months) == want


def test_the_clock_starts_when_the_application_is_complete():
    assert clock({}, wf.COMPLETENESS, date(2026, 3, 1), RULES).due is None
    c = clock({"complete_on": "2026-03-10"}, wf.ASSESSMENT, date(2026, 3, 20), RULES)
    assert (c.due, c.days_left, c.overdue) == (date(2026, 6, 10), 82, False)
    c = clock({"complete_on": "2026-03-10", "extended": True}, wf.DECISION, date(2026, 6, 11), RULES)
    assert c.due == date(2026, 9, 10) and not c.overdue
    assert clock({"complete_on": "2026-03-10"}, wf.DECISION, date(2026, 6, 11), RULES).overdue


def test_an_information_request_stops_the_clock_and_the_days_are_added():
    facts = pause({"complete_on": "2026-03-10"}, date(2026, 4, 1), RULES)
    assert clock(facts, wf.INFO_REQUESTED, date(2026, 4, 21), RULES).paused
    assert clock(facts, wf.INFO_REQUESTED, date(2026, 4, 21), RULES).due == date(2026, 6, 30)  # 20 days so far
    facts = resume(facts, date(2026, 4, 11))
    assert facts["paused_days"] == 10 and "paused_since" not in facts
    assert clock(facts, wf.ASSESSMENT, date(2026, 5, 1), RULES).due == date(2026, 6, 20)
    # before the application is complete there is no clock to stop; by HDAB choice it may run on
    assert pause({}, date(2026, 4, 1), RULES) == {}
    assert pause({"complete_on": "2026-03-10"}, date(2026, 4, 1),
                 {**RULES, "pause_clock_on_information_request": False}) == {"complete_on": "2026-03-10"}


def test_a_decided_application_keeps_its_due_date_and_has_no_days_left():
    c = clock({"complete_on": "2026-03-10", "decided_on": "2026-04-01"}, wf.GRANTED, date(2027, 1, 1), RULES)
    assert c.due == date(2026, 6, 10) and c.days_left is None and not c.overdue


def test_reminders_are_due_once_per_threshold_and_once_when_overdue():
    apps = [("A", wf.ASSESSMENT, {"complete_on": "2026-03-10"})]  # due 2026-06-10
    assert reminders_due(apps, date(2026, 5, 26), RULES, set()) == []  # 15 days left
    first = reminders_due(apps, date(2026, 5, 27), RULES, set())
    assert [(r.action, r.days) for r in first] == [("application.reminder", 14)]
    assert reminders_due(apps, date(2026, 5, 28), RULES, {("A", first[0].key)}) == []
    seven = reminders_due(apps, date(2026, 6, 3), RULES, {("A", first[0].key)})
    assert [r.days for r in seven] == [7]
    over = reminders_due(apps, date(2026, 6, 12), RULES, set())
    assert [(r.action, r.days) for r in over] == [("application.overdue", 2)]
    assert reminders_due([("A", wf.GRANTED, {"complete_on": "2026-03-10"})], date(2026, 6, 12), RULES, set()) == []


T = "2026-03-{:02d}T{:02d}:00:00.000000Z"


def ev(action, day, hour, actor="bob", server="p-1", **detail):
    return {"ts": T.format(day, hour), "action": action, "actor": actor, "outcome": "ok",
            "detail": {"server": server, **detail}}


def test_cpu_hours_pair_starts_and_ends_per_user_and_server_and_clip_to_the_month():
    start, end = month_bounds("2026-03")
    now = datetime(2026, 4, 15, tzinfo=timezone.utc)
    events = [
        ev("workspace.spawn", 2, 9, cpu_limit=2.0), ev("workspace.stop", 2, 12),  # 3 h x 2 CPU
        ev("workspace.spawn", 3, 9, actor="alice"),  # default 1 CPU, ended by the lifecycle service
        ev("workspace.terminate", 3, 10, actor="system", user="alice"),
        {**ev("workspace.spawn", 4, 9), "outcome": "refused"},  # refused spawns cost nothing
        ev("workspace.spawn", 31, 22, cpu_limit=1.5),  # still running at the month's end: 2 h in March
    ]
    assert cpu_hours(events, start, end, now, default_cpu=1.0) == Decimal("6") + Decimal("1") + Decimal("3")


def test_storage_is_billed_per_day_at_the_latest_sample():
    gb = 10**9
    samples = [(date(2026, 2, 20), 2 * gb), (date(2026, 3, 16), 4 * gb)]
    # 15 days at 2 GB + 16 days at 4 GB = 94 GB-days / 31
    assert storage_gb_months(samples, "2026-03", date(2026, 4, 1)) == (Decimal(94) / 31).quantize(Decimal("0.0001"))
    assert storage_gb_months(samples, "2026-03", date(2026, 3, 15)) == (Decimal(30) / 31).quantize(Decimal("0.0001"))
    assert storage_gb_months([], "2026-03", date(2026, 4, 1)) == 0


def _entry(name, holder, theme, country, rights="NON_PUBLIC", lang="ENG", title="x", years=("2000", "2010")):
    return {"dataset": name, "holder": {"id": holder, "name": holder.upper()}, "theme": [theme],
            "title": {"en": title}, "description": {"en": "d"}, "keywords": {"en": ["kw"], "fr": ["hémorragie"]},
            "coverage": {"spatial": [country], "from": f"{years[0]}-01-01", "to": f"{years[1]}-12-31"},
            "access_rights": rights, "languages": [lang]}


ENTRIES = [_entry("a", "chu", "HEAL", "FRA", title="Cancer registry"),
           _entry("b", "chu", "SOCI", "FRA", rights="RESTRICTED", lang="FRA"),
           _entry("c", "ohdsi", "HEAL", "USA", title="Synthetic cancer EHR", years=("1990", "1995"))]


def test_full_text_folds_case_and_accents_and_needs_every_word():
    assert [e["dataset"] for e in search(ENTRIES, "CANCER").entries] == ["a", "c"]
    assert [e["dataset"] for e in search(ENTRIES, "synthetic cancer").entries] == ["c"]
    assert len(search(ENTRIES, "hemorragie").entries) == 3


def test_facets_count_with_the_other_filters_applied():
    r = search(ENTRIES, "", {"holder": {"chu"}})
    assert [e["dataset"] for e in r.entries] == ["a", "b"]
    assert r.facets["holder"] == {"chu": 2, "ohdsi": 1}  # its own facet ignores its own filter
    assert r.facets["theme"] == {"HEAL": 1, "SOCI": 1}
    assert r.facets["access_rights"] == {"NON_PUBLIC": 1, "RESTRICTED": 1}
    assert r.facets["language"] == {"ENG": 1, "FRA": 1}
    both = search(ENTRIES, "", {"holder": {"chu"}, "coverage": {"USA"}})
    assert both.total == 0 and both.facets["coverage"] == {"FRA": 2}


def test_coverage_in_time():
    assert [e["dataset"] for e in search(ENTRIES, covers=1992).entries] == ["c"]
    assert [e["dataset"] for e in search(ENTRIES, covers=2005).entries] == ["a", "b"]
