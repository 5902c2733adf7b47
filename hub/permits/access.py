"""Permit access: who may open, submit for and query a permit, when, and from which workspace.

The one home of these rules (pure: no database, no web, no Docker). Used by both spawners,
the lifecycle service, the permit registry's spawn-form list, the egress workflow and the DP
service, so that the workspace a member may open is also the one she may submit from and query.

Every action on a permit's data needs the same facts:
- the user is a member whose role allows the action (`ROLE_ACTIONS`; the permit schema's roles);
- the permit is active (`hub.permits.lifecycle.LIVE`): never draft, suspended, expired or revoked;
- today is within valid_from..valid_until (the lifecycle service expires a permit only at its
  next round, so the dates are checked here too);
- submitting leaves only from the permit's own workspace: the server token names the server,
  and `is_workspace_of` compares it through `hub.naming`, never by hand (a permit id with `.`,
  `_`, upper case or more than 30 characters is not its own server name).

`permit_for_server` is the one lookup from a workspace (server name) to its permit; two permits
sharing a server name are refused, never guessed. Review and download are decided per egress
request in `egress.workflow` (independent checkers; members once released).

Guards come in pairs (STYLE): `check_can_open()` raises Forbidden (who) or Refused (when, state)
with a reason for the user, `can_open()` answers True/False for pages and the lifecycle plan.
Must not import `egress`.
"""

from __future__ import annotations

from datetime import date
from typing import Iterable

from hub.exceptions import Forbidden, Refused
from hub.naming import permit_id_for_server, server_name_for
from hub.permits.lifecycle import LIVE
from hub.permits.model import Permit

OPEN, SUBMIT, QUERY = "open", "submit", "query"
ACTIONS = (OPEN, SUBMIT, QUERY)

# member role (permit schema) -> the actions it allows. Every role works in the workspace today;
# a role that should not (say, a data manager who may not take outputs out) loses it here only.
ROLE_ACTIONS: dict[str, frozenset] = {
    "principal_investigator": frozenset({OPEN, SUBMIT, QUERY}),
    "researcher": frozenset({OPEN, SUBMIT, QUERY}),
    "data_manager": frozenset({OPEN, SUBMIT, QUERY}),
    # the applicant of a data request (EHDS Art. 69; hub.frontoffice): receives the released
    # statistics (egress lets members download), never opens a workspace, submits or queries
    "recipient": frozenset(),
}

# how a refusal names the action ("… only under an active permit")
_DOING = {OPEN: "workspaces can only run", SUBMIT: "outputs can only be submitted",
          QUERY: "DP queries can only run"}


def is_workspace_of(permit_id: str, server_name: str | None) -> bool:
    """True when `server_name` is the JupyterHub server (workspace) of `permit_id`."""
    return bool(server_name) and server_name_for(permit_id) == server_name


def permit_for_server(permits: Iterable[Permit], server_name: str) -> Permit:
    """The permit whose workspace is the server `server_name`; NotFound, or Conflict when two
    permits map to that name."""
    by_id = {p.id: p for p in permits}
    return by_id[permit_id_for_server(by_id, server_name)]


def check_can(action: str, permit: Permit, username: str, today: date | None = None) -> None:
    """Member with a role allowing `action`, active permit, today within its dates; or the reason."""
    role = permit.member_role(username)
    if role is None:
        raise Forbidden(f"{username} is not a member of permit {permit.id}")
    if action not in ROLE_ACTIONS.get(role, frozenset()):
        raise Forbidden(f"{username} is {role.replace('_', ' ')} of permit {permit.id}, a role that may not {action}")
    if permit.status not in LIVE:
        raise Refused(f"permit {permit.id} is {permit.status}; {_DOING[action]} under an active permit")
    today = today or date.today()
    if not (permit.valid_from <= today <= permit.valid_until):
        raise Refused(f"permit {permit.id} is valid from {permit.valid_from} to {permit.valid_until}; "
                      f"{_DOING[action]} within those dates")


def check_from_workspace(permit: Permit, server_name: str | None, action: str) -> None:
    """The action comes from the permit's own workspace (its server token names the server)."""
    if not is_workspace_of(permit.id, server_name):
        raise Forbidden(f"{action} from the workspace of permit {permit.id} "
                        f"({server_name_for(permit.id)}), not from {server_name or 'outside a workspace'}")


def check_can_open(permit: Permit, username: str, today: date | None = None) -> None:
    """Open (spawn, keep running) the permit's workspace."""
    check_can(OPEN, permit, username, today)


def check_can_submit(permit: Permit, username: str, server_name: str | None, today: date | None = None) -> None:
    """Submit an output for review: as for opening, and from the permit's own workspace."""
    check_can(SUBMIT, permit, username, today)
    check_from_workspace(permit, server_name, "submit outputs")


def check_can_query(permit: Permit, username: str, today: date | None = None) -> None:
    """Run a DP query (and see one's own budget). The DP service enforces this before any charge;
    its web layer takes only the permit of the calling workspace."""
    check_can(QUERY, permit, username, today)


def boolean_guard(check):
    """The `can_*` twin of a `check_can_*` guard: False where it would refuse (any Refused)."""
    def can(*args, **kwargs) -> bool:
        try:
            check(*args, **kwargs)
        except Refused:
            return False
        return True
    can.__name__ = check.__name__.replace("check_", "", 1)
    can.__qualname__ = can.__name__
    can.__doc__ = f"True when `{check.__name__}` would allow it."
    return can


can_open = boolean_guard(check_can_open)
can_submit = boolean_guard(check_can_submit)
can_query = boolean_guard(check_can_query)
