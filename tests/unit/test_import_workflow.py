"""The import request workflow as a table: every (state × action × actor) is decided exactly as
the expected table below says, the raising and the boolean guards agree, and the table is
complete: every transition has its audit action, final states lead nowhere."""

from __future__ import annotations

import itertools
from datetime import date

import pytest

from egress import workflow as ewf
from egress.imports import workflow as wf
from hub.audit.events import EVENT_TYPES
from hub.exceptions import Conflict, Forbidden, Refused
from hub.permits.model import Member, Permit

MEMBERS = frozenset({"alice", "bob", "erin"})
RESEARCHER = frozenset({wf.SCOPE_IMPORT, ewf.SCOPE_SUBMIT, ewf.SCOPE_DOWNLOAD})
CHECKER = frozenset({ewf.SCOPE_REVIEW, ewf.SCOPE_RELEASE})

ACTORS = {
    "author": ewf.Actor("alice", RESEARCHER),
    "co_member": ewf.Actor("bob", RESEARCHER),
    "checker": ewf.Actor("carol", CHECKER),
    "member_checker": ewf.Actor("erin", CHECKER | RESEARCHER),  # a checker AND a member: never decides
    "operator": ewf.Actor("olga", frozenset({ewf.SCOPE_OPERATE})),
    "stranger": ewf.Actor("mallory", RESEARCHER),
    "no_scopes": ewf.Actor("zoe", frozenset()),
}

ALLOWED = {
    (wf.SUBMITTED, wf.APPROVE): {"checker"},
    (wf.SUBMITTED, wf.REJECT): {"checker"},
    (wf.SUBMITTED, wf.WITHDRAW): {"author"},
    (wf.APPROVED, wf.REVOKE): {"checker", "operator"},
}
# whose role fits the action: refused only because of the state → Conflict (409)
ROLE_FITS = {wf.APPROVE: {"checker"}, wf.REJECT: {"checker"}, wf.WITHDRAW: {"author"},
             wf.REVOKE: {"checker", "operator"}}


def facts(state: str, permit_status: str = "active") -> wf.ImportFacts:
    return wf.ImportFacts(id="i-0123456789abcdef", state=state, author="alice", permit_id="P-1",
                          permit_members=MEMBERS, permit_status=permit_status)


MATRIX = list(itertools.product(wf.STATES, wf.ACTIONS, ACTORS))


@pytest.mark.parametrize("state,action,who", MATRIX, ids=[f"{s}-{a}-{w}" for s, a, w in MATRIX])
def test_state_action_actor_matrix(state, action, who):
    req, actor = facts(state), ACTORS[who]
    allowed = who in ALLOWED.get((state, action), set())
    assert wf.can(action, req, actor) is allowed
    if allowed:
        wf.check_can(action, req, actor)
        assert wf.next_state(state, action) == wf.TRANSITIONS[(state, action)][0]
    else:
        with pytest.raises(Conflict if who in ROLE_FITS[action] else Forbidden):
            wf.check_can(action, req, actor)


def test_named_guards_agree_with_the_generic_one():
    for state, who in itertools.product(wf.STATES, ACTORS):
        req, actor = facts(state), ACTORS[who]
        for action, named in ((wf.APPROVE, wf.can_approve), (wf.REJECT, wf.can_reject),
                              (wf.WITHDRAW, wf.can_withdraw), (wf.REVOKE, wf.can_revoke)):
            assert named(req, actor) == wf.can(action, req, actor)


@pytest.mark.parametrize("status", ["suspended", "revoked", "expired"])
def test_nothing_new_enters_a_permit_that_is_not_active_but_it_can_be_rejected(status):
    req, checker = facts(wf.SUBMITTED, status), ACTORS["checker"]
    with pytest.raises(Refused, match=status):
        wf.check_can_approve(req, checker)
    assert wf.can_reject(req, checker)


def _permit(status="active", members=("alice", "bob")) -> Permit:
    return Permit(id="P-1", title="t", purpose="scientific_research", organisation="o", principal_investigator="alice",
                  members=tuple(Member(m, "researcher") for m in members), dataset="d", tables={"person": ("person_id",)},
                  valid_from=date(2026, 1, 1), valid_until=date(2027, 1, 1), status=status)


@pytest.mark.parametrize("actor,status,today,error", [
    (ACTORS["author"], "active", date(2026, 6, 1), None),
    (ewf.Actor("alice", frozenset({f"{wf.SCOPE_IMPORT}!user=alice"})), "active", date(2026, 6, 1), None),
    (ewf.Actor("alice", frozenset({ewf.SCOPE_SUBMIT})), "active", date(2026, 6, 1), Forbidden),  # a workspace token
    (ACTORS["stranger"], "active", date(2026, 6, 1), Forbidden),  # not a member
    (ACTORS["checker"], "active", date(2026, 6, 1), Forbidden),
    (ACTORS["author"], "suspended", date(2026, 6, 1), Refused),
    (ACTORS["author"], "active", date(2027, 1, 2), Refused),  # after valid_until
])
def test_who_may_ask_for_an_import(actor, status, today, error):
    permit = _permit(status)
    assert wf.can_request(permit, actor, today) is (error is None)
    if error:
        with pytest.raises(error):
            wf.check_can_request(permit, actor, today)


def test_the_transition_table_is_complete_and_audited():
    assert set(wf.OWNER) == set(wf.STATES)
    for (state, action), (new, _role) in wf.TRANSITIONS.items():
        assert state in wf.STATES and new in wf.STATES and action in wf.ACTIONS
        assert wf.AUDIT_ACTION[action] in EVENT_TYPES  # one registered audit event type per transition
        assert EVENT_TYPES[wf.AUDIT_ACTION[action]].required == ("from", "to")
    assert wf.AUDIT_CREATE in EVENT_TYPES
    for final in wf.FINAL:
        assert not [k for k in wf.TRANSITIONS if k[0] == final], f"{final} must be final"
    with pytest.raises(Conflict, match="rejected cannot be approved"):
        wf.next_state(wf.REJECTED, wf.APPROVE)
