"""Permit access (`hub.permits.access`) as tables: permit state x date x member role x action, the
workspace a submission must come from, and the lookup from a server name to its permit."""

from __future__ import annotations

from datetime import date
from itertools import product

import pytest

from hub.exceptions import Conflict, Forbidden, NotFound, Refused
from hub.naming import server_name_for
from hub.permits import access
from hub.permits.lifecycle import STATES
from hub.permits.model import Member, Permit
from hub.permits.schema import PERMIT_SCHEMA

FROM, UNTIL = date(2026, 3, 1), date(2026, 9, 30)
# (today, inside the validity dates): both ends are inclusive
DATES = [(date(2026, 2, 28), False), (FROM, True), (date(2026, 6, 1), True), (UNTIL, True), (date(2026, 10, 1), False)]
ROLES = ["principal_investigator", "researcher", "data_manager", "recipient", None]  # None: not a member


def permit(pid="P-1", status="active", role="researcher") -> Permit:
    members = [Member("pi", "principal_investigator")] + ([Member("ann", role)] if role else [])
    return Permit(id=pid, title="t", purpose="scientific_research", organisation="o", principal_investigator="pi",
                  members=tuple(members), dataset="d", tables={"person": ("person_id",)},
                  valid_from=FROM, valid_until=UNTIL, status=status)


def test_every_schema_role_has_its_actions():
    roles = PERMIT_SCHEMA["properties"]["members"]["items"]["properties"]["role"]["enum"]
    assert set(access.ROLE_ACTIONS) == set(roles)
    assert all(actions <= set(access.ACTIONS) for actions in access.ROLE_ACTIONS.values())


def _guard(action: str):
    """(check, can) of `action`, called the way its callers call it (submit from its own workspace)."""
    if action == access.SUBMIT:
        return (lambda p, u, d: access.check_can_submit(p, u, server_name_for(p.id), d),
                lambda p, u, d: access.can_submit(p, u, server_name_for(p.id), d))
    return {access.OPEN: (access.check_can_open, access.can_open),
            access.QUERY: (access.check_can_query, access.can_query)}[action]


@pytest.mark.parametrize("status, dated, role, action", list(product(STATES, DATES, ROLES, access.ACTIONS)))
def test_state_dates_role_and_action(status, dated, role, action):
    today, within = dated
    check, can = _guard(action)
    p = permit(status=status, role=role)
    if role is None:
        expected = Forbidden  # who comes first: a stranger learns nothing of the permit's state
    elif action not in access.ROLE_ACTIONS[role]:
        expected = Forbidden
    elif status != "active" or not within:
        expected = Refused
    else:
        expected = None
    assert can(p, "ann", today) is (expected is None)
    if expected is None:
        check(p, "ann", today)
        return
    with pytest.raises(expected) as err:
        check(p, "ann", today)
    if expected is Refused:
        assert not isinstance(err.value, Forbidden)
        assert (status in str(err.value)) if status != "active" else (str(UNTIL) in str(err.value))


@pytest.mark.parametrize("pid, server, ok", [
    ("P-1", "p-1", True),
    ("P-1", "P-1", False),  # JupyterHub server names are lower case: the id is not its own server name
    ("P-1", None, False),  # outside any workspace
    ("P-1", "p-2", False),  # another permit's workspace
    ("Awk.Case_2026.1", "awk-case-2026-1", True),
    ("Awk.Case_2026.1", "awk.case_2026.1", False),  # the lower-cased id is not the server name
    ("X" * 63, server_name_for("X" * 63), True),  # longer than a server name: hashed slug
    ("X" * 63, ("X" * 63).lower()[:30], False),
])
def test_submissions_come_from_the_permits_own_workspace(pid, server, ok):
    p = permit(pid)
    assert access.is_workspace_of(pid, server) is ok
    assert access.can_submit(p, "ann", server, date(2026, 6, 1)) is ok
    if not ok:
        with pytest.raises(Forbidden, match="from the workspace of permit"):
            access.check_can_submit(p, "ann", server, date(2026, 6, 1))


@pytest.mark.parametrize("pid", ["DEMO-2026-001", "Awk.Case_2026.1", "a_b", "A.B-C_D", "2026-001", "X" * 63,
                                 "HDAB.Long_Permit-2026." + "Xy_z." * 8])
def test_a_permit_is_found_from_its_server_name(pid):
    others = [permit("OTHER-1"), permit("Other.2")]
    assert access.permit_for_server([*others, permit(pid)], server_name_for(pid)).id == pid


def test_unknown_and_shared_server_names_are_refused():
    with pytest.raises(NotFound, match="no permit opens as workspace"):
        access.permit_for_server([permit("P-1")], "p-9")
    with pytest.raises(NotFound):
        access.permit_for_server([permit("P.1")], "P.1")  # the id itself is not a server name
    with pytest.raises(Conflict, match="share the workspace name"):
        access.permit_for_server([permit("P.1"), permit("p_1")], "p-1")


def test_the_boolean_twin_answers_false_for_any_refusal_and_keeps_its_name():
    assert access.can_open.__name__ == "can_open"
    assert access.can_open(permit(status="suspended"), "ann", date(2026, 6, 1)) is False
    assert access.can_open(permit(), "ann", date(2026, 6, 1)) is True


@pytest.mark.parametrize("action", access.ACTIONS)
def test_a_role_without_the_action_is_forbidden(action):
    p = permit(role="observer")  # a role the table does not grant anything
    with pytest.raises(Forbidden, match="a role that may not"):
        access.check_can(action, p, "ann", date(2026, 6, 1))
