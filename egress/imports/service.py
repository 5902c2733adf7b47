"""The import business layer: the only code that changes import state, and what pages show of it.

Commands (`request_file`, `request_package`, `approve`, `reject`, `withdraw`, `revoke`) ask a
guard of `egress.imports.workflow`, then move the request by the workflow's table and write its
audit event in the SAME transaction (compare-and-set on `row_version`). Everything slow or
outside the database happens before that transaction: checking the upload, fetching the wheel
(operator side, `hub.mirror.download`), storing the bytes in the blob store, staging the file to
publish. Publishing follows `hub.staging`: an approval places the file (or the wheel) only
after its commit, a revocation unpublishes before its commit, so a crash never serves what the
registry does not show as approved. A refused request leaves one audit event (outcome refused)
and nothing else.

Where approved things go: a file to `<imports root>/<permit>/<name>` (read-only at /imports in
the permit's workspaces), a wheel to the permit's index of the package mirror
(`hub.mirror.store.PackageMirror`, its own `mirror.add` event in the same transaction).
Must not import the web layer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa

from egress.imports import policy
from egress.imports import workflow as wf
from egress.imports.tables import import_requests
from egress.store import BlobStore
from egress.workflow import SCOPE_REVIEW, Actor
from hub import audit
from hub.audit.store import utc_now_iso
from hub.db import transaction
from hub.exceptions import Conflict, Forbidden, InvalidInput, NotFound, Refused
from hub.mirror.download import DownloadSettings, download_wheel
from hub.mirror.store import PackageMirror
from hub.mirror.tables import SHARED_INDEX
from hub.mirror.wheels import Requirement, check_project_name, check_version
from hub.permits.model import Permit
from hub.permits.store import PermitStore
from hub.settings import Settings
from hub.staging import Staged, ensure_dir, unpublish

log = logging.getLogger("spe.egress.imports")

STAGING_DIR = ".staging"
MAX_COMMENT_CHARS = 5000
_ID_CHARS = 40
PENDING_OR_DONE = (wf.SUBMITTED, wf.APPROVED)


@dataclass(frozen=True)
class ImportSettings:
    max_bytes: int = policy.DEFAULT_MAX_IMPORT_BYTES
    download: DownloadSettings = DownloadSettings()


class ImportService:
    def __init__(self, engine: sa.Engine, settings: Settings, store: BlobStore,
                 config: ImportSettings = ImportSettings(), today: date | None = None):
        self.engine = engine
        self.store = store
        self.config = config
        self.today = today
        self.permits = PermitStore(engine)
        self.mirror = PackageMirror(engine, settings.mirror_dir)
        self.root = settings.imports_dir

    # --- asking --------------------------------------------------------------------------------
    def request_file(self, actor: Actor, permit_id: str, name: object, data: bytes, justification: object) -> dict:
        """A file for /imports of the permit's workspaces, waiting for a checker."""
        with self._refusals_audited(actor, permit_id, wf.FILE, name, data):
            permit = self._permit(permit_id)
            wf.check_can_request(permit, actor, self.today)
            facts = policy.check_upload(name, data, self.config.max_bytes)
            text = policy.check_justification(justification)
            self._check_name_free(permit.id, facts.name)
            self.store.put(bytes(data))  # before the transaction: an orphan blob is harmless
            ensure_dir(self.root / permit.id)  # exists before any workspace mounts it
            detail = {"type": _type_dict(facts.file_type)}
            return self._insert(actor, permit, wf.FILE, text, name=facts.name, sha256=facts.sha256,
                                size_bytes=facts.size_bytes, detected_type=facts.file_type.kind, detail=detail)

    def request_package(self, actor: Actor, permit_id: str, name: object, version: object,
                        justification: object) -> dict:
        """One release NAME==VERSION for the permit's index: the wheel is fetched now (operator
        side) so that the checker sees what would be installed, then waits for a checker."""
        with self._refusals_audited(actor, permit_id, wf.PACKAGE, f"{name}=={version}", b""):
            permit = self._permit(permit_id)
            wf.check_can_request(permit, actor, self.today)
            requirement = Requirement(check_project_name(name), check_version(version))
            text = policy.check_justification(justification)
            self._check_release_free(permit.id, requirement)
            info, data = download_wheel(requirement, self.config.download)
            digest = self.store.put(data)
            detail = {"type": {"kind": "wheel", "label": "Python wheel (package)", "family": "archive",
                               "warning": "installing a package runs its code in the workspace"},
                      "wheel": {"summary": info.summary, "license": info.license,
                                "requires_python": info.requires_python, "requires_dist": list(info.requires_dist),
                                "home_page": info.home_page},
                      "source": self.config.download.index_url}
            return self._insert(actor, permit, wf.PACKAGE, text, name=info.filename, sha256=digest,
                                size_bytes=len(data), detected_type="wheel", detail=detail,
                                project=requirement.project, version=requirement.version)

    def _insert(self, actor: Actor, permit: Permit, kind: str, justification: str, **values) -> dict:
        import_id = "i-" + secrets.token_hex(8)
        now = utc_now_iso()
        detail = values.pop("detail")
        with transaction(self.engine) as conn:
            conn.execute(import_requests.insert().values(
                id=import_id, permit_id=permit.id, author=actor.username, kind=kind, state=wf.SUBMITTED,
                row_version=1, justification=justification, detail_json=json.dumps(detail, sort_keys=True),
                created_at=now, updated_at=now, **values))
            audit.record(conn, actor=actor.username, role="researcher", action=wf.AUDIT_CREATE, permit_id=permit.id,
                         object_id=import_id,
                         detail={"kind": kind, "name": values["name"], "sha256": values["sha256"],
                                 "size_bytes": values["size_bytes"], "detected_type": values["detected_type"],
                                 **({"project": values["project"], "version": values["version"],
                                     "source": detail["source"]} if kind == wf.PACKAGE else {})})
        return self.get(actor, import_id)

    # --- deciding ------------------------------------------------------------------------------
    def approve(self, actor: Actor, import_id: str, comment: object = "") -> dict:
        """An independent checker approves: the file appears under /imports, or the wheel in the
        permit's index, right after the commit."""
        row, facts, permit = self._load(import_id)
        with self._denials_audited(actor, row, wf.APPROVE):
            wf.check_can_approve(facts, actor)
            comment = _comment(comment, required=False)
        data = self.store.get(row["sha256"])
        if row["kind"] == wf.FILE:
            target = self.root / row["permit_id"] / row["name"]
            if target.exists():
                raise Conflict(f"{row['name']} is already in /imports of permit {row['permit_id']}; reject this "
                               "request and ask for another name")
            staged = Staged(self.root / STAGING_DIR, data)
            pending = None
        else:
            pending = self.mirror.stage(row["permit_id"], row["name"], data, source=_detail(row).get("source", ""),
                                        expected=Requirement(row["project"], row["version"]))
            staged, target = pending.staged, pending.target
        with staged:
            with transaction(self.engine) as conn:
                current = self._locked(conn, row)
                wf.check_can_approve(_facts_of(current, permit), actor)
                published = f"/imports/{row['name']}" if pending is None else f"{row['project']}=={row['version']}"
                self._transition(conn, current, wf.APPROVE, actor, comment,
                                 {"sha256": row["sha256"], "published": published})
                if pending is not None:
                    self.mirror.record_add(conn, pending, actor=actor.username, role="output_checker",
                                           origin=f"import {import_id}")
            staged.place(target)
        return self.get(actor, import_id)

    def reject(self, actor: Actor, import_id: str, comment: object) -> dict:
        return self._simple(actor, import_id, wf.REJECT, comment, role="output_checker")

    def withdraw(self, actor: Actor, import_id: str) -> dict:
        return self._simple(actor, import_id, wf.WITHDRAW, "", role="researcher")

    def revoke(self, actor: Actor, import_id: str, comment: object) -> dict:
        """Take an approved import back: unpublished first, then recorded."""
        row, facts, permit = self._load(import_id)
        with self._denials_audited(actor, row, wf.REVOKE):
            wf.check_can_revoke(facts, actor)
            comment = _comment(comment, required=True)
        requirement = Requirement(row["project"], row["version"]) if row["kind"] == wf.PACKAGE else None
        if requirement is None:
            unpublish(self.root / row["permit_id"] / row["name"])
            removed = []
        else:
            removed = self.mirror.unpublish(row["permit_id"], requirement)
        with transaction(self.engine) as conn:
            current = self._locked(conn, row)
            wf.check_can_revoke(_facts_of(current, permit), actor)
            self._transition(conn, current, wf.REVOKE, actor, comment, {"sha256": row["sha256"]})
            if removed:
                self.mirror.record_remove(conn, row["permit_id"], requirement, removed, actor=actor.username,
                                          role=_role(actor), reason=f"import {import_id} revoked: {comment}")
        return self.get(actor, import_id)

    def _simple(self, actor: Actor, import_id: str, action: str, comment: object, role: str) -> dict:
        row, facts, permit = self._load(import_id)
        with self._denials_audited(actor, row, action):
            wf.check_can(action, facts, actor)
            comment = _comment(comment, required=action == wf.REJECT)
        with transaction(self.engine) as conn:
            current = self._locked(conn, row)
            wf.check_can(action, _facts_of(current, permit), actor)
            self._transition(conn, current, action, actor, comment, {})
        return self.get(actor, import_id)

    # --- reading -------------------------------------------------------------------------------
    def get(self, actor: Actor, import_id: str) -> dict:
        """One import as pages and the API show it, with the buttons the guards would allow."""
        row, facts, _ = self._load(import_id)
        wf.check_can_view(facts, actor)
        out = _summary(row)
        detail = _detail(row)
        out.update(type=detail.get("type", {}), wheel=detail.get("wheel"), source=detail.get("source"),
                   justification=row["justification"], decided_by=row["decided_by"],
                   decision_comment=row["decision_comment"], owner=wf.OWNER[row["state"]])
        out["preview"] = None
        if row["kind"] == wf.FILE and out["type"].get("family") in ("text", "notebook", "executable"):
            from hub.filetypes import detect

            data = self.store.get(row["sha256"])
            out["preview"] = policy.text_preview(data, detect(data))
        out["can"] = {action: wf.can(action, facts, actor) for action in wf.ACTIONS}
        return out

    def list_own(self, actor: Actor) -> list[dict]:
        """The actor's own import requests, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(import_requests).where(import_requests.c.author == actor.username)
                                .order_by(import_requests.c.created_at.desc())).mappings().all()
        return [_summary(r) for r in rows]

    def queue(self, actor: Actor) -> list[dict]:
        """Submitted imports this checker may decide (never their own permits'), oldest first."""
        if not actor.has(SCOPE_REVIEW):
            raise Forbidden(f"{actor.username} is not an output checker")
        permits = {p.id: p for p in self.permits.list()}
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(import_requests).where(import_requests.c.state == wf.SUBMITTED)
                                .order_by(import_requests.c.created_at)).mappings().all()
        return [_summary(r) for r in rows if wf.can_reject(_facts_of(r, permits.get(r["permit_id"])), actor)]

    def permits_for(self, actor: Actor) -> list[Permit]:
        """The permits the actor may ask imports for (the form's choices)."""
        return [p for p in self.permits.active_for_user(actor.username) if wf.can_request(p, actor, self.today)]

    # --- helpers -------------------------------------------------------------------------------
    def _permit(self, permit_id: object) -> Permit:
        if not isinstance(permit_id, str) or not permit_id or len(permit_id) > 64:
            raise InvalidInput("name the permit the import is for", field="permit")
        return self.permits.get(permit_id)

    def _check_name_free(self, permit_id: str, name: str) -> None:
        with self.engine.connect() as conn:
            taken = conn.execute(sa.select(import_requests.c.id).where(
                import_requests.c.permit_id == permit_id, import_requests.c.kind == wf.FILE,
                import_requests.c.name == name, import_requests.c.state.in_(PENDING_OR_DONE))).first()
        if taken is not None or (self.root / permit_id / name).exists():
            raise Conflict(f"{name} is already imported or waiting for review in permit {permit_id}; "
                           "choose another name")

    def _check_release_free(self, permit_id: str, requirement: Requirement) -> None:
        with self.engine.connect() as conn:
            taken = conn.execute(sa.select(import_requests.c.id, import_requests.c.state).where(
                import_requests.c.permit_id == permit_id, import_requests.c.kind == wf.PACKAGE,
                import_requests.c.project == requirement.project, import_requests.c.version == requirement.version,
                import_requests.c.state.in_(PENDING_OR_DONE))).first()
        if taken is not None:
            raise Conflict(f"{requirement} was already requested for permit {permit_id} ({taken.id}, {taken.state})")
        for index in (permit_id, SHARED_INDEX):
            if self.mirror.list(index, requirement):
                raise Conflict(f"{requirement} is already in the package mirror for permit {permit_id}: "
                               f"pip install {requirement}")

    def _load(self, import_id: str):
        """(row, facts, permit), read before any transaction: on SQLite a second connection
        inside one would wait for the write lock its own caller holds."""
        if not isinstance(import_id, str) or len(import_id) > _ID_CHARS:
            raise NotFound("no such import")
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(import_requests).where(import_requests.c.id == import_id)).mappings().first()
        if row is None:
            raise NotFound(f"no import {import_id!r}")
        permit = self.permits.get(row["permit_id"])
        return row, _facts_of(row, permit), permit

    def _locked(self, conn, row):
        q = sa.select(import_requests).where(import_requests.c.id == row["id"])
        if conn.dialect.name != "sqlite":  # SQLite: BEGIN IMMEDIATE already serialises
            q = q.with_for_update()
        current = conn.execute(q).mappings().one()
        if current["row_version"] != row["row_version"]:
            raise Conflict(f"import {row['id']} was changed by someone else; reload and try again")
        return current

    def _transition(self, conn, row, action: str, actor: Actor, comment: str, detail: dict) -> None:
        new_state = wf.next_state(row["state"], action)
        values = {"state": new_state, "row_version": row["row_version"] + 1, "updated_at": utc_now_iso()}
        if action != wf.WITHDRAW:
            values.update(decided_by=actor.username, decision_comment=comment)
        updated = conn.execute(import_requests.update().where(
            import_requests.c.id == row["id"], import_requests.c.row_version == row["row_version"]).values(**values))
        if updated.rowcount != 1:
            raise Conflict(f"import {row['id']} was changed by someone else; reload and try again")
        audit.record(conn, actor=actor.username, role=_role(actor) if action != wf.WITHDRAW else "researcher",
                     action=wf.AUDIT_ACTION[action], permit_id=row["permit_id"], object_id=row["id"],
                     detail={"from": row["state"], "to": new_state, "kind": row["kind"], "name": row["name"],
                             **({"comment": comment[:500]} if comment else {}), **detail})

    def _refusals_audited(self, actor: Actor, permit_id, kind: str, name, data):
        return _AuditRefusal(self.engine, actor, wf.AUDIT_CREATE, permit_id if isinstance(permit_id, str) else None,
                             None, {"kind": kind, "name": str(name)[:200],
                                    "sha256": _sha256(data), "size_bytes": _size(data)})

    def _denials_audited(self, actor: Actor, row, action: str):
        return _AuditRefusal(self.engine, actor, wf.AUDIT_ACTION[action], row["permit_id"], row["id"],
                             {"from": row["state"], "to": row["state"], "kind": row["kind"], "name": row["name"]})


class _AuditRefusal:
    """Context manager: a Refused raised inside leaves one audit event (outcome refused) in its own
    transaction, then propagates. Nothing else is written."""

    def __init__(self, engine, actor: Actor, action: str, permit_id, object_id, detail: dict):
        self.engine, self.actor, self.action = engine, actor, action
        self.permit_id, self.object_id, self.detail = permit_id, object_id, detail

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or not isinstance(exc, Refused):
            return False
        try:
            with transaction(self.engine) as conn:
                audit.record(conn, actor=self.actor.username, role=_role(self.actor), action=self.action,
                             permit_id=self.permit_id, object_id=self.object_id, outcome="refused",
                             detail={**self.detail, "reason": str(exc)[:500], "refusal": type(exc).__name__})
        except Exception:  # the refusal itself must still reach the user
            log.exception("could not audit a refused import action")
        return False


def _facts_of(row, permit: Permit | None) -> wf.ImportFacts:
    return wf.ImportFacts(id=row["id"], state=row["state"], author=row["author"], permit_id=row["permit_id"],
                          permit_members=frozenset(m.username for m in permit.members) if permit else frozenset(),
                          permit_status=permit.status if permit else "revoked", kind=row["kind"])


def _summary(row) -> dict:
    return {"id": row["id"], "permit_id": row["permit_id"], "author": row["author"], "kind": row["kind"],
            "state": row["state"], "name": row["name"], "project": row["project"], "version": row["version"],
            "sha256": row["sha256"], "size_bytes": row["size_bytes"], "detected_type": row["detected_type"],
            "created_at": row["created_at"], "updated_at": row["updated_at"], "row_version": row["row_version"],
            "published": _published(row)}


def _detail(row) -> dict:
    try:
        return json.loads(row["detail_json"] or "{}")
    except ValueError:
        return {}


def _type_dict(ftype) -> dict:
    return {"kind": ftype.kind, "label": ftype.label, "family": ftype.family, "warning": ftype.warning}


def _role(actor: Actor) -> str:
    return "output_checker" if actor.has(SCOPE_REVIEW) else "operator" if actor.has(wf.SCOPE_OPERATE) else "researcher"


def _comment(comment: object, *, required: bool) -> str:
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS:
        raise InvalidInput(f"a comment is text of at most {MAX_COMMENT_CHARS} characters", field="comment")
    if required and not comment.strip():
        raise InvalidInput("say why: the author needs a reason", field="comment")
    return comment.strip()


def _size(data) -> int:
    return len(data) if isinstance(data, (bytes, bytearray)) else 0


def _sha256(data) -> str:
    return hashlib.sha256(data).hexdigest() if isinstance(data, (bytes, bytearray)) and data else ""


def _published(row) -> str | None:
    """Where an approved import is in the workspace (shown to the researcher)."""
    if row["state"] != wf.APPROVED:
        return None
    return f"/imports/{row['name']}" if row["kind"] == wf.FILE else f"pip install {row['project']}=={row['version']}"
