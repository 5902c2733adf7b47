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


# Required keys are the minimum an auditor needs; emitters add more (they are all stored).
_TYPES = [
    # identity and sessions (the hub; a failed login is auth.login with outcome "failed")
    _t("auth.login", (), "a user logged in, or failed to (outcome failed, detail reason)", "access"),
    _t("auth.logout", (), "a user logged out", "access"),
    _t("workspace.spawn", ("server",), "a workspace was started or refused (detail ready_seconds, image)", "workspace"),
    _t("workspace.stop", ("server",), "a workspace was stopped (detail user when the actor is not its owner)", "workspace"),
    _t("workspace.cull", ("user", "server"), "an idle workspace was culled (actor: the culler)", "workspace"),
    _t("workspace.terminate", ("user", "server", "reason"), "a workspace was stopped because its permit ended", "workspace"),
    _t("workspace.volumes.delete", ("volumes",), "a permit's workspace volumes were deleted", "workspace"),
    _t("kube.networkpolicy_check", ("result",),
       "the hub's start-up probe: does the cluster enforce the workspace NetworkPolicy (enforced, not-enforced, unknown)",
       "workspace"),
    _t("session.cell", ("kernel_id", "code", "code_bytes"), "code sent to a kernel (recorded on the hub-side proxy)", "session"),
    _t("session.cell_output", ("kernel_id", "output_bytes"), "size of a kernel's outputs (content not stored)", "session"),
    _t("session.terminal", ("terminal", "command"), "a command typed into a workspace terminal", "session"),
    _t("session.file_save", ("path", "size_bytes"), "a file saved through the contents API", "session"),
    # the browser as an egress channel (hub.sessionlog: contents caps, byte meter)
    _t("session.contents_read", ("path", "size_bytes", "sha256"), "a file over 64 KiB read through the contents API",
       "session"),
    _t("session.contents_refused", ("path", "reason"),
       "a contents-API read refused (binary, data by its bytes, or over the cap)", "session"),
    _t("session.output_truncated", ("kernel_id", "size_bytes", "sha256"),
       "a kernel message over 2 MiB was truncated before the browser", "session"),
    _t("session.output_withheld", ("channel", "object", "size_bytes", "sha256"),
       "output withheld from the browser: the day's byte budget was used up", "session"),
    _t("session.meter_warning", ("user", "used_bytes", "budget_bytes", "day"),
       "a researcher passed 80 % of the day's browser output budget of a permit", "session"),
    _t("session.upload_refused", ("path", "reason", "sha256"),
       "a file written through the contents API (an upload) was refused: not text or a notebook, or over the cap",
       "session"),
    _t("session.meter_raise", ("user", "day", "added_bytes", "budget_bytes"),
       "an operator raised a researcher's browser output budget for one day", "session"),
    # datasets, permits, provisioning (the control plane)
    _t("dataset.add", ("kind", "fingerprint"), "a source dataset was registered", "permit"),
    _t("dataset.update", ("kind", "fingerprint"), "a source dataset changed", "permit"),
    _t("permit.create", ("version", "sha256"), "a data permit was created", "permit"),
    _t("permit.update", ("version", "sha256"), "a data permit was amended", "permit"),
    *[_t(f"permit.{a}", ("from", "to"), "permit state change", "permit")
      for a in ("activate", "suspend", "resume", "expire", "revoke")],
    _t("extract.provision", ("rows", "seconds"), "a permit's extract was provisioned", "provisioning"),
    _t("extract.delete", ("versions",), "a permit's extracts were deleted", "provisioning"),
    _t("optout.import", ("lines", "added"), "opt-outs were imported", "permit"),
    # the citizens' side (hub.citizens): identities are keyed hashes, never the national identifier
    _t("citizen.link", (), "a citizen's login was linked to the keyed hash of their national identifier", "access"),
    _t("optout.citizen", (), "a citizen opted out (outcome refused: already opted out)", "permit"),
    _t("optout.withdraw", (), "a citizen withdrew their opt-out", "permit"),
    _t("optout.propagate", ("extract_version", "removed_versions"),
       "a permit's extract was re-provisioned without the persons who opted out", "provisioning"),
    _t("citizen.usage", ("permits",), "a citizen looked up which permits used their data", "access"),
    _t("donation.submit", ("format", "purposes", "expires"), "a citizen donated data with a consent", "permit"),
    _t("donation.withdraw", (), "a citizen withdrew the consent of a donation", "permit"),
    _t("finding.report", (), "a researcher reported a significant finding on a pseudonym (EHDS Art. 61(5))", "permit"),
    _t("finding.review", ("state",), "the HDAB accepted or rejected a reported finding", "permit"),
    _t("finding.resolve", ("state", "channel"), "the key holder resolved a finding's pseudonym", "permit"),
    _t("donation.build", ("donations", "persons"), "the data trustee pseudonymised donations into the donated dataset",
       "provisioning"),
    # the front office (hub.frontoffice): catalogue, applications (object_id: the application id), fees
    _t("catalogue.create", ("version", "sha256"), "a dataset's catalogue entry was created", "frontoffice"),
    _t("catalogue.update", ("version", "sha256"), "a dataset's catalogue entry was changed", "frontoffice"),
    _t("application.create", ("kind",), "a data access application or data request was started (draft)", "frontoffice"),
    _t("application.update", ("version",), "a draft application was changed by its applicant", "frontoffice"),
    *[_t(f"application.{a}", ("from", "to"), f"application transition: {a}", "frontoffice")
      for a in ("submit", "take", "request_information", "provide_information", "mark_complete", "consult",
                "end_consultation", "recommend", "grant", "grant_partially", "refuse", "return", "withdraw",
                "extend")],
    _t("application.consultation_response", ("dataset", "opinion"),
       "a data holder answered the consultation on an application", "frontoffice"),
    _t("application.reminder", ("due", "days_left"),
       "an application's decision deadline is near (mail the assessor and decider)", "frontoffice"),
    _t("application.overdue", ("due", "days_over"),
       "an application's decision deadline has passed (mail the assessor, decider and applicant)", "frontoffice"),
    _t("fees.meter", ("day", "permits"), "storage of permits' extracts and work volumes was metered", "frontoffice"),
    _t("fees.invoice", ("month", "total_cents"), "a monthly invoice of a permit was issued", "frontoffice"),
    # egress (object_id: the request id; transitions carry from/to states)
    _t("egress.create", ("kind",), "an output request was created", "egress"),
    *[_t(f"egress.{a}", ("from", "to"), f"egress request transition: {a}", "egress")
      for a in ("submit", "check", "review", "approve", "return", "reject", "release", "resubmit", "withdraw")],
    _t("egress.download", (), "a released output was downloaded (or refused)", "egress"),
    # inflow: import requests (egress.imports; object_id: the import id) and the package mirror
    _t("import.create", ("kind", "name", "sha256", "size_bytes"),
       "a researcher asked to import a file or a package into a permit's workspaces (or was refused)", "import"),
    *[_t(f"import.{a}", ("from", "to"), f"import request transition: {a}", "import")
      for a in ("approve", "reject", "withdraw", "revoke")],
    _t("mirror.add", ("index", "project", "version", "sha256"), "a wheel was added to a package index", "import"),
    _t("mirror.remove", ("index", "project", "version", "files"), "a release was removed from a package index",
       "import"),
    _t("dp.charge", ("epsilon",), "a differential-privacy query charged (or was refused) budget", "egress"),
    _t("dp.query", (), "a differential-privacy query ran, failed or was refused", "egress"),
    # the audit trail itself
    _t("audit.verify", ("ok", "events"), "the audit trail was verified", "audit"),
    _t("audit.checkpoint", ("seq", "hash"), "the chain head was signed", "audit"),
    _t("audit.rotate_key", ("old_key_id", "new_key_id"),
       "the checkpoint signing key was replaced (old checkpoints stay verifiable with its public key)", "audit"),
    _t("audit.purge", ("before", "through_seq", "events"), "events older than the retention were purged", "audit"),
    _t("audit.export", ("events", "format"), "an evidence pack was exported", "audit"),
    _t("audit.view", ("path",), "an auditor read the audit trail (filters in detail)", "audit"),
    # notifications (hub.notify): what an operator changed; the mails themselves are in the outbox
    _t("notify.retry", ("mails", "count"), "an operator queued failed notification mails again", "operator"),
    _t("permit.ending_soon", ("valid_until", "days_left"),
       "a permit ends soon (the notifier mails its members and the operators)", "permit"),
    _t("notify.preferences", ("user",), "a person chose opt-out or the daily digest for their own mail", "access"),
    _t("notify.address", ("user",), "an operator set a person's mail address, groups or opt-out", "operator"),
    _t("retention.delete", ("request", "files"),
       "files of an output request past its permit's retention were deleted (their hashes stay here)", "audit"),
]

# Families: every action with this prefix shares one type (operator CLI commands: cli.<command>).
FAMILIES: dict[str, EventType] = {
    "cli.": _t("cli.*", (), "an operator ran (or was refused) an SPE CLI command", "operator"),
}

EVENT_TYPES: dict[str, EventType] = {t.action: t for t in _TYPES}


def event_type(action: str) -> EventType | None:
    t = EVENT_TYPES.get(action)
    if t is None:
        for prefix, fam in FAMILIES.items():
            if action.startswith(prefix):
                return fam
    return t


def missing_keys(action: str, detail: dict | None) -> list[str]:
    """Required detail keys that `detail` lacks for `action` ([] for unknown actions)."""
    t = event_type(action)
    if t is None:
        return []
    have = detail or {}
    return [k for k in t.required if k not in have]
