"""Which audit events become which mails, to whom: the rule table, pure (no I/O).

The notifier subscribes to the audit trail instead of being called by every service: an event
type that is in `RULES` (or, as a family, in `FAMILY_RULES`) turns into a `Notice` whose
recipients are *specs* (`Spec`) resolved later against the registry (hub.notify.recipients):
the author of a request, the independent checkers of a permit, an application's applicant or
assessor, a group, or a user named in the event. Refused and failed events never mail.

A mail holds ids, states and a link, never data from an extract and never free text typed by
someone (comments can quote data): the reader signs in to see the rest.
Must not import `egress`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

# recipient specs: (kind, argument)
AUTHOR = "author"  # the actor of the object's creating event (argument: that event's action)
CHECKERS = "checkers"  # output checkers who are not members of the event's permit
APPLICANT = "applicant"  # the application's applicant (hub.frontoffice)
ASSESSOR = "assessor"  # the application's assessor, or every assessor before one took it
GROUP = "group"  # every member of a group (argument: the group)
USER = "user"  # one user, named (argument: the user name)
PERMIT_MEMBERS = "permit_members"  # every member of the event's permit
SHARED_BUDGET = "*"  # a dp.charge's scope when the permit's budget is shared by its members
BUDGET_WARNING_SHARE = 0.8  # mail when a charge crosses 80 % of a differential-privacy budget


@dataclass(frozen=True)
class Spec:
    kind: str
    arg: str = ""


@dataclass(frozen=True)
class Notice:
    recipients: tuple[Spec, ...]
    subject: str
    body: str
    mandatory: bool  # mandatory mail ignores the person's opt-out (decisions on their own application)
    exclude: tuple[str, ...] = ()  # never mail these (the person who acted)


@dataclass(frozen=True)
class Rule:
    recipients: Callable[[dict], tuple[Spec, ...]]
    subject: str  # str.format over the event's fields (action, object_id, permit_id, from, to, ...)
    link: str  # path under the public URL
    mandatory: bool = False
    line: str = ""  # the first line of the body, formatted like the subject
    when: Callable[[dict], bool] | None = None  # only events for which this holds mail
    tell_actor: bool = False  # the person who acted is told too (a warning about their own use)


EGRESS_PAGE = "services/egress/requests/{object_id}"
IMPORT_PAGE = "services/egress/imports/{object_id}"
APPLICATION_PAGE = "services/frontoffice/applications/{object_id}"
HOME_PAGE = "hub/home"


def _fixed(*specs: Spec):
    return lambda event: specs


def _application_recipients(event: dict) -> tuple[Spec, ...]:
    """The applicant (their application moved) and whoever must act next in the new state."""
    out = [Spec(APPLICANT)]
    owner = {"submitted": ASSESSOR, "completeness_check": ASSESSOR, "assessment": ASSESSOR,
             "decision": "decider"}.get(event["detail"].get("to", ""))
    if owner == ASSESSOR:
        out.append(Spec(ASSESSOR))
    elif owner == "decider":
        out.append(Spec(GROUP, "hdab-deciders"))
    return tuple(out)


def _reminder_recipients(event: dict) -> tuple[Spec, ...]:
    """The people the front office named (assessor; applicant when overdue), and the deciders
    while the application waits for a decision."""
    detail = event["detail"]
    named = detail.get("notify")
    out = [Spec(USER, str(u)) for u in (named if isinstance(named, list) else []) if u]
    if detail.get("state") == "decision" or detail.get("owner") == "decider":
        out.append(Spec(GROUP, "hdab-deciders"))
    return tuple(out)


def _named_user(event: dict) -> tuple[Spec, ...]:
    """The user an event is about: detail `user`, else the actor (e.g. session.meter_warning)."""
    user = event["detail"].get("user") or event["actor"]
    return (Spec(USER, str(user)),)


def _budget_recipients(event: dict) -> tuple[Spec, ...]:
    """A shared budget concerns every member; a member's own budget only that member."""
    if event["detail"].get("scope", SHARED_BUDGET) == SHARED_BUDGET:
        return (Spec(PERMIT_MEMBERS),)
    return (Spec(USER, event["actor"]),)


def crossed_budget_warning(event: dict) -> bool:
    """Did this charge take the budget's spent share across BUDGET_WARNING_SHARE? `context`
    (added by the notifier from the permit) holds the budget's total epsilon."""
    total = (event.get("context") or {}).get("epsilon_total")
    detail = event["detail"]
    try:
        total, epsilon, remaining = float(total), float(detail["epsilon"]), float(detail["epsilon_remaining"])
    except (KeyError, TypeError, ValueError):
        return False
    if total <= 0:
        return False
    after = total - remaining
    return after - epsilon < BUDGET_WARNING_SHARE * total <= after


_OUTPUT = "Output request {object_id} (permit {permit_id})"
_IMPORT = "Import request {object_id} (permit {permit_id})"

RULES: dict[str, Rule] = {
    # egress: the checks ran, the request waits for two independent reviews
    "egress.check": Rule(_fixed(Spec(CHECKERS)), _OUTPUT + " waits for review", EGRESS_PAGE,
                         line="An output request waits for output checking. You are not a member of its permit."),
    "egress.approve": Rule(_fixed(Spec(AUTHOR, "egress.create"), Spec(CHECKERS)), _OUTPUT + " was approved",
                           EGRESS_PAGE, line="The output request was approved; a checker releases it next."),
    "egress.return": Rule(_fixed(Spec(AUTHOR, "egress.create")), _OUTPUT + " was returned for changes",
                          EGRESS_PAGE, line="The checkers asked for changes: read their comments on the request page."),
    "egress.reject": Rule(_fixed(Spec(AUTHOR, "egress.create")), _OUTPUT + " was rejected", EGRESS_PAGE,
                          line="The checkers rejected the output request."),
    "egress.release": Rule(_fixed(Spec(AUTHOR, "egress.create")), _OUTPUT + " was released", EGRESS_PAGE,
                           line="The outputs were released: download them from the request page."),
    # inflow: import requests
    "import.create": Rule(_fixed(Spec(CHECKERS)), _IMPORT + " waits for review", IMPORT_PAGE,
                          line="A researcher asked to import a file or a package into a permit's workspaces."),
    **{f"import.{a}": Rule(_fixed(Spec(AUTHOR, "import.create")), _IMPORT + f" was {done}", IMPORT_PAGE,
                           line=f"Your import request was {done}.")
       for a, done in (("approve", "approved"), ("reject", "rejected"), ("revoke", "revoked"))},
    # the front office: every application transition, and its deadlines
    "application.reminder": Rule(_reminder_recipients, "Application {object_id}: decision due {due}",
                                 APPLICATION_PAGE, mandatory=True,
                                 line="The decision deadline of this application is in {days_left} day(s)."),
    "application.overdue": Rule(_reminder_recipients, "Application {object_id}: decision overdue since {due}",
                                APPLICATION_PAGE, mandatory=True,
                                line="The decision deadline of this application passed {days_over} day(s) ago."),
    # the browser-channel meter (hub.sessionlog): a researcher near the day's limit
    "session.meter_warning": Rule(_named_user, "Workspace of permit {permit_id}: browser transfer meter warning",
                                  HOME_PAGE, line="Your workspace's browser transfer meter is near today's limit.",
                                  tell_actor=True),
    # differential privacy: a charge that takes a budget past 80 %
    "dp.charge": Rule(_budget_recipients, "Permit {permit_id}: 80 % of the differential-privacy budget spent",
                      HOME_PAGE, when=crossed_budget_warning, tell_actor=True,
                      line="The permit's differential-privacy budget has {epsilon_remaining} epsilon left."),
    # a citizen's opt-out reached the permit (hub.citizens.optout): a new extract version, never who left
    "optout.propagate": Rule(_fixed(Spec(PERMIT_MEMBERS)), "Permit {permit_id}: new extract version {extract_version}",
                             HOME_PAGE, mandatory=True,
                             line="The permit's extract was made again (version {extract_version}) after opt-outs "
                                  "under EHDS Art. 71; earlier versions were deleted. Restart your workspace to use "
                                  "it; results computed on an earlier version may differ slightly."),
    # the end of a permit (emitted by the notifier, hub.notify.ending)
    "permit.ending_soon": Rule(_fixed(Spec(PERMIT_MEMBERS), Spec(GROUP, "operators")),
                               "Permit {permit_id} ends on {valid_until}", HOME_PAGE, mandatory=True,
                               line="The permit ends in {days_left} day(s), on {valid_until}: its workspaces stop "
                                    "then. Ask for the release of outputs before."),
}

APPLICATION_TRANSITIONS = ("submit", "take", "request_information", "provide_information", "mark_complete",
                           "consult", "end_consultation", "recommend", "grant", "grant_partially", "refuse",
                           "return", "withdraw", "extend")
for _a in APPLICATION_TRANSITIONS:
    RULES[f"application.{_a}"] = Rule(
        _application_recipients, "Application {object_id} is now {to}", APPLICATION_PAGE, mandatory=True,
        line="The application moved from {from} to {to} ({verb}).")


class _Fields(dict):
    def __missing__(self, key):  # a field the event lacks reads as "?" instead of failing the round
        return "?"


def _fields(event: dict) -> _Fields:
    f = _Fields({k: v for k, v in event["detail"].items() if isinstance(v, (str, int, float))})
    f.update(action=event["action"], object_id=event.get("object_id") or "-", permit_id=event.get("permit_id") or "-",
             seq=event["seq"], verb=event["action"].split(".", 1)[-1].replace("_", " "))
    return f


def make_notice(event: dict, public_url: str) -> Notice | None:
    """The mail this audit event asks for, or None. `event`: seq, action, actor, permit_id,
    object_id, outcome, detail (a dict)."""
    rule = RULES.get(event["action"])
    if rule is None or event.get("outcome", "ok") != "ok":
        return None
    if rule.when is not None and not rule.when(event):
        return None
    recipients = rule.recipients(event)
    if not recipients:
        return None
    f = _fields(event)
    link = public_url + rule.link.format_map(f)
    subject = "[SPE] " + rule.subject.format_map(f)
    body = "\n".join([
        rule.line.format_map(f), "",
        f"Open: {link}", "",
        "This mail carries no data: sign in to see the details.",
        f"(SPE audit event #{event['seq']}, {event['action']})",
    ]) + "\n"
    exclude = () if event["actor"] == "system" or rule.tell_actor else (event["actor"],)
    return Notice(recipients=recipients, subject=subject[:300], body=body, mandatory=rule.mandatory, exclude=exclude)


def backoff_seconds(attempts: int, base_seconds: int, cap_seconds: int = 86400) -> int:
    """Wait before the next try after `attempts` failed sends: base, 2*base, 4*base, ... capped."""
    return min(cap_seconds, base_seconds * 2 ** max(0, attempts - 1))
