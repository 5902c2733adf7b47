"""The egress request workflow as a table: every (state × action × actor) is decided by the
guards exactly as the expected table below says, the raising and the boolean guard agree,
and the transition table itself is complete and consistent."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import date

import pytest

from egress import workflow as wf
from hub.exceptions import Conflict, Forbidden, Refused
from hub.permits.model import Member, Permit

MEMBERS = frozenset({"alice", "bob", "erin"})
REVIEW_SCOPES = frozenset({wf.SCOPE_REVIEW, wf.SCOPE_RELEASE})
SUBMIT_SCOPES = frozenset({wf.SCOPE_SUBMIT, wf.SCOPE_DOWNLOAD})

ACTORS = {
    "author": wf.Actor("alice", SUBMIT_SCOPES, "p-1"),
    "co_member": wf.Actor("bob", SUBMIT_SCOPES, "p-1"),
    "checker": wf.Actor("carol", REVIEW_SCOPES),
    "reviewed_checker": wf.Actor("dave", REVIEW_SCOPES),  # has reviewed the current version already
    "member_checker": wf.Actor("erin", REVIEW_SCOPES | SUBMIT_SCOPES),  # checker AND member of the permit
    "stranger": wf.Actor("mallory", SUBMIT_SCOPES),
    "no_scopes": wf.Actor("zoe", frozenset()),
}

# The whole expected matrix: who may take each user action in each state. Anything absent is refused.
ALLOWED = {
    (wf.CHECKED, wf.REVIEW): {"checker"},
    (wf.IN_REVIEW, wf.REVIEW): {"checker"},
    (wf.APPROVED, wf.RELEASE): {"checker", "reviewed_checker"},
    (wf.CHECKED, wf.RESUBMIT): {"author"},
    (wf.RETURNED, wf.RESUBMIT): {"author"},
    (wf.DRAFT, wf.WITHDRAW): {"author"},
    (wf.SUBMITTED, wf.WITHDRAW): {"author"},
    (wf.CHECKED, wf.WITHDRAW): {"author"},
    (wf.IN_REVIEW, wf.WITHDRAW): {"author"},
    (wf.RETURNED, wf.WITHDRAW): {"author"},
}
# Actors whose role fits the action: refused only because of the state (or a repeat) → 409.
ROLE_FITS = {
    wf.REVIEW: {"checker", "reviewed_checker"},
    wf.RELEASE: {"checker", "reviewed_checker"},
    wf.RESUBMIT: {"author"},
    wf.WITHDRAW: {"author"},
}
GUARDED_ACTIONS = (wf.REVIEW, wf.RELEASE, wf.RESUBMIT, wf.WITHDRAW)


def facts(state: str, check_status: str = "pass") -> wf.RequestFacts:
    return wf.RequestFacts(id="r-0123456789abcdef", state=state, author="alice", permit_members=MEMBERS,
                           version=2, reviewers_required=2, check_status=check_status,
                           reviewed_by=frozenset({"dave"}))


MATRIX = [(s, a, who) for s, a, who in itertools.product(wf.STATES, GUARDED_ACTIONS, ACTORS)]


@pytest.mark.parametrize("state,action,who", MATRIX, ids=[f"{s}-{a}-{w}" for s, a, w in MATRIX])
def test_state_action_actor_matrix(state, action, who):
    req, actor = facts(state), ACTORS[who]
    allowed = who in ALLOWED.get((state, action), set())
    assert wf.can(action, req, actor) is allowed
    if allowed:
        wf.check_can(action, req, actor)
        assert wf.next_state(state, action) == wf.TRANSITIONS[(state, action)][0]
    else:
        expected = Conflict if who in ROLE_FITS[action] else Forbidden
        with pytest.raises(expected):
            wf.check_can(action, req, actor)


def test_named_guard_pairs_agree_with_the_generic_ones():
    for state, who in itertools.product(wf.STATES, ACTORS):
        req, actor = facts(state), ACTORS[who]
        assert wf.can_review(req, actor) == wf.can(wf.REVIEW, req, actor)
        assert wf.can_release(req, actor) == wf.can(wf.RELEASE, req, actor)
        assert wf.can_resubmit(req, actor) == wf.can(wf.RESUBMIT, req, actor)
        assert wf.can_withdraw(req, actor) == wf.can(wf.WITHDRAW, req, actor)


@pytest.mark.parametrize("decision,check_status,ok", [
    ("approve", "pass", True), ("approve", "review", True), ("approve", "fail", False),
    ("return", "fail", True), ("reject", "fail", True), ("maybe", "pass", False),
])
def test_a_failing_version_can_be_returned_or_rejected_never_approved(decision, check_status, ok):
    req = facts(wf.IN_REVIEW, check_status)
    assert wf.can_review(req, ACTORS["checker"], decision) is ok
    if not ok:
        with pytest.raises(Refused):
            wf.check_can_review(req, ACTORS["checker"], decision)


@pytest.mark.parametrize("decision,unverified,required,ok", [
    ("approve", (), True, True),
    ("approve", (("t.csv", "no provenance SQL submitted"),), True, False),
    ("approve", (("t.csv", "no provenance SQL submitted"),), False, True),  # the permit opted out
    ("return", (("t.csv", "no provenance SQL submitted"),), True, True),
    ("reject", (("t.csv", "no provenance SQL submitted"),), True, True),
])
def test_a_table_without_verified_evidence_is_never_approved_where_the_permit_requires_it(
        decision, unverified, required, ok):
    req = dataclasses.replace(facts(wf.IN_REVIEW), unverified_tables=unverified, require_provenance=required)
    assert wf.can_review(req, ACTORS["checker"], decision) is ok
    if not ok:
        with pytest.raises(Refused, match="t.csv has no verified evidence"):
            wf.check_can_review(req, ACTORS["checker"], decision)


@pytest.mark.parametrize("state", wf.STATES)
@pytest.mark.parametrize("who", ACTORS)
@pytest.mark.parametrize("suggested", [True, False])
def test_only_the_author_applies_a_proposed_suppression_and_only_where_one_was_proposed(state, who, suggested):
    req = dataclasses.replace(facts(state), has_suggestion=suggested)
    actor = ACTORS[who]
    ok = suggested and wf.can_resubmit(req, actor)
    assert wf.can_apply_suggestion(req, actor) is ok
    if wf.can_resubmit(req, actor) and not suggested:
        with pytest.raises(Conflict, match="proposed no suppression"):
            wf.check_can_apply_suggestion(req, actor)


@pytest.mark.parametrize("decisions,required,outcome", [
    ([], 2, None),
    (["approve"], 2, None),
    (["approve", "approve"], 2, wf.COMPLETE_APPROVE),
    (["approve", "return"], 2, wf.COMPLETE_RETURN),
    (["return", "reject"], 2, wf.COMPLETE_REJECT),
    (["approve", "reject"], 2, wf.COMPLETE_REJECT),
    (["approve", "approve"], 3, None),
    (["approve", "approve", "approve"], 3, wf.COMPLETE_APPROVE),
])
def test_the_last_required_review_decides_and_the_most_cautious_wins(decisions, required, outcome):
    assert wf.completion(decisions, required) == outcome


@pytest.mark.parametrize("state,who,ok", [
    (wf.RELEASED, "author", True), (wf.RELEASED, "co_member", True), (wf.RELEASED, "member_checker", True),
    (wf.RELEASED, "stranger", False), (wf.RELEASED, "checker", False), (wf.APPROVED, "author", False),
    (wf.CHECKED, "author", False), (wf.RELEASED, "no_scopes", False),
])
def test_download_is_for_members_of_the_permit_once_released(state, who, ok):
    assert wf.can_download(facts(state), ACTORS[who]) is ok


def test_blinded_until_all_required_reviews_are_in():
    req = facts(wf.IN_REVIEW)
    assert not wf.can_see_reviews(req, ACTORS["checker"], 1)
    assert wf.can_see_reviews(req, ACTORS["checker"], 2)
    assert wf.can_see_reviews(facts(wf.RETURNED), ACTORS["author"], 2)


def _permit(status="active", members=("alice", "bob")) -> Permit:
    return Permit(id="P-1", title="t", purpose="scientific_research", organisation="o", principal_investigator="alice",
                  members=tuple(Member(m, "researcher") for m in members), dataset="d", tables={"person": ("person_id",)},
                  valid_from=date(2026, 1, 1), valid_until=date(2027, 1, 1), status=status)


@pytest.mark.parametrize("actor,status,today,error", [
    (wf.Actor("alice", SUBMIT_SCOPES, "p-1"), "active", date(2026, 6, 1), None),
    (wf.Actor("alice", frozenset({"custom:spe:submit!user=alice"}), "p-1"), "active", date(2026, 6, 1), None),
    (wf.Actor("alice", frozenset({"custom:spe:submit!user=bob"}), "p-1"), "active", date(2026, 6, 1), Forbidden),
    (wf.Actor("alice", frozenset({wf.SCOPE_DOWNLOAD}), "p-1"), "active", date(2026, 6, 1), Forbidden),
    (wf.Actor("alice", SUBMIT_SCOPES, None), "active", date(2026, 6, 1), Forbidden),  # not from the workspace
    (wf.Actor("alice", SUBMIT_SCOPES, "p-2"), "active", date(2026, 6, 1), Forbidden),  # another permit's workspace
    (wf.Actor("mallory", SUBMIT_SCOPES, "p-1"), "active", date(2026, 6, 1), Forbidden),
    (wf.Actor("alice", SUBMIT_SCOPES, "p-1"), "suspended", date(2026, 6, 1), Refused),
    (wf.Actor("alice", SUBMIT_SCOPES, "p-1"), "active", date(2027, 1, 2), Refused),  # after valid_until
])
@pytest.mark.parametrize("check, can", [(wf.check_can_submit, wf.can_submit), (wf.check_can_query, wf.can_query)])
def test_who_may_submit_or_query(actor, status, today, error, check, can):
    permit = _permit(status)
    assert can(permit, actor, today) is (error is None)
    if error:
        with pytest.raises(error):
            check(permit, actor, today)


def test_the_transition_table_is_complete_and_consistent():
    assert set(wf.OWNER) == set(wf.STATES)
    for (state, action), (new, role) in wf.TRANSITIONS.items():
        assert state in wf.STATES and new in wf.STATES and action in wf.ACTIONS
        assert role in (wf.AUTHOR, wf.CHECKER, wf.SYSTEM)
        assert action in wf.AUDIT_ACTION  # one audit event type per transition
    for final in wf.FINAL:
        assert not [k for k in wf.TRANSITIONS if k[0] == final], f"{final} must be final"
        assert wf.OWNER[final] == wf.NOBODY
    # every state is reachable from draft, and every non-final state has a way out
    reachable, frontier = {wf.DRAFT}, [wf.DRAFT]
    while frontier:
        s = frontier.pop()
        for (src, _), (dst, _) in wf.TRANSITIONS.items():
            if src == s and dst not in reachable:
                reachable.add(dst)
                frontier.append(dst)
    assert reachable == set(wf.STATES)
    for state in set(wf.STATES) - wf.FINAL:
        assert any(src == state for src, _ in wf.TRANSITIONS)
    assert len(set(wf.AUDIT_ACTION.values())) == len(wf.AUDIT_ACTION)


@pytest.mark.parametrize("state,action", [(s, a) for s in wf.STATES for a in wf.ACTIONS
                                          if (s, a) not in wf.TRANSITIONS])
def test_illegal_transitions_are_conflicts(state, action):
    with pytest.raises(Conflict):
        wf.next_state(state, action)


@pytest.mark.parametrize("state,who,server,ok", [
    (wf.CHECKED, "author", "permit-1-a", True),  # inside the permit's workspace (hub.naming's server name)
    (wf.CHECKED, "author", "Permit.1_A", False),  # the permit id is not its server name
    (wf.CHECKED, "author", "permit.1_a", False),
    (wf.CHECKED, "author", None, False),       # the author outside the workspace, before release
    (wf.CHECKED, "author", "p-2", False),      # another permit's workspace
    (wf.RELEASED, "author", None, True),
    (wf.RELEASED, "co_member", None, True),
    (wf.CHECKED, "co_member", None, False),
    (wf.CHECKED, "checker", None, True),
    (wf.CHECKED, "member_checker", None, False),
    (wf.RELEASED, "stranger", None, False),
    (wf.CHECKED, "stranger", "permit-1-a", False),  # a non-member cannot hold the permit's workspace
])
def test_unreleased_content_is_seen_inside_the_workspace_or_by_independent_checkers(state, who, server, ok):
    from dataclasses import replace

    req = replace(facts(state), permit_id="Permit.1_A")
    actor = replace(ACTORS[who], server_name=server)
    assert wf.can_see_content(req, actor) is ok


@pytest.mark.parametrize("status,ok", [("active", True), ("expired", True), ("suspended", False), ("revoked", False)])
def test_nothing_is_released_under_a_suspended_or_revoked_permit(status, ok):
    from dataclasses import replace

    req = replace(facts(wf.APPROVED), permit_status=status)
    assert wf.can_release(req, ACTORS["checker"]) is ok
