"""Permit registry: apply (idempotent, versioned), read, and lifecycle transitions.

The only code that changes permit rows. Every change writes its audit event in the same
transaction, so the registry and the trail cannot disagree.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import sqlalchemy as sa

from hub import audit
from hub.audit.store import utc_now_iso
from hub.datasets.registry import get_dataset
from hub.exceptions import Conflict, NotFound
from hub.naming import server_name_for
from hub.permits.access import can_open, is_workspace_of
from hub.permits.acro import load_acro_policy, merge_acro, resolve_acro_reference
from hub.permits.lifecycle import AUDIT_ACTION, ENDED, check_transition
from hub.permits.model import Permit, check_against_dataset, document_digest, parse_permit
from hub.registry_tables import permit_versions, permits
from hub.yamlio import load_yaml_file


class PermitStore:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    # --- reading -------------------------------------------------------------------------
    def get(self, permit_id: str) -> Permit:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(permits).where(permits.c.id == permit_id)).mappings().first()
        if row is None:
            raise NotFound(f"no permit {permit_id!r}")
        return _to_permit(row)

    def list(self, status: str | None = None) -> list[Permit]:
        q = sa.select(permits).order_by(permits.c.id)
        if status:
            q = q.where(permits.c.status == status)
        with self.engine.connect() as conn:
            return [_to_permit(r) for r in conn.execute(q).mappings().all()]

    def active_for_user(self, username: str, today: date | None = None) -> list[Permit]:
        """The permits whose workspace the user may open now (`hub.permits.access.can_open`)."""
        return [p for p in self.list(status="active") if can_open(p, username, today)]

    def versions(self, permit_id: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(permit_versions.c.version, permit_versions.c.sha256,
                                          permit_versions.c.applied_at, permit_versions.c.applied_by)
                                .where(permit_versions.c.permit_id == permit_id)
                                .order_by(permit_versions.c.version)).mappings().all()
        return [dict(r) for r in rows]

    # --- changing ------------------------------------------------------------------------
    def apply_file(self, path: str | Path, actor: str, today: date | None = None) -> tuple[Permit, str]:
        # an `egress.acro_policy` reference is inlined (relative to the permit file) before parsing
        doc = resolve_acro_reference(load_yaml_file(path, "permit"), Path(path).parent)
        return self.apply(doc, actor, today=today)

    def apply_acro_policy(self, permit_id: str, path: str | Path, actor: str,
                          today: date | None = None) -> tuple[Permit, str]:
        """A new version of the permit whose egress rules take an ACRO policy file's values
        (`spe permit policy PERMIT --acro FILE`); nothing changes if the file is invalid."""
        egress = load_acro_policy(path)
        current = self.get(permit_id)
        return self.apply(merge_acro(current.document, egress, Path(path).name, override=True), actor, today=today)

    def apply(self, raw: dict, actor: str, today: date | None = None) -> tuple[Permit, str]:
        """Store a permit document. Returns (permit, "created" | "updated" | "unchanged").

        A new permit is created as draft and activated at once if today is within its
        validity; a changed document becomes a new version; the same document is a no-op.
        """
        with self.engine.begin() as conn:
            return self.apply_in(conn, raw, actor, today=today)

    def apply_in(self, conn: sa.Connection, raw: dict, actor: str, today: date | None = None,
                 role: str = "operator") -> tuple[Permit, str]:
        """`apply` inside the caller's transaction (a granted application stores its decision and
        its permits together): the same checks, the same rows and audit events."""
        permit = parse_permit(raw)
        dataset = get_dataset(conn, permit.dataset)
        check_against_dataset(permit, dataset.schema)
        doc_json = json.dumps(permit.document, sort_keys=True)
        digest = document_digest(permit.document)
        today = today or date.today()
        now = utc_now_iso()
        row = conn.execute(sa.select(permits).where(permits.c.id == permit.id)).mappings().first()
        if row is not None and document_digest(json.loads(row["document_json"])) == digest:
            return _to_permit(row), "unchanged"
        if row is not None and row["status"] in ENDED:
            raise Conflict(f"permit {permit.id} is {row['status']}; an ended permit cannot be changed")
        version = 1 if row is None else row["version"] + 1
        if row is None:
            _check_server_name_free(conn, permit.id)
            status = "draft"
            conn.execute(permits.insert().values(id=permit.id, version=version, status=status,
                                                 document_json=doc_json, updated_at=now))
            audit.record(conn, actor=actor, role=role, action="permit.create", permit_id=permit.id,
                         detail={"version": version, "sha256": digest, "dataset": permit.dataset,
                                 "purpose": permit.purpose})
            outcome = "created"
        else:
            status = row["status"]
            conn.execute(permits.update().where(permits.c.id == permit.id)
                         .values(version=version, document_json=doc_json, updated_at=now))
            audit.record(conn, actor=actor, role=role, action="permit.update", permit_id=permit.id,
                         detail={"version": version, "sha256": digest, "previous_version": row["version"]})
            outcome = "updated"
        conn.execute(permit_versions.insert().values(permit_id=permit.id, version=version, sha256=digest,
                                                     document_json=doc_json, applied_at=now, applied_by=actor))
        if status == "draft" and permit.valid_from <= today <= permit.valid_until:
            status = self._transition(conn, permit.id, status, "activate", actor, "valid from " + str(permit.valid_from),
                                      role=role)
        return permit.with_state(version=version, status=status), outcome

    def transition(self, permit_id: str, action: str, actor: str, reason: str = "") -> Permit:
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(permits).where(permits.c.id == permit_id)).mappings().first()
            if row is None:
                raise NotFound(f"no permit {permit_id!r}")
            self._transition(conn, permit_id, row["status"], action, actor, reason)
        return self.get(permit_id)

    def _transition(self, conn: sa.Connection, permit_id: str, state: str, action: str, actor: str, reason: str,
                    role: str = "operator") -> str:
        new = check_transition(state, action)
        updated = conn.execute(permits.update().where(permits.c.id == permit_id, permits.c.status == state)
                               .values(status=new, updated_at=utc_now_iso()))
        if updated.rowcount != 1:
            raise Conflict(f"permit {permit_id} changed concurrently; try again")
        audit.record(conn, actor=actor, role=role, action=AUDIT_ACTION[action], permit_id=permit_id,
                     detail={"from": state, "to": new, "reason": reason})
        return new


def _check_server_name_free(conn: sa.Connection, permit_id: str) -> None:
    """A new permit must not open as the workspace of another (`hub.naming.server_name_for`
    maps `DEMO.1` and `demo-1` to one server name): refused here, before either stops working."""
    server = server_name_for(permit_id)
    taken = [pid for (pid,) in conn.execute(sa.select(permits.c.id)) if is_workspace_of(pid, server)]
    if taken:
        raise Conflict(f"permit {permit_id} would open as workspace {server!r}, which is permit {taken[0]}'s; "
                       "give it an id that differs in more than case, '.', '_' or '-'")


def _to_permit(row) -> Permit:
    permit = parse_permit(json.loads(row["document_json"]))
    return permit.with_state(version=row["version"], status=row["status"])
