"""The applications' business layer: the only code that changes applications.

Every command asks a guard of `workflow` first, then moves the application by the workflow's table
and writes its audit event in the SAME transaction (optimistic: the row's version must not have
moved), so the application and the trail cannot disagree. Bad input is refused before anything is
stored. A grant builds the permit documents (`grant.py`), checks them with the permit model, and
applies them with `PermitStore.apply_in` in the decision's own transaction (the same validated path
as `spe permit apply`); provisioning follows outside it (a failure there leaves the permit to the
operator: `spe permit provision`). A refusal creates nothing.

Must not import `egress` or the web layer.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import date
from typing import Callable

import sqlalchemy as sa

from hub import audit
from hub.audit.store import utc_now_iso
from hub.audit.tables import audit_events
from hub.datasets.registry import get_dataset
from hub.exceptions import Conflict, Forbidden, InvalidInput, NotFound, Refused
from hub.frontoffice.applications import deadlines, grant, workflow as wf
from hub.frontoffice.applications.model import (check_subset, parse_application, requested_variables,
                                                 team_usernames)
from hub.frontoffice.catalogue.store import Catalogue
from hub.frontoffice.fees.estimate import estimate_fee
from hub.frontoffice.fees.schedule import Fee, Schedule
from hub.frontoffice.roles import APPLICANT, ASSESSOR, DATA_HOLDER, DECIDER, OPERATOR, Actor
from hub.frontoffice.tables import applications
from hub.frontoffice.users import NO_ACCOUNT_HINT
from hub.permits.model import check_against_dataset, parse_permit
from hub.permits.store import PermitStore

log = logging.getLogger("spe.frontoffice")
MAX_TEXT_CHARS = 5000
SYSTEM = "system"


@dataclass(frozen=True)
class Application:
    id: str
    kind: str
    state: str
    applicant: str
    version: int
    document: dict
    facts: dict
    created_at: str
    updated_at: str

    @property
    def team(self) -> list[str]:
        return team_usernames(self.document, self.applicant)

    @property
    def datasets(self) -> list[str]:
        return [d["dataset"] for d in self.document["datasets"]]


def _text(value, field: str, required: bool = True) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput("give a reason (it is kept in the record)", field=field)
        return ""
    if not isinstance(value, str):
        raise InvalidInput("must be text", field=field)
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidInput(f"at most {MAX_TEXT_CHARS} characters", field=field)
    return value.strip()


class Applications:
    def __init__(self, engine: sa.Engine, *, config: dict, schedule: Schedule, catalogue: Catalogue, users,
                 provision: Callable[[str, str], None] | None = None, today: Callable[[], date] = date.today):
        """`users`: a directory with `exists(username)`; `provision(permit_id, actor)`: run after a
        grant (None: the operator provisions)."""
        self.engine = engine
        self.config = config
        self.schedule = schedule
        self.catalogue = catalogue
        self.users = users
        self.provision = provision
        self.today = today
        self.permits = PermitStore(engine)

    # --- reading -------------------------------------------------------------------------
    def _row(self, conn, app_id: str):
        row = conn.execute(sa.select(applications).where(applications.c.id == app_id)).first()
        if row is None:
            raise NotFound(f"no application {app_id!r}")
        return row

    @staticmethod
    def _app(row) -> Application:
        return Application(row.id, row.kind, row.state, row.applicant, row.version, json.loads(row.document_json),
                           json.loads(row.facts_json), row.created_at, row.updated_at)

    def load(self, app_id: str) -> Application:
        with self.engine.connect() as conn:
            return self._app(self._row(conn, app_id))

    def facts(self, app: Application) -> wf.ApplicationFacts:
        maintainers = {}
        for name in app.datasets:
            entry = self.catalogue.find(name)
            maintainers[name] = frozenset(entry["maintainers"]) if entry else frozenset()
        return wf.ApplicationFacts(id=app.id, state=app.state, applicant=app.applicant, team=frozenset(app.team),
                                   assessor=app.facts.get("assessor"), extended=bool(app.facts.get("extended")),
                                   consulted=frozenset(app.facts.get("consulted") or ()), maintainers=maintainers)

    def get(self, actor: Actor, app_id: str) -> Application:
        app = self.load(app_id)
        if not actor.has(OPERATOR):
            wf.check_can_view(self.facts(app), actor)
        return app

    def visible(self, actor: Actor, state: str | None = None) -> list[Application]:
        q = sa.select(applications).order_by(applications.c.created_at.desc())
        if state:
            q = q.where(applications.c.state == state)
        with self.engine.connect() as conn:
            apps = [self._app(r) for r in conn.execute(q)]
        if actor.has(OPERATOR):
            return apps
        return [a for a in apps if wf.can_view(self.facts(a), actor)]

    def clock(self, app: Application) -> deadlines.Clock:
        return deadlines.clock(app.facts, app.state, self.today(), self.config["deadlines"])

    def overdue(self) -> list[tuple[Application, deadlines.Clock]]:
        out = []
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(applications).where(applications.c.state.notin_(list(wf.FINAL)))).all()
        for r in rows:
            app = self._app(r)
            c = self.clock(app)
            if c.overdue:
                out.append((app, c))
        return sorted(out, key=lambda x: x[1].due)

    # --- the application as filled in ------------------------------------------------------
    def validate_document(self, raw: dict, applicant: str) -> dict:
        schemas = {e["dataset"]: s for e, s in self.catalogue.items()}
        doc = parse_application(raw, today=self.today(), config=self.config, dataset_schemas=schemas)
        missing = [u for u in team_usernames(doc, applicant)[1:] if not self.users.exists(u)]
        if missing:
            raise InvalidInput(f"team member {missing[0]!r} has no account; {NO_ACCOUNT_HINT}", field="team")
        # what a full grant would make must be a valid permit: cohort vocabulary, dates, variables
        for permit in grant.make_permit_documents("APP-CHECK", doc, applicant, requested_variables(doc),
                                                  doc["months"], self.today(), self.config):
            p = parse_permit(permit)
            check_against_dataset(p, get_dataset(self.engine, p.dataset).schema)
        return doc

    def estimate(self, doc: dict, applicant: str) -> Fee:
        holders = {e["dataset"]: e["holder"]["id"] for e, _ in self.catalogue.items()}
        cpu = (doc.get("resources") or {}).get("cpu_limit") or self.config["permits"]["resources"]["cpu_limit"]
        people = 1 if doc["kind"] == "data_request" else len(team_usernames(doc, applicant))
        return estimate_fee(self.schedule, kind=doc["kind"], category=doc["applicant_category"],
                            datasets=[{"dataset": d["dataset"], "holder": holders.get(d["dataset"], "unknown"),
                                       "tables": d["tables"]} for d in doc["datasets"]],
                            months=doc["months"], cpu_limit=float(cpu), people=people)

    def preview(self, actor: Actor, raw: dict) -> tuple[dict, Fee]:
        """Validate without storing; the estimate shown before submitting."""
        self._check_applicant(actor)
        doc = self.validate_document(raw, actor.username)
        return doc, self.estimate(doc, actor.username)

    @staticmethod
    def _check_applicant(actor: Actor) -> None:
        if not actor.has(APPLICANT):
            raise Forbidden(f"{actor.username} is not an applicant (ask for the applicant role)")

    def create(self, actor: Actor, raw: dict) -> Application:
        """A new draft; nothing is stored unless it is valid."""
        self._check_applicant(actor)
        doc = self.validate_document(raw, actor.username)
        app_id = "APP-" + secrets.token_hex(4).upper()
        now = utc_now_iso()
        with self.engine.begin() as conn:
            conn.execute(applications.insert().values(
                id=app_id, kind=doc["kind"], state=wf.DRAFT, applicant=actor.username, version=1,
                document_json=json.dumps(doc, sort_keys=True), facts_json="{}", created_at=now, updated_at=now))
            audit.record(conn, actor=actor.username, role=APPLICANT, action=wf.AUDIT_CREATE, object_id=app_id,
                         detail={"kind": doc["kind"], "purpose": doc["purpose"], "datasets": requested_variables(doc)})
        return self.load(app_id)

    def update(self, actor: Actor, app_id: str, raw: dict) -> Application:
        """Change a draft (the applicant)."""
        app = self.load(app_id)
        if actor.username != app.applicant:
            raise Forbidden(f"only the applicant ({app.applicant}) changes application {app_id}")
        if app.state != wf.DRAFT:
            raise Conflict(f"application {app_id} is {app.state.replace('_', ' ')}; only a draft can be changed")
        doc = self.validate_document(raw, actor.username)
        if doc["kind"] != app.kind:
            raise InvalidInput("the kind of an application cannot change; start a new one", field="kind")
        with self.engine.begin() as conn:
            self._write(conn, app, wf.DRAFT, doc=doc)
            audit.record(conn, actor=actor.username, role=APPLICANT, action=wf.AUDIT_UPDATE, object_id=app_id,
                         detail={"version": app.version + 1})
        return self.load(app_id)

    def _write(self, conn, app: Application, state: str, *, doc: dict | None = None, facts: dict | None = None) -> None:
        values = dict(state=state, version=app.version + 1, updated_at=utc_now_iso())
        if doc is not None:
            values["document_json"] = json.dumps(doc, sort_keys=True)
        if facts is not None:
            values["facts_json"] = json.dumps(facts, sort_keys=True)
        moved = conn.execute(applications.update().where(applications.c.id == app.id,
                                                         applications.c.version == app.version).values(**values))
        if moved.rowcount != 1:
            raise Conflict(f"application {app.id} changed meanwhile; reload it and try again")

    # --- the workflow --------------------------------------------------------------------
    def act(self, actor: Actor, app_id: str, action: str, **params) -> Application:
        """Take `action` (workflow.ACTIONS) with its parameters; returns the application after it."""
        if action not in wf.ACTIONS:
            raise InvalidInput(f"unknown action {action!r}; one of {', '.join(wf.ACTIONS)}", field="action")
        app = self.load(app_id)
        wf.check_can(action, self.facts(app), actor)
        today = self.today()
        facts = dict(app.facts)
        doc = None
        detail: dict = {}
        new_state = wf.next_state(app.state, action)
        role = wf.TRANSITIONS[(app.state, action)][1]
        if action == wf.EXTEND:
            role = ASSESSOR if app.state in (wf.ASSESSMENT, wf.CONSULTATION) else DECIDER

        if action == wf.SUBMIT:
            fee = self.estimate(app.document, app.applicant)
            if params.get("accept_fee_estimate") is not True:
                raise Refused(f"accept the fee estimate ({fee.currency} {fee.as_dict()['total']}) to submit")
            if "accepted_total_cents" in params and params["accepted_total_cents"] != fee.total_cents:
                raise Conflict("the fee estimate changed since it was shown; review it and accept it again")
            self.validate_document(app.document, app.applicant)  # catalogue, users and dates as of today
            facts.update(submitted_on=today.isoformat(), fee_estimate=fee.as_dict())
            detail = {"fee_estimate_cents": fee.total_cents, "currency": fee.currency}
        elif action == wf.TAKE:
            facts["assessor"] = actor.username
        elif action == wf.REQUEST_INFO:
            text = _text(params.get("text"), "text")
            facts = deadlines.pause(facts, today, self.config["deadlines"])
            facts.setdefault("information", []).append({"asked_on": today.isoformat(), "by": actor.username,
                                                         "question": text})
            detail = {"question": text, "clock_paused": bool(facts.get("paused_since"))}
        elif action == wf.PROVIDE_INFO:
            answer = _text(params.get("text"), "text")
            if params.get("document") is not None:
                doc = self.validate_document(params["document"], app.applicant)
                if doc["kind"] != app.kind:
                    raise InvalidInput("the kind of an application cannot change", field="kind")
            facts = deadlines.resume(facts, today)
            if facts.get("information"):
                facts["information"][-1].update(answered_on=today.isoformat(), answer=answer)
            detail = {"answer": answer, "changed_application": doc is not None}
        elif action == wf.MARK_COMPLETE:
            facts.setdefault("complete_on", today.isoformat())
            detail = {"complete_on": facts["complete_on"]}
        elif action == wf.CONSULT:
            wanted = params.get("datasets") or app.datasets
            unknown = sorted(set(wanted) - set(app.datasets))
            if unknown:
                raise InvalidInput(f"dataset {unknown[0]!r} is not part of this application", field="datasets")
            facts["consulted"] = sorted(set(wanted))
            detail = {"datasets": facts["consulted"]}
        elif action == wf.RECOMMEND:
            decision = params.get("decision")
            if decision not in wf.DECISIONS:
                raise InvalidInput(f"recommend one of {', '.join(wf.DECISIONS)}", field="decision")
            facts["recommendation"] = {"decision": decision, "reasons": _text(params.get("reasons"), "reasons"),
                                       "by": actor.username, "on": today.isoformat()}
            detail = {"decision": decision}
        elif action == wf.RETURN:
            facts["returned"] = {"reasons": _text(params.get("reasons"), "reasons"), "by": actor.username,
                                 "on": today.isoformat()}
            facts.pop("recommendation", None)
            detail = {"reasons": facts["returned"]["reasons"]}
        elif action == wf.EXTEND:
            facts.update(extended=True, extension_reason=_text(params.get("reasons"), "reasons"))
            detail = {"reasons": facts["extension_reason"]}
        elif action == wf.WITHDRAW:
            detail = {"reason": _text(params.get("reason"), "reason", required=False)}
        elif action in wf.DECISIONS:
            return self._decide(actor, app, action, params)

        with self.engine.begin() as conn:
            self._write(conn, app, new_state, doc=doc, facts=facts)
            audit.record(conn, actor=actor.username, role=role, action=wf.AUDIT_ACTION[action], object_id=app.id,
                         detail={"from": app.state, "to": new_state, "kind": app.kind, **detail})
        return self.load(app.id)

    def respond(self, actor: Actor, app_id: str, dataset: str, opinion: str, comment: str = "") -> Application:
        """A data holder's answer to the consultation (not a transition; audited)."""
        app = self.load(app_id)
        wf.check_can_respond(self.facts(app), actor, dataset)
        if opinion not in wf.OPINIONS:
            raise InvalidInput(f"opinion must be one of {', '.join(wf.OPINIONS)}", field="opinion")
        comment = _text(comment, "comment", required=opinion != "no_objection")
        facts = dict(app.facts)
        facts.setdefault("responses", {})[dataset] = {"by": actor.username, "opinion": opinion, "comment": comment,
                                                      "on": self.today().isoformat()}
        with self.engine.begin() as conn:
            self._write(conn, app, app.state, facts=facts)
            audit.record(conn, actor=actor.username, role=DATA_HOLDER, action=wf.AUDIT_CONSULTATION_RESPONSE,
                         object_id=app.id, detail={"dataset": dataset, "opinion": opinion, "comment": comment})
        return self.load(app.id)

    # --- the decision ----------------------------------------------------------------------
    def _decide(self, actor: Actor, app: Application, action: str, params: dict) -> Application:
        today = self.today()
        reasons = _text(params.get("reasons"), "reasons")
        new_state = wf.DECISIONS[action]
        requested = requested_variables(app.document)
        months = app.document["months"]
        granted = requested
        if action == wf.GRANT_PARTIALLY:
            granted = params.get("granted") or requested
            if not isinstance(granted, dict) or not granted:
                raise InvalidInput("say which datasets and variables are granted", field="granted")
            check_subset(granted, requested)
            months = int(params.get("months") or months)
            if not 1 <= months <= app.document["months"]:
                raise InvalidInput(f"a partial grant lasts 1..{app.document['months']} months", field="months")
            if granted == requested and months == app.document["months"]:
                raise InvalidInput("a partial grant narrows the request (variables, datasets or months); "
                                   "otherwise grant it", field="granted")
        documents = []
        if action != wf.REFUSE:
            documents = grant.make_permit_documents(app.id, app.document, app.applicant, granted, months, today,
                                                    self.config)
            for d in documents:  # checked before the transaction: a bad grant stores nothing
                check_against_dataset(parse_permit(d), get_dataset(self.engine, d["dataset"]).schema)
        facts = dict(app.facts)
        if facts.get("paused_since"):
            facts = deadlines.resume(facts, today)
        facts.update(decided_on=today.isoformat(), decider=actor.username,
                     decision={"decision": action, "reasons": reasons, "by": actor.username, "on": today.isoformat(),
                               "granted": granted if documents else {}, "months": months if documents else 0},
                     permits=[d["id"] for d in documents])
        with self.engine.begin() as conn:
            self._write(conn, app, new_state, facts=facts)
            audit.record(conn, actor=actor.username, role=DECIDER, action=wf.AUDIT_ACTION[action], object_id=app.id,
                         detail={"from": app.state, "to": new_state, "kind": app.kind, "reasons": reasons,
                                 "permits": facts["permits"]})
            for d in documents:
                self.permits.apply_in(conn, d, actor.username, today=today, role=DECIDER)
        if self.provision is not None:
            for pid in facts["permits"]:
                try:
                    self.provision(pid, actor.username)
                except Refused as err:
                    log.warning("provisioning %s after the grant was refused: %s", pid, err)
                except Exception:  # the decision stands; the operator provisions (spe permit provision)
                    log.exception("provisioning %s after the grant failed", pid)
        return self.load(app.id)

    # --- deadlines -----------------------------------------------------------------------
    def send_reminders(self) -> list[deadlines.Reminder]:
        """Emit each due reminder once as an audit event (the notifier mails them)."""
        today = self.today()
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(applications).where(applications.c.state.notin_(list(wf.FINAL)))).all()
            apps = [self._app(r) for r in rows]
            sent = conn.execute(sa.select(audit_events.c.object_id, audit_events.c.detail).where(
                audit_events.c.action.in_(["application.reminder", "application.overdue"]))).all()
        already = {(oid, json.loads(detail or "{}").get("key")) for oid, detail in sent}
        due = deadlines.reminders_due([(a.id, a.state, a.facts) for a in apps], today, self.config["deadlines"], already)
        by_id = {a.id: a for a in apps}
        with self.engine.begin() as conn:
            for r in due:
                app = by_id[r.application_id]
                owner = wf.owner_of(app.state)
                notify = [x for x in (app.facts.get("assessor"),) if x]
                if r.action == "application.overdue":
                    notify.append(app.applicant)
                detail = {"due": r.due.isoformat(), "key": r.key, "state": app.state, "owner": owner, "notify": notify}
                detail["days_left" if r.action == "application.reminder" else "days_over"] = r.days
                audit.record(conn, actor=SYSTEM, role="system", action=r.action, object_id=r.application_id,
                             detail=detail)
        return due
