"""The versioned audit event schema: every event type, who emits it and its required detail keys.

Pure data (no I/O, no imports from the rest of `hub`). `record()` checks an event against this
registry before appending it, so a caller that forgets a required key fails loudly at the
source instead of leaving an auditor with a hole (EHDS Art. 73(1)(e)). An action that is not
registered is still recorded (an unknown component must never lose its trail) but is logged
as a warning; register it here.

Bump `version` of an event type when its required keys change; the version is stored in each
event's detail under `"v"` only when it differs from 1, so the existing hashes stay stable.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EventType:
    action: str
    version: int
    required: tuple[str, ...]
    description: str
    category: str


def _t(action: str, required: tuple[str, ...], description: str, category: str, version: int = 1) -> EventType:
    return EventType(action, version, required, description, category)


_TYPES = [
    # identity and sessions
    _t("auth.login", (), "a user logged in to the hub", "access"),
    _t("auth.login_failed", ("reason",), "a login attempt failed (the attempted name is the actor)", "access"),
    _t("auth.logout", (), "a user logged out", "access"),
    _t("workspace.spawn", ("server",), "a workspace was started (detail: duration_seconds, image)", "workspace"),
    _t("workspace.spawn_failed", ("server", "reason"), "a workspace failed to start or was refused", "workspace"),
    _t("workspace.stop", ("server",), "a workspace was stopped (detail user when the actor is an operator)", "workspace"),
    _t("workspace.cull", ("user", "server", "idle_seconds"), "an idle workspace was culled (actor: the culler)", "workspace"),
    _t("session.cell", ("kernel_id", "code", "code_bytes"), "code cell sent to a kernel (recorded on the hub-side proxy)", "session"),
    _t("session.cell_output", ("kernel_id", "output_bytes"), "size of a kernel's outputs for a cell (content not stored)", "session"),
    _t("session.terminal", ("terminal", "command"), "a command typed into a workspace terminal", "session"),
    _t("session.file_save", ("path", "size_bytes"), "a file saved through the contents API", "session"),
    # datasets, permits, provisioning
    _t("dataset.add", ("kind", "fingerprint"), "a source dataset was registered", "permit"),
    _t("dataset.update", ("kind", "fingerprint"), "a source dataset changed", "permit"),
    _t("permit.create", ("version", "sha256"), "a data permit was created", "permit"),
    _t("permit.update", ("version", "sha256"), "a data permit was amended", "permit"),
    _t("permit.activate", ("from", "to"), "permit state change", "permit"),
    _t("permit.suspend", ("from", "to"), "permit state change", "permit"),
    _t("permit.resume", ("from", "to"), "permit state change", "permit"),
    _t("permit.expire", ("from", "to"), "permit state change", "permit"),
    _t("permit.revoke", ("from", "to"), "permit state change", "permit"),
    _t("extract.provision", ("rows", "seconds"), "a permit's extract was provisioned", "provisioning"),
    _t("extract.delete", ("versions",), "a permit's extracts were deleted", "provisioning"),
    _t("optout.import", ("lines", "added"), "opt-outs were imported", "permit"),
    # egress
    _t("egress.submit", ("request_id",), "an output was submitted for release", "egress"),
    _t("egress.check", ("request_id", "passed"), "automatic disclosure checks ran (detail: failed_rules)", "egress"),
    _t("egress.review", ("request_id", "decision"), "a reviewer decided on a request", "egress"),
    _t("egress.release", ("request_id",), "an output was released", "egress"),
    _t("egress.reject", ("request_id",), "a request was rejected", "egress"),
    _t("egress.withdraw", ("request_id",), "a request was withdrawn", "egress"),
    _t("egress.download", ("request_id",), "a released output was downloaded", "egress"),
    _t("dp.charge", ("epsilon",), "a differential-privacy query charged the budget", "egress"),
    _t("dp.refused", ("reason",), "a differential-privacy query was refused", "egress"),
    # audit trail itself and operator actions
    _t("audit.verify", ("ok", "events"), "the audit trail was verified", "audit"),
    _t("audit.checkpoint", ("seq", "hash"), "the chain head was signed", "audit"),
    _t("audit.purge", ("before", "through_seq", "events"), "events older than the retention were purged", "audit"),
    _t("audit.export", ("events", "format"), "an evidence pack was exported", "audit"),
    _t("operator.command", ("command",), "an operator ran an SPE CLI command", "operator"),
]

EVENT_TYPES: dict[str, EventType] = {t.action: t for t in _TYPES}


def missing_keys(action: str, detail: dict | None) -> list[str]:
    """Required detail keys that `detail` lacks for `action` ([] for unknown actions)."""
    t = EVENT_TYPES.get(action)
    if t is None:
        return []
    have = detail or {}
    return [k for k in t.required if k not in have]


def is_registered(action: str) -> bool:
    return action in EVENT_TYPES
