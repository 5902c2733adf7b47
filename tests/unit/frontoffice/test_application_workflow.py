"""The application workflow table walked for every (state x action x actor): who may take which
action in which state, the decider is never the assessor, HDAB staff never act on their own team's
application, one audit action per transition, and the owner of every state."""

from itertools import product

import pytest

from hub.exceptions import Conflict, Forbidden, Refused
from hub.frontoffice.applications import workflow as wf
from hub.frontoffice.roles import APPLICANT, ASSESSOR, DATA_HOLDER, DECIDER, OPERATOR, Actor

APPLICANT_NAME, ASSESSOR_NAME = "paula", "hugo"
ACTORS = {
    "applicant": Actor(APPLICANT_NAME, frozenset({APPLICANT})),
    "team member": Actor("bob", frozenset({APPLICANT})),
    "the assessor": Actor(ASSESSOR_NAME, frozenset({ASSESSOR})),
    "another assessor": Actor("hanna", frozenset({ASSESSOR})),
    "a decider": Actor("diane", frozenset({DECIDER})),
    "the assessor, also a decider": Actor(ASSESSOR_NAME, frozenset({ASSESSOR, DECIDER})),
    "a decider on the team": Actor("bob", frozenset({DECIDER})),
    "data holder": Actor("holger", frozenset({DATA_HOLDER})),
    "operator": Actor("olga", frozenset({OPERATOR})),
    "stranger": Actor("eve", frozenset()),
}


def facts(state: str, extended: bool = False) -> wf.ApplicationFacts:
    assessor = None if state in (wf.DRAFT, wf.SUBMITTED) else ASSESSOR_NAME
    return wf.ApplicationFacts(id="APP-1", state=state, applicant=APPLICANT_NAME,
                               team=frozenset({APPLICANT_NAME, "bob"}), assessor=assessor, extended=extended,
                               consulted=frozenset({"eunomia"}) if state == wf.CONSULTATION else frozenset(),
                               maintainers={"eunomia": frozenset({"holger"})})


def expected(state: str, action: str, who: str, actor: Actor):
    if (state, action) not in wf.TRANSITIONS:
        return Conflict
    role = wf.TRANSITIONS[(state, action)][1]
    if action == wf.EXTEND:
        role = ASSESSOR if state in (wf.ASSESSMENT, wf.CONSULTATION) else DECIDER
    if role == APPLICANT:
        return None if who == "applicant" else Forbidden
    if role not in actor.roles:
        return Forbidden
    if actor.username in (APPLICANT_NAME, "bob"):
        return Forbidden
    if role == ASSESSOR and action != wf.TAKE and actor.username != ASSESSOR_NAME:
        return Forbidden
    if role == DECIDER and actor.username == ASSESSOR_NAME and state not in (wf.DRAFT, wf.SUBMITTED):
        return Forbidden
    return None


@pytest.mark.parametrize("state, action, who", list(product(wf.STATES, wf.ACTIONS, ACTORS)))
def test_every_state_action_and_actor(state, action, who):
    actor = ACTORS[who]
    want = expected(state, action, who, actor)
    assert wf.can(action, facts(state), actor) is (want is None)
    if want is None:
        wf.check_can(action, facts(state), actor)
    else:
        with pytest.raises(want):
            wf.check_can(action, facts(state), actor)


def test_the_deadline_is_extended_only_once():
    assessor = ACTORS["the assessor"]
    assert wf.can(wf.EXTEND, facts(wf.ASSESSMENT), assessor)
    with pytest.raises(Refused, match="already extended once"):
        wf.check_can(wf.EXTEND, facts(wf.ASSESSMENT, extended=True), assessor)


def test_every_transition_has_its_audit_action_and_every_state_an_owner():
    assert set(wf.AUDIT_ACTION) == set(wf.ACTIONS)
    assert all(v == f"application.{k}" for k, v in wf.AUDIT_ACTION.items())
    assert set(wf.OWNER) == set(wf.STATES)
    assert all(wf.OWNER[s] == wf.NOBODY for s in wf.FINAL)
    reachable = {wf.DRAFT} | {new for (_, _), (new, _) in wf.TRANSITIONS.items()}
    assert reachable == set(wf.STATES)
    assert not [k for k in wf.TRANSITIONS if k[0] in wf.FINAL]  # nothing leaves a final state


def test_audit_events_are_registered_with_their_keys():
    from hub.audit.events import EVENT_TYPES

    for action in wf.AUDIT_ACTION.values():
        assert EVENT_TYPES[action].required == ("from", "to")


@pytest.mark.parametrize("who, dataset, ok", [
    ("data holder", "eunomia", True), ("data holder", "synth", False), ("operator", "eunomia", False),
    ("the assessor", "eunomia", False)])
def test_only_the_maintaining_data_holder_answers_a_consultation(who, dataset, ok):
    assert wf.can_respond(facts(wf.CONSULTATION), ACTORS[who], dataset) is ok
    assert not wf.can_respond(facts(wf.ASSESSMENT), ACTORS["data holder"], "eunomia")


@pytest.mark.parametrize("who, state, ok", [
    ("applicant", wf.DRAFT, True), ("team member", wf.DRAFT, True), ("the assessor", wf.DRAFT, False),
    ("another assessor", wf.SUBMITTED, True), ("a decider", wf.DECISION, True), ("stranger", wf.GRANTED, False),
    ("data holder", wf.CONSULTATION, True), ("data holder", wf.ASSESSMENT, False)])
def test_who_sees_an_application(who, state, ok):
    assert wf.can_view(facts(state), ACTORS[who]) is ok
