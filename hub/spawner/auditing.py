"""Audit events of a permit spawner (Docker or Kubernetes): one helper both share.

`SpawnAuditMixin._audit()` appends a `workspace.*` event for the spawner's user and server,
naming the operator when someone other than the owner started or stopped it. The spawner
class supplies `spawner_engine()` (the registry database) and `audit_object_name()` (the
container or pod). Must not import egress, docker or kubernetes.
"""

from __future__ import annotations

from hub import audit


class SpawnAuditMixin:
    """Mixed into a JupyterHub Spawner subclass."""

    def spawner_engine(self):  # pragma: no cover - each spawner class overrides it
        raise NotImplementedError

    def audit_object_name(self) -> str | None:  # pragma: no cover - each spawner class overrides it
        raise NotImplementedError

    def _requested_by(self) -> str | None:
        """Who asked for this start (an operator may start a user's workspace), when the hub tells us."""
        who = getattr(getattr(self, "handler", None), "current_user", None)
        return getattr(who, "name", None)

    def _audit(self, action: str, *, outcome: str = "ok", permit_id: str | None = None, detail: dict | None = None):
        detail = dict(detail or {})
        detail.setdefault("server", self.name)  # the event schema (hub.audit.events) requires it
        requester = self._requested_by()
        if requester and requester != self.user.name:
            detail["requested_by"] = requester
        with self.spawner_engine().begin() as conn:
            audit.record(conn, actor=self.user.name, role="researcher", action=action,
                         permit_id=permit_id, object_id=self.audit_object_name(), outcome=outcome, detail=detail)
