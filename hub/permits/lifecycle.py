"""Permit lifecycle as a table: (state, action) -> next state; one audit event per transition.

draft -> active -> suspended -> active … ; active|suspended -> expired ; any live -> revoked.
expired and revoked are terminal (data must then be deleted within the grace period).
"""

from __future__ import annotations

from hub.exceptions import Conflict

STATES = ("draft", "active", "suspended", "expired", "revoked")
LIVE = ("active",)  # states in which a workspace may run
ENDED = ("expired", "revoked")

TRANSITIONS: dict[tuple[str, str], str] = {
    ("draft", "activate"): "active",
    ("suspended", "activate"): "active",
    ("active", "suspend"): "suspended",
    ("active", "expire"): "expired",
    ("suspended", "expire"): "expired",
    ("draft", "expire"): "expired",
    ("draft", "revoke"): "revoked",
    ("active", "revoke"): "revoked",
    ("suspended", "revoke"): "revoked",
}

ACTIONS = sorted({a for (_, a) in TRANSITIONS})

# audit action per transition
AUDIT_ACTION = {a: f"permit.{a}" for a in ACTIONS}


def can_transition(state: str, action: str) -> bool:
    return (state, action) in TRANSITIONS


def check_transition(state: str, action: str) -> str:
    """Next state, or Conflict naming why the transition is not allowed."""
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        allowed = [a for (s, a) in TRANSITIONS if s == state]
        hint = f"; from {state!r} you can: {', '.join(allowed)}" if allowed else f"; {state!r} is final"
        raise Conflict(f"cannot {action} a permit that is {state}{hint}") from None
