"""Identity attestation of a process's own operator, added to the events it records.

An entry point that knows who runs it (`hub.cli.main`: the Unix account, `hub.identity`) calls
`attest_local_operator(actor, keys)` once; from then on every event this process records with
that actor carries `keys` in its detail (`auth`, and `claimed_actor` when a different name was
claimed). The event's own detail keys win, so existing event shapes are unchanged apart from the
added keys. Processes that never call it (the hub, egress, services) record nothing extra.
"""

from __future__ import annotations

_attested: tuple[str, dict] | None = None


def attest_local_operator(actor: str, keys: dict) -> None:
    global _attested
    _attested = (actor, dict(keys))


def with_attestation(actor: str, detail: dict | None) -> dict | None:
    if _attested is None or actor != _attested[0]:
        return detail
    return {**_attested[1], **(detail or {})}
