"""The import request workflow as data: states, who owns each, the transition table, the audit
action of each transition, and the guards that decide every action (in pairs, as in
`egress.workflow`).

    submitted ─approve─► approved ─revoke─► revoked
        ├─────reject───► rejected
        └────withdraw──► withdrawn

One independent checker decides. The two-person rule of egress (EHDS Art. 73(2)) protects what
LEAVES the environment, where one mistake publishes personal data irreversibly; an import brings
something IN, is reviewed for what it is (no personal data to link against, no hidden payload,
a package the permit needs), lands read-only in one permit's workspaces, and can be revoked at
any time (`revoke` unpublishes it). Like the airlocks of other trusted research environments
(Azure TRE's airlock import: one airlock manager), one approval by a checker who is neither the
author nor a member of the permit is enough; the decision and its reason are audited.

The author is a member who may open the permit's workspace (`hub.permits.access.check_can_open`)
and holds `custom:spe:import`; a workspace's own token does not (imports come from outside).
Approving also needs the permit to be active: nothing new enters a suspended permit.

Pure: no database, no web; must not import `egress.business`, `egress.imports.service` or the web layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from egress.workflow import AUTHOR, CHECKER, NOBODY, SCOPE_OPERATE, SCOPE_REVIEW, Actor, check_independent
from hub.exceptions import Conflict, Forbidden, Refused
from hub.permits import access
from hub.permits.access import boolean_guard
from hub.permits.lifecycle import LIVE
from hub.permits.model import Permit

SUBMITTED, APPROVED, REJECTED, WITHDRAWN, REVOKED = "submitted", "approved", "rejected", "withdrawn", "revoked"
STATES = (SUBMITTED, APPROVED, REJECTED, WITHDRAWN, REVOKED)
FINAL = frozenset({REJECTED, WITHDRAWN, REVOKED})
OWNER = {SUBMITTED: CHECKER, APPROVED: NOBODY, REJECTED: NOBODY, WITHDRAWN: NOBODY, REVOKED: NOBODY}

APPROVE, REJECT, WITHDRAW, REVOKE = "approve", "reject", "withdraw", "revoke"
ACTIONS = (APPROVE, REJECT, WITHDRAW, REVOKE)
DECISIONS = (APPROVE, REJECT)
# who revokes: an independent checker or an operator (a wheel found malicious, a file sent in error)
CHECKER_OR_OPERATOR = "checker_or_operator"

TRANSITIONS: dict[tuple[str, str], tuple[str, str]] = {
    (SUBMITTED, APPROVE): (APPROVED, CHECKER),
    (SUBMITTED, REJECT): (REJECTED, CHECKER),
    (SUBMITTED, WITHDRAW): (WITHDRAWN, AUTHOR),
    (APPROVED, REVOKE): (REVOKED, CHECKER_OR_OPERATOR),
}
AUDIT_ACTION = {APPROVE: "import.approve", REJECT: "import.reject", WITHDRAW: "import.withdraw",
                REVOKE: "import.revoke"}
AUDIT_CREATE = "import.create"

FILE, PACKAGE = "file", "package"
KINDS = (FILE, PACKAGE)
SCOPE_IMPORT = "custom:spe:import"


def next_state(state: str, action: str) -> str:
    """The state after `action`, or Conflict naming the state and the action."""
    try:
        return TRANSITIONS[(state, action)][0]
    except KeyError:
        raise Conflict(f"an import that is {state} cannot be {_PAST.get(action, action)}") from None


_PAST = {APPROVE: "approved", REJECT: "rejected", WITHDRAW: "withdrawn", REVOKE: "revoked"}


@dataclass(frozen=True)
class ImportFacts:
    """What the guards know about one import request (built by the service from its row)."""

    id: str
    state: str
    author: str
    permit_id: str
    permit_members: frozenset
    permit_status: str = "active"
    kind: str = FILE


# --- guards (pairs) ---------------------------------------------------------------------------

def check_can_request(permit: Permit, actor: Actor, today: date | None = None) -> None:
    """A member who may open the permit's workspace asks, with the import scope."""
    if not actor.has(SCOPE_IMPORT):
        raise Forbidden(f"{actor.username} lacks the scope {SCOPE_IMPORT}")
    access.check_can_open(permit, actor.username, today)


def check_can_view(req: ImportFacts, actor: Actor) -> None:
    if actor.username == req.author or actor.username in req.permit_members:
        return
    if actor.has(SCOPE_REVIEW) or actor.has(SCOPE_OPERATE):
        return
    raise Forbidden(f"{actor.username} may not see import {req.id}")


def _check_decides(req: ImportFacts, actor: Actor, action: str) -> None:
    """An output checker who is neither the author nor a member (egress's independence rule)."""
    if not actor.has(SCOPE_REVIEW):
        raise Forbidden(f"{actor.username} lacks the scope {SCOPE_REVIEW}")
    check_independent(req, actor)
    next_state(req.state, action)


def check_can_approve(req: ImportFacts, actor: Actor) -> None:
    _check_decides(req, actor, APPROVE)
    if req.permit_status not in LIVE:
        raise Refused(f"permit {req.permit_id} is {req.permit_status}: nothing new enters its workspaces")


def check_can_reject(req: ImportFacts, actor: Actor) -> None:
    _check_decides(req, actor, REJECT)


def check_can_withdraw(req: ImportFacts, actor: Actor) -> None:
    if actor.username != req.author:
        raise Forbidden("only the author can withdraw an import request")
    next_state(req.state, WITHDRAW)


def check_can_revoke(req: ImportFacts, actor: Actor) -> None:
    if not (actor.has(SCOPE_REVIEW) or actor.has(SCOPE_OPERATE)):
        raise Forbidden(f"{actor.username} is neither an output checker nor an operator")
    check_independent(req, actor)
    next_state(req.state, REVOKE)


can_request = boolean_guard(check_can_request)
can_view = boolean_guard(check_can_view)
can_approve = boolean_guard(check_can_approve)
can_reject = boolean_guard(check_can_reject)
can_withdraw = boolean_guard(check_can_withdraw)
can_revoke = boolean_guard(check_can_revoke)

GUARDS = {APPROVE: check_can_approve, REJECT: check_can_reject, WITHDRAW: check_can_withdraw,
          REVOKE: check_can_revoke}


def check_can(action: str, req: ImportFacts, actor: Actor) -> None:
    GUARDS[action](req, actor)


can = boolean_guard(check_can)
