"""SPE roles from the scopes of a hub identity (pure).

The hub grants each group its custom scopes (hub.hubapp.config.GROUP_SCOPES); a page learns
who someone is only from those scopes, whether it runs in the hub (the session's expanded
scopes) or in a service (the scopes of the OAuth token). A role is shown on screen and decides
the navigation; the actions themselves stay guarded by their own scope checks.
Must not import `egress`.
"""

from __future__ import annotations

RESEARCHER, CHECKER, AUDITOR, OPERATOR = "researcher", "output_checker", "auditor", "operator"
APPLICANT, ASSESSOR, DECIDER, DATA_HOLDER = "applicant", "assessor", "decider", "data_holder"
CITIZEN = "citizen"  # a person whose health data may be used (hub.citizens): opt-out, who used it

# the order roles are shown in; each with the scopes that make it (any one of them)
ROLE_SCOPES = {
    RESEARCHER: ("custom:spe:submit", "custom:spe:download", "custom:spe:import"),
    CHECKER: ("custom:spe:review", "custom:spe:release"),
    AUDITOR: ("custom:spe:audit",),
    OPERATOR: ("custom:spe:operate",),
    APPLICANT: ("custom:spe:apply",),
    ASSESSOR: ("custom:spe:assess",),
    DECIDER: ("custom:spe:decide",),
    DATA_HOLDER: ("custom:spe:catalogue",),
    CITIZEN: ("access:services!service=citizens",),
}

ROLE_LABELS = {  # English message ids (hub.ui.i18n translates them)
    RESEARCHER: "researcher",
    CHECKER: "output checker",
    AUDITOR: "auditor",
    OPERATOR: "operator",
    APPLICANT: "applicant",
    ASSESSOR: "HDAB assessor",
    DECIDER: "HDAB decider",
    DATA_HOLDER: "data holder",
    CITIZEN: "citizen",
}


def has_scope(scopes, scope: str, username: str) -> bool:
    """`scope` unfiltered, or filtered to this user (`!user=<name>`, `!user`)."""
    return scope in scopes or f"{scope}!user={username}" in scopes or f"{scope}!user" in scopes


def roles_from_scopes(username: str, scopes) -> tuple[str, ...]:
    """The person's SPE roles, in display order; none for a hub identity without SPE scopes."""
    scopes = frozenset(scopes or ())
    return tuple(role for role, needed in ROLE_SCOPES.items()
                 if any(has_scope(scopes, s, username) for s in needed))
