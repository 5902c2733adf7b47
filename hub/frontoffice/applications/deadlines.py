"""Legal deadlines of an application (pure).

EHDS Art. 68: the HDAB decides within three months of receiving a *complete* application, and may
extend that period once by three more months, telling the applicant why. So the clock starts when
the assessor marks the application complete (`complete_on`); an information request during the
completeness check means the application is not complete yet. An information request after that
is not addressed by the Regulation; by HDAB procedure (`pause_clock_on_information_request`,
default on) the clock stops until the applicant answers, and the days it stood still are added.
EHDS Art. 69 gives data requests the same three months.

Reminders: `application.reminder` when the deadline is `reminder_days` away and
`application.overdue` once it has passed, each emitted once (the notifier mails them).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date

from hub.frontoffice.applications.workflow import FINAL


def add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year = day.year + month // 12
    month = month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class Clock:
    started: date | None
    due: date | None
    paused: bool
    paused_days: int
    extended: bool
    days_left: int | None  # negative when overdue

    @property
    def overdue(self) -> bool:
        return self.days_left is not None and self.days_left < 0


def clock(facts: dict, state: str, today: date, deadlines: dict) -> Clock:
    """The decision clock of an application from its workflow facts."""
    started = date.fromisoformat(facts["complete_on"]) if facts.get("complete_on") else None
    extended = bool(facts.get("extended"))
    paused_since = date.fromisoformat(facts["paused_since"]) if facts.get("paused_since") else None
    paused_days = int(facts.get("paused_days", 0))
    if started is None:
        return Clock(None, None, False, paused_days, extended, None)
    end = date.fromisoformat(facts["decided_on"]) if state in FINAL and facts.get("decided_on") else today
    if paused_since is not None:
        paused_days += (end - paused_since).days
    months = deadlines["decision_months"] + (deadlines["extension_months"] if extended else 0)
    due = date.fromordinal(add_months(started, months).toordinal() + paused_days)
    days_left = None if state in FINAL else (due - today).days
    return Clock(started, due, paused_since is not None, paused_days, extended, days_left)


def pause(facts: dict, today: date, deadlines: dict) -> dict:
    """Facts after an information request: the clock stops if it runs and the HDAB pauses it."""
    if facts.get("complete_on") and not facts.get("paused_since") and deadlines.get("pause_clock_on_information_request", True):
        return {**facts, "paused_since": today.isoformat()}
    return facts


def resume(facts: dict, today: date) -> dict:
    """Facts after the applicant answers: the days the clock stood still are added to the deadline."""
    if not facts.get("paused_since"):
        return facts
    stood = (today - date.fromisoformat(facts["paused_since"])).days
    return {**{k: v for k, v in facts.items() if k != "paused_since"}, "paused_days": int(facts.get("paused_days", 0)) + stood}


@dataclass(frozen=True)
class Reminder:
    application_id: str
    action: str  # application.reminder | application.overdue
    due: date
    days: int  # days left (reminder) or days over (overdue)
    key: str  # once per (application, key)


def reminders_due(apps: list[tuple[str, str, dict]], today: date, deadlines: dict,
                  already: set[tuple[str, str]]) -> list[Reminder]:
    """Reminders to emit now for [(id, state, facts)]; `already`: (id, key) pairs emitted before."""
    out = []
    thresholds = sorted(set(deadlines.get("reminder_days") or []), reverse=True)
    for app_id, state, facts in apps:
        if state in FINAL:
            continue
        c = clock(facts, state, today, deadlines)
        if c.due is None or c.paused:
            continue
        if c.days_left < 0:
            key = f"overdue:{c.due.isoformat()}"
            if (app_id, key) not in already:
                out.append(Reminder(app_id, "application.overdue", c.due, -c.days_left, key))
            continue
        hit = [t for t in thresholds if c.days_left <= t]
        if hit:
            key = f"reminder:{c.due.isoformat()}:{min(hit)}"
            if (app_id, key) not in already:
                out.append(Reminder(app_id, "application.reminder", c.due, c.days_left, key))
    return out
