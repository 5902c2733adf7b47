"""The egress request workflow as data: states, who owns each state, the transition table,
the audit action of each transition, and the guards that decide every action.

    draft ─submit─► submitted ─check─► checked ─review─► in_review ─(all approve)─► approved ─release─► released
                        ▲                 │                 ├─(a reviewer returns)─► returned ─resubmit─┐
                        └────resubmit─────┘                 └─(a reviewer rejects)─► rejected           │
                        ▲───────────────────────────────────────────────────────────────────────────────┘
    withdraw: draft, submitted, checked, in_review, returned ─► withdrawn (author)

Guards come in pairs (STYLE, opensafely airlock): `check_can_review(req, actor)` raises
`Forbidden`/`Conflict` with the reason, `can_review(req, actor)` answers True/False; the
business layer calls the first before acting, the pages call the second to decide which
buttons to show, so a button is never shown for an action that would be refused.

Two-person rule (EHDS Art. 73(2); OpenSAFELY airlock): a review counts only from a checker
(scope `custom:spe:review`) who is neither the author nor a member of the permit, at most
once per version; `reviewers_required` (permit egress policy, ≥ 2) reviews decide. Reviews
are blinded: nobody but its writer sees a review until all required reviews are in.

Pure: no database, no web; must not import `egress.business` or the web layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from hub.exceptions import Conflict, Forbidden, Refused
from hub.permits import access
from hub.permits.access import boolean_guard
from hub.permits.model import Permit

# --- states ---------------------------------------------------------------------------------

DRAFT, SUBMITTED, CHECKED, IN_REVIEW = "draft", "submitted", "checked", "in_review"
APPROVED, RELEASED, RETURNED, REJECTED, WITHDRAWN = "approved", "released", "returned", "rejected", "withdrawn"
STATES = (DRAFT, SUBMITTED, CHECKED, IN_REVIEW, APPROVED, RELEASED, RETURNED, REJECTED, WITHDRAWN)
FINAL = frozenset({RELEASED, REJECTED, WITHDRAWN})

# Who must act next in each state (shown on pages, used by queues).
AUTHOR, CHECKER, SYSTEM, NOBODY = "author", "checker", "system", "nobody"
OWNER = {
    DRAFT: AUTHOR,
    SUBMITTED: SYSTEM,   # the automated checks run
    CHECKED: CHECKER,    # waiting for reviews (the author may still withdraw or resubmit)
    IN_REVIEW: CHECKER,
    APPROVED: CHECKER,   # a checker with the release scope releases
    RETURNED: AUTHOR,    # changes asked: the author resubmits a new version or withdraws
    RELEASED: NOBODY,
    REJECTED: NOBODY,
    WITHDRAWN: NOBODY,
}

# --- actions and the transition table -------------------------------------------------------

SUBMIT, CHECK, REVIEW, RELEASE, RESUBMIT, WITHDRAW = "submit", "check", "review", "release", "resubmit", "withdraw"
# Outcomes of the last required review, taken by the system in the reviewer's transaction.
COMPLETE_APPROVE, COMPLETE_RETURN, COMPLETE_REJECT = "complete_approve", "complete_return", "complete_reject"
USER_ACTIONS = (SUBMIT, REVIEW, RELEASE, RESUBMIT, WITHDRAW)
ACTIONS = USER_ACTIONS + (CHECK, COMPLETE_APPROVE, COMPLETE_RETURN, COMPLETE_REJECT)

# (state, action) -> (new state, role that may take it). Anything not listed is illegal.
TRANSITIONS: dict[tuple[str, str], tuple[str, str]] = {
    (DRAFT, SUBMIT): (SUBMITTED, AUTHOR),
    (SUBMITTED, CHECK): (CHECKED, SYSTEM),
    (CHECKED, REVIEW): (IN_REVIEW, CHECKER),
    (IN_REVIEW, REVIEW): (IN_REVIEW, CHECKER),
    (IN_REVIEW, COMPLETE_APPROVE): (APPROVED, SYSTEM),
    (IN_REVIEW, COMPLETE_RETURN): (RETURNED, SYSTEM),
    (IN_REVIEW, COMPLETE_REJECT): (REJECTED, SYSTEM),
    (APPROVED, RELEASE): (RELEASED, CHECKER),
    (CHECKED, RESUBMIT): (SUBMITTED, AUTHOR),
    (RETURNED, RESUBMIT): (SUBMITTED, AUTHOR),
    (DRAFT, WITHDRAW): (WITHDRAWN, AUTHOR),
    (SUBMITTED, WITHDRAW): (WITHDRAWN, AUTHOR),
    (CHECKED, WITHDRAW): (WITHDRAWN, AUTHOR),
    (IN_REVIEW, WITHDRAW): (WITHDRAWN, AUTHOR),
    (RETURNED, WITHDRAW): (WITHDRAWN, AUTHOR),
}

# One audit event type per transition (plus creation and downloads, which are not transitions).
AUDIT_ACTION = {
    SUBMIT: "egress.submit",
    CHECK: "egress.check",
    REVIEW: "egress.review",
    COMPLETE_APPROVE: "egress.approve",
    COMPLETE_RETURN: "egress.return",
    COMPLETE_REJECT: "egress.reject",
    RELEASE: "egress.release",
    RESUBMIT: "egress.resubmit",
    WITHDRAW: "egress.withdraw",
}
AUDIT_CREATE = "egress.create"
AUDIT_DOWNLOAD = "egress.download"

DECISIONS = ("approve", "return", "reject")

# Scopes (defined in the hub config) that grant each role.
SCOPE_SUBMIT = "custom:spe:submit"
SCOPE_REVIEW = "custom:spe:review"
SCOPE_RELEASE = "custom:spe:release"
SCOPE_DOWNLOAD = "custom:spe:download"
SCOPE_AUDIT = "custom:spe:audit"
SCOPE_OPERATE = "custom:spe:operate"


def next_state(state: str, action: str) -> str:
    """The state after `action`, or Conflict naming the state and the action."""
    try:
        return TRANSITIONS[(state, action)][0]
    except KeyError:
        raise Conflict(f"a request that is {state.replace('_', ' ')} cannot be {_past(action)}") from None


def _past(action: str) -> str:
    return {SUBMIT: "submitted", CHECK: "checked", REVIEW: "reviewed", RELEASE: "released",
            RESUBMIT: "resubmitted", WITHDRAW: "withdrawn"}.get(action, action.replace("complete_", "") + "d")


def completion(decisions: list[str], required: int) -> str | None:
    """The system action once `required` reviews of one version are in (None before).

    Any reject rejects, else any return returns, else (all approve) approves: the most
    cautious reviewer decides, as a two-person rule must.
    """
    if len(decisions) < required:
        return None
    if "reject" in decisions:
        return COMPLETE_REJECT
    if "return" in decisions:
        return COMPLETE_RETURN
    return COMPLETE_APPROVE


# --- the facts a guard needs ------------------------------------------------------------------

@dataclass(frozen=True)
class Actor:
    """Who is acting: a hub user with the scopes of their token (or the system)."""

    username: str
    scopes: frozenset = frozenset()
    server_name: str | None = None  # the named server (workspace) whose token this is

    def has(self, scope: str) -> bool:
        return has_scope(self.scopes, scope, self.username)


def has_scope(scopes, scope: str, username: str) -> bool:
    """`scope` held unfiltered or filtered to this user (`custom:spe:submit!user=alice`)."""
    return scope in scopes or f"{scope}!user={username}" in scopes or f"{scope}!user" in scopes


@dataclass(frozen=True)
class RequestFacts:
    """What the guards know about one request (built by the business layer from rows)."""

    id: str
    state: str
    author: str
    permit_members: frozenset
    version: int = 1
    reviewers_required: int = 2
    check_status: str = "pass"  # pass | review | fail (worst file of the current version)
    reviewed_by: frozenset = field(default_factory=frozenset)  # reviewers of the current version
    permit_id: str = ""
    permit_status: str = "active"


# --- guards (pairs) ---------------------------------------------------------------------------

def check_is_state(req: RequestFacts, action: str) -> None:
    next_state(req.state, action)


def check_can_submit(permit: Permit, actor: Actor, today: date | None = None) -> None:
    """A member submits from the workspace of an active permit (its server token names it);
    the permit rules are `hub.permits.access`, the token's scope is checked here."""
    if not actor.has(SCOPE_SUBMIT):
        raise Forbidden(f"{actor.username} lacks the scope {SCOPE_SUBMIT}")
    access.check_can_submit(permit, actor.username, actor.server_name, today)


def check_can_query(permit: Permit, actor: Actor, today: date | None = None) -> None:
    """A member runs a DP query from the workspace of an active permit. A DP answer is an output,
    so the token needs the submit scope; the DP service checks the permit again before charging."""
    if not actor.has(SCOPE_SUBMIT):
        raise Forbidden(f"{actor.username} lacks the scope {SCOPE_SUBMIT}")
    access.check_can_query(permit, actor.username, today)
    access.check_from_workspace(permit, actor.server_name, "run DP queries")


def check_can_view(req: RequestFacts, actor: Actor) -> None:
    """Authors and permit members see their request; checkers who may review it see it too."""
    if actor.username == req.author or actor.username in req.permit_members:
        return
    if actor.has(SCOPE_REVIEW) or actor.has(SCOPE_RELEASE):
        return
    raise Forbidden(f"{actor.username} may not see request {req.id}")


def check_independent(req: RequestFacts, actor: Actor) -> None:
    if actor.username == req.author:
        raise Forbidden("you cannot review or release your own request")
    if actor.username in req.permit_members:
        raise Forbidden(f"{actor.username} is a member of this permit: only independent checkers may review")


def check_can_review(req: RequestFacts, actor: Actor, decision: str = "approve") -> None:
    if not actor.has(SCOPE_REVIEW):
        raise Forbidden(f"{actor.username} lacks the scope {SCOPE_REVIEW}")
    check_independent(req, actor)
    check_is_state(req, REVIEW)
    if decision not in DECISIONS:
        raise Refused(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    if actor.username in req.reviewed_by:
        raise Conflict(f"{actor.username} has already reviewed version {req.version} of request {req.id}")
    if decision == "approve" and req.check_status == "fail":
        # Fail closed: a checker may return or reject a table with failing cells, never approve it.
        raise Refused("the automated checks fail on this version: return it to the author or reject it")


def check_can_release(req: RequestFacts, actor: Actor) -> None:
    if not actor.has(SCOPE_RELEASE):
        raise Forbidden(f"{actor.username} lacks the scope {SCOPE_RELEASE}")
    check_independent(req, actor)
    check_is_state(req, RELEASE)
    if req.permit_status in ("suspended", "revoked"):
        # A suspended or revoked permit releases nothing more (EHDS Art. 63 penalties / Art. 68).
        raise Refused(f"the permit is {req.permit_status}: nothing can be released under it")


def check_can_resubmit(req: RequestFacts, actor: Actor) -> None:
    if not actor.has(SCOPE_SUBMIT):
        raise Forbidden(f"{actor.username} lacks the scope {SCOPE_SUBMIT}")
    if actor.username != req.author:
        raise Forbidden("only the author can resubmit a request")
    check_is_state(req, RESUBMIT)


def check_can_withdraw(req: RequestFacts, actor: Actor) -> None:
    if actor.username != req.author:
        raise Forbidden("only the author can withdraw a request")
    check_is_state(req, WITHDRAW)


def check_can_download(req: RequestFacts, actor: Actor) -> None:
    """Released outputs go to permit members only (the permit says who may hold them)."""
    if not actor.has(SCOPE_DOWNLOAD):
        raise Forbidden(f"{actor.username} lacks the scope {SCOPE_DOWNLOAD}")
    if actor.username not in req.permit_members:
        raise Forbidden(f"{actor.username} is not a member of the permit of request {req.id}")
    if req.state != RELEASED:
        raise Conflict(f"request {req.id} is {req.state.replace('_', ' ')}; only released outputs can be downloaded")


def check_can_see_content(req: RequestFacts, actor: Actor) -> None:
    """Unreleased content (tables, cell values, description, SQL) is seen only inside the
    permit's workspace (its server token) or by an independent checker. Outside the workspace
    the author sees the state alone until release: otherwise the request page itself would be
    a way out of the enclave that skips the review."""
    inside = access.is_workspace_of(req.permit_id, actor.server_name) and actor.username in req.permit_members
    if inside or req.state == RELEASED and actor.username in req.permit_members:
        return
    if (actor.has(SCOPE_REVIEW) or actor.has(SCOPE_RELEASE)) and actor.username != req.author \
            and actor.username not in req.permit_members:
        return
    raise Forbidden("the content of an unreleased request is shown only inside the permit's workspace "
                    "and to independent output checkers")


def check_can_see_reviews(req: RequestFacts, actor: Actor, reviews_in: int) -> None:
    """Blinding: other reviewers' decisions stay hidden until all required reviews are in."""
    if reviews_in < req.reviewers_required and req.state in (CHECKED, IN_REVIEW):
        raise Forbidden("reviews are blinded until all required reviews are in")
    check_can_view(req, actor)


can_submit = boolean_guard(check_can_submit)
can_query = boolean_guard(check_can_query)
can_view = boolean_guard(check_can_view)
can_review = boolean_guard(check_can_review)
can_release = boolean_guard(check_can_release)
can_resubmit = boolean_guard(check_can_resubmit)
can_withdraw = boolean_guard(check_can_withdraw)
can_download = boolean_guard(check_can_download)
can_see_reviews = boolean_guard(check_can_see_reviews)
can_see_content = boolean_guard(check_can_see_content)

# action -> guard (for the state × action × actor matrix and for generic dispatch)
GUARDS = {
    REVIEW: check_can_review,
    RELEASE: check_can_release,
    RESUBMIT: check_can_resubmit,
    WITHDRAW: check_can_withdraw,
}


def check_can(action: str, req: RequestFacts, actor: Actor) -> None:
    GUARDS[action](req, actor)


can = boolean_guard(check_can)
