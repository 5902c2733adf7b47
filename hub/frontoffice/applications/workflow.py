"""The application workflow as data: states, the owner of each state, the transition table, one
audit action per transition, and the guards (pairs) that decide every action.

    draft ─submit─► submitted ─take─► completeness_check ─mark_complete─► assessment ─recommend─► decision
                                        │        ▲                         │   ▲  │                  │ grant / grant_partially / refuse
                      request_information│        │provide_information     │   │  └─consult─► consultation ─end_consultation─┘
                                        ▼        │                         │   └──────────── return ─────────────── (decider)
                                  information_requested ◄─request_information┘
    withdraw: every state before a decision ─► withdrawn (applicant)
    extend: assessment, consultation, decision ─► same state, once (assessor or decider): +3 months

Two HDAB roles: the assessor takes an application (and is then its assessor), checks completeness,
assesses, consults data holders and recommends; a decider decides. The decider is never the
assessor of the same application, and no HDAB person acts on an application they made or are a
team member of. A data holder answers a consultation for the datasets it maintains (not a
transition: `application.consultation_response`).

Pure: no database, no web. Must not import `egress`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.exceptions import Conflict, Forbidden, Refused
from hub.frontoffice.roles import APPLICANT, ASSESSOR, DATA_HOLDER, DECIDER, Actor
from hub.permits.access import boolean_guard

# --- states ---------------------------------------------------------------------------------
DRAFT, SUBMITTED, COMPLETENESS, INFO_REQUESTED = "draft", "submitted", "completeness_check", "information_requested"
ASSESSMENT, CONSULTATION, DECISION = "assessment", "consultation", "decision"
GRANTED, PARTIALLY_GRANTED, REFUSED, WITHDRAWN = "granted", "partially_granted", "refused", "withdrawn"
STATES = (DRAFT, SUBMITTED, COMPLETENESS, INFO_REQUESTED, ASSESSMENT, CONSULTATION, DECISION,
          GRANTED, PARTIALLY_GRANTED, REFUSED, WITHDRAWN)
FINAL = frozenset({GRANTED, PARTIALLY_GRANTED, REFUSED, WITHDRAWN})
DECIDED = frozenset({GRANTED, PARTIALLY_GRANTED, REFUSED})
# the decision clock runs in these states (from the complete application to the decision)
CLOCK_RUNS = frozenset({ASSESSMENT, CONSULTATION, DECISION})

NOBODY = "nobody"
OWNER = {  # who must act next (queues, pages, reminders)
    DRAFT: APPLICANT, SUBMITTED: ASSESSOR, COMPLETENESS: ASSESSOR, INFO_REQUESTED: APPLICANT,
    ASSESSMENT: ASSESSOR, CONSULTATION: DATA_HOLDER, DECISION: DECIDER,
    GRANTED: NOBODY, PARTIALLY_GRANTED: NOBODY, REFUSED: NOBODY, WITHDRAWN: NOBODY,
}

# --- actions --------------------------------------------------------------------------------
SUBMIT, TAKE, REQUEST_INFO, PROVIDE_INFO = "submit", "take", "request_information", "provide_information"
MARK_COMPLETE, CONSULT, END_CONSULTATION, RECOMMEND = "mark_complete", "consult", "end_consultation", "recommend"
GRANT, GRANT_PARTIALLY, REFUSE, RETURN, WITHDRAW, EXTEND = ("grant", "grant_partially", "refuse", "return",
                                                            "withdraw", "extend")
DECISIONS = {GRANT: GRANTED, GRANT_PARTIALLY: PARTIALLY_GRANTED, REFUSE: REFUSED}

# (state, action) -> (new state, role that takes it). Anything not listed is illegal.
TRANSITIONS: dict[tuple[str, str], tuple[str, str]] = {
    (DRAFT, SUBMIT): (SUBMITTED, APPLICANT),
    (SUBMITTED, TAKE): (COMPLETENESS, ASSESSOR),
    (COMPLETENESS, REQUEST_INFO): (INFO_REQUESTED, ASSESSOR),
    (COMPLETENESS, MARK_COMPLETE): (ASSESSMENT, ASSESSOR),
    (INFO_REQUESTED, PROVIDE_INFO): (COMPLETENESS, APPLICANT),
    (ASSESSMENT, REQUEST_INFO): (INFO_REQUESTED, ASSESSOR),
    (ASSESSMENT, CONSULT): (CONSULTATION, ASSESSOR),
    (CONSULTATION, END_CONSULTATION): (ASSESSMENT, ASSESSOR),
    (ASSESSMENT, RECOMMEND): (DECISION, ASSESSOR),
    (DECISION, GRANT): (GRANTED, DECIDER),
    (DECISION, GRANT_PARTIALLY): (PARTIALLY_GRANTED, DECIDER),
    (DECISION, REFUSE): (REFUSED, DECIDER),
    (DECISION, RETURN): (ASSESSMENT, DECIDER),
    (ASSESSMENT, EXTEND): (ASSESSMENT, ASSESSOR),
    (CONSULTATION, EXTEND): (CONSULTATION, ASSESSOR),
    (DECISION, EXTEND): (DECISION, DECIDER),
    **{(s, WITHDRAW): (WITHDRAWN, APPLICANT)
       for s in (DRAFT, SUBMITTED, COMPLETENESS, INFO_REQUESTED, ASSESSMENT, CONSULTATION, DECISION)},
}
ACTIONS = tuple(sorted({a for (_, a) in TRANSITIONS}))
AUDIT_ACTION = {a: f"application.{a}" for a in ACTIONS}
AUDIT_CREATE, AUDIT_UPDATE = "application.create", "application.update"
AUDIT_CONSULTATION_RESPONSE = "application.consultation_response"
OPINIONS = ("no_objection", "objection", "conditions")


def next_state(state: str, action: str) -> str:
    try:
        return TRANSITIONS[(state, action)][0]
    except KeyError:
        allowed = sorted(a for (s, a) in TRANSITIONS if s == state)
        hint = f"; from {state.replace('_', ' ')} one can: {', '.join(allowed)}" if allowed else ""
        raise Conflict(f"an application that is {state.replace('_', ' ')} cannot {action.replace('_', ' ')}{hint}") from None


# --- the facts a guard needs --------------------------------------------------------------------

@dataclass(frozen=True)
class ApplicationFacts:
    id: str
    state: str
    applicant: str
    team: frozenset = frozenset()  # usernames of the team (the applicant included)
    assessor: str | None = None
    extended: bool = False
    consulted: frozenset = frozenset()  # datasets whose holders were consulted
    maintainers: dict = field(default_factory=dict)  # dataset -> frozenset of data-holder usernames


def _role_of(action: str) -> str:
    for (_, a), (_, role) in TRANSITIONS.items():
        if a == action:
            return role
    raise Conflict(f"unknown action {action!r}")


def check_independent(app: ApplicationFacts, actor: Actor) -> None:
    """HDAB staff never act on an application they made or are a team member of."""
    if actor.username == app.applicant or actor.username in app.team:
        raise Forbidden(f"{actor.username} is on the team of application {app.id}: only independent HDAB staff act on it")


def check_can(action: str, app: ApplicationFacts, actor: Actor) -> None:
    """May `actor` take `action` on `app` now? Forbidden (who) or Conflict (state) with the reason."""
    next_state(app.state, action)
    if action == EXTEND:
        role = ASSESSOR if app.state in (ASSESSMENT, CONSULTATION) else DECIDER
    else:
        role = _role_of(action)
    if role == APPLICANT:
        if actor.username != app.applicant:
            raise Forbidden(f"only the applicant ({app.applicant}) can {action.replace('_', ' ')} application {app.id}")
        return
    if not actor.has(role):
        raise Forbidden(f"{actor.username} is not an HDAB {role}")
    check_independent(app, actor)
    if role == ASSESSOR and action != TAKE and app.assessor != actor.username:
        raise Forbidden(f"application {app.id} is assessed by {app.assessor}; only they can {action.replace('_', ' ')} it")
    if role == DECIDER and actor.username == app.assessor:
        raise Forbidden(f"{actor.username} assessed application {app.id}; a different decider must decide it")
    if action == EXTEND and app.extended:
        raise Refused(f"the deadline of application {app.id} was already extended once (EHDS Art. 68 allows one extension)")


def check_can_respond(app: ApplicationFacts, actor: Actor, dataset: str) -> None:
    """A data holder answers the consultation for a dataset it maintains, while it is open."""
    if app.state != CONSULTATION:
        raise Conflict(f"application {app.id} is {app.state.replace('_', ' ')}, not in data holder consultation")
    if not actor.has(DATA_HOLDER):
        raise Forbidden(f"{actor.username} is not a data holder")
    if dataset not in app.consulted:
        raise Refused(f"dataset {dataset!r} is not part of the consultation on application {app.id}")
    if actor.username not in app.maintainers.get(dataset, frozenset()):
        raise Forbidden(f"{actor.username} does not maintain dataset {dataset!r}")


def check_can_view(app: ApplicationFacts, actor: Actor) -> None:
    """The team sees its application; HDAB staff see every submitted one; data holders see those
    they are consulted on."""
    if actor.username == app.applicant or actor.username in app.team:
        return
    if app.state != DRAFT and (actor.has(ASSESSOR) or actor.has(DECIDER)):
        return
    if actor.has(DATA_HOLDER) and any(actor.username in app.maintainers.get(d, ()) for d in app.consulted):
        return
    raise Forbidden(f"{actor.username} may not see application {app.id}")


can = boolean_guard(check_can)
can_respond = boolean_guard(check_can_respond)
can_view = boolean_guard(check_can_view)


def owner_of(state: str) -> str:
    return OWNER[state]
