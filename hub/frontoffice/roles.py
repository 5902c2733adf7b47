"""Who may do what in the front office: roles from hub scopes, and the acting person.

A hub identity alone gets nothing: each role is a custom scope that a hub group grants
(hub.hubapp.config.GROUP_SCOPES), read from the OAuth token of the browser session or from an
API token. The CLI acts as `operator`. Pure. Must not import `egress`.
"""

from __future__ import annotations

from dataclasses import dataclass

APPLICANT, ASSESSOR, DECIDER, DATA_HOLDER, OPERATOR = "applicant", "assessor", "decider", "data_holder", "operator"
ROLES = (APPLICANT, ASSESSOR, DECIDER, DATA_HOLDER, OPERATOR)

SCOPE_APPLY = "custom:spe:apply"
SCOPE_ASSESS = "custom:spe:assess"
SCOPE_DECIDE = "custom:spe:decide"
SCOPE_CATALOGUE = "custom:spe:catalogue"
SCOPE_OPERATE = "custom:spe:operate"

# scope -> role (the hub config grants the scopes to groups: applicants, hdab-assessors,
# hdab-deciders, data-holders, operators)
SCOPE_ROLES = {
    SCOPE_APPLY: APPLICANT,
    SCOPE_ASSESS: ASSESSOR,
    SCOPE_DECIDE: DECIDER,
    SCOPE_CATALOGUE: DATA_HOLDER,
    SCOPE_OPERATE: OPERATOR,
}

SCOPE_DESCRIPTIONS = {
    SCOPE_APPLY: "Apply for data permits and data requests, follow one's applications.",
    SCOPE_ASSESS: "Assess data access applications for the HDAB (completeness, assessment, consultation).",
    SCOPE_DECIDE: "Decide data access applications for the HDAB (never one's own assessment).",
    SCOPE_CATALOGUE: "Maintain one's datasets in the catalogue and answer consultations as a data holder.",
}


@dataclass(frozen=True)
class Actor:
    username: str
    roles: frozenset = frozenset()

    def has(self, role: str) -> bool:
        return role in self.roles


def actor_from_scopes(username: str, scopes) -> Actor:
    """Roles from the scopes of a hub token (`custom:spe:apply` or `custom:spe:apply!user=<name>`)."""
    roles = set()
    for scope, role in SCOPE_ROLES.items():
        if scope in scopes or f"{scope}!user={username}" in scopes or f"{scope}!user" in scopes:
            roles.add(role)
    return Actor(username, frozenset(roles))


def operator(username: str) -> Actor:
    """The person running an `spe` command: the operator role only."""
    return Actor(username, frozenset({OPERATOR}))
