"""The daily byte meter of what a workspace sends to the browser, per (permit, user, day).

Counted on the session recorder's path: contents-API bodies, kernel channel frames (IOPub
outputs and every other reply), terminal output; not the server's static assets. The budget
of a day is the permit's `browser.daily_budget_bytes` (default 25 MiB) plus what an operator
raised for that day (`spe meter raise`, audited). A message that would take the day's total
over the budget is withheld (the researcher sees a notice instead); the first time a day
passes 80 % the researcher is warned once.

Pure accounting (`Entry.charge`); the table and its I/O are in `hub.sessionlog.meterdb`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from hub.sessionlog.outflow import WARN_FRACTION

CONTROL_ALLOWANCE_BYTES = 1024 * 1024


def today(now: datetime | None = None) -> str:
    """The meter's day: the UTC date (YYYY-MM-DD)."""
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).date().isoformat()


@dataclass(frozen=True)
class Key:
    permit_id: str
    user: str
    day: str


@dataclass(frozen=True)
class Charge:
    delivered: bool  # False: withheld
    warn: bool  # this charge passed 80 % of the budget for the first time today
    used_bytes: int  # after the charge
    budget_bytes: int


@dataclass
class Entry:
    """One (permit, user, day): the stored totals plus the changes not yet written."""

    used: int = 0
    withheld: int = 0
    raised: int = 0  # bytes an operator added for this day
    warned: bool = False
    base_budget: int = 0  # the permit's daily budget
    pending_used: int = 0
    pending_withheld: int = 0
    pending_warned: bool = False
    full: bool = False  # a message was withheld: the day is used up until an operator raise

    def raise_to(self, raised: int) -> None:
        if raised > self.raised:
            self.raised, self.full = raised, False

    @property
    def budget(self) -> int:
        return self.base_budget + self.raised

    @property
    def exhausted(self) -> bool:
        return self.full or self.used >= self.budget

    def charge(self, size: int, control: bool = False) -> Charge:
        """Deliver `size` bytes if they fit in today's budget, else withhold them. A `control`
        message (a notice, a bare status) may use CONTROL_ALLOWANCE_BYTES over the budget, so
        the notebook keeps working and the researcher is told, but nothing more gets out."""
        if control:
            fits = self.used + size <= self.budget + CONTROL_ALLOWANCE_BYTES
        else:
            fits = not self.full and self.used + size <= self.budget
        if not fits:
            self.full = self.full or not control
            self.withheld += size
            self.pending_withheld += size
            return Charge(False, False, self.used, self.budget)
        self.used += size
        self.pending_used += size
        warn = not control and not self.warned and self.used >= WARN_FRACTION * self.budget
        if warn:
            self.warned = self.pending_warned = True
        return Charge(True, warn, self.used, self.budget)

    def take_pending(self) -> tuple[int, int, bool]:
        out = (self.pending_used, self.pending_withheld, self.pending_warned)
        self.pending_used = self.pending_withheld = 0
        self.pending_warned = False
        return out

    def give_back(self, pending: tuple[int, int, bool]) -> None:
        """A write that failed: keep its changes for the next one."""
        self.pending_used += pending[0]
        self.pending_withheld += pending[1]
        self.pending_warned = self.pending_warned or pending[2]


def mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


def warning_text(used: int, budget: int) -> str:
    return (f"[SPE] You have used {mib(used)} of today's {mib(budget)} browser output budget for this permit. "
            "At 100 % further output is withheld until tomorrow (UTC). Submit results for egress review "
            "instead of printing them.")


def withheld_text(budget: int) -> str:
    return (f"[SPE] Output withheld: today's {mib(budget)} browser output budget for this permit is used up. "
            "It renews tomorrow (UTC); an operator can raise it. What was withheld is recorded in the audit trail. "
            "Submit results for egress review.")


def truncated_text(size: int, kept: int) -> str:
    return (f"\n[SPE] Output truncated: this message was {mib(size)}; only the first {mib(kept)} is shown "
            "(limit per message). Submit results for egress review.")


def meter_summary(info: dict) -> str:
    """One paragraph for the researcher's meter page (`info` as the recorder builds it)."""
    state = ("Output is withheld until tomorrow (UTC) or until an operator raises your budget."
             if info["withholding"] else "Output reaches your browser.")
    return (f"Browser output of permit {info['permit']} for {info['user']} on {info['day']} (UTC): "
            f"{mib(info['used_bytes'])} of {mib(info['budget_bytes'])} used ({info['used_percent']} %), "
            f"{mib(info['withheld_bytes'])} withheld. {state}")
