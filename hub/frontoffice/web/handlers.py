"""Front-office routes: the public catalogue (search with facets, a page per dataset, the DCAT
harvest endpoint), data holders' entry editing, applications (form with the fee estimate,
the application page whose buttons come from the same guards as the actions, the HDAB queue with
the overdue list, consultations) and invoices; a JSON API beside the pages.

Handlers only translate HTTP to the business layers (`Catalogue`, `Applications`) and back.
Must not import `egress`.
"""

from __future__ import annotations

import json
from datetime import date

import sqlalchemy as sa
from tornado import web

from hub.audit.tables import audit_events
from hub.exceptions import Forbidden, InvalidInput
from hub.frontoffice.applications import workflow as wf
from hub.frontoffice.catalogue import vocab
from hub.frontoffice.catalogue.dcat import FORMATS
from hub.frontoffice.catalogue.model import variables
from hub.frontoffice.catalogue.search import FACETS, search, search_text
from hub.frontoffice.catalogue.store import can_edit
from hub.frontoffice.fees.invoice import list_invoices, render_html, render_pdf
from hub.frontoffice.config import text
from hub.frontoffice.roles import ASSESSOR, DATA_HOLDER, DECIDER, OPERATOR
from hub.permits.purposes import ALLOWED
from hub.permits.store import PermitStore
from hub.frontoffice.web.base import FrontOfficeHandler
from hub.yamlio import load_yaml_text
from hub.notify.web import routes as notify_routes

VOCABS = {"theme": vocab.DATA_THEMES, "access_rights": vocab.ACCESS_RIGHTS, "language": vocab.LANGUAGES,
          "health_category": vocab.HEALTH_CATEGORIES}


# --- the public catalogue -------------------------------------------------------------------------

def _search(fo, query: str, filters: dict, covers: int | None):
    items = fo.catalogue.items()
    entries = [e for e, _ in items]
    texts = {e["dataset"]: search_text(e, [v["key"] for v in variables(e, s)]) for e, s in items}
    return search(entries, query, filters, covers, texts)


class CatalogueHandler(FrontOfficeHandler):
    def _params(self):
        filters = {f: set(self.get_arguments(f)) for f in FACETS}
        covers = self.get_argument("covers", "")
        if covers and not (covers.isdigit() and len(covers) == 4):
            raise InvalidInput("covers must be a year (YYYY)", field="covers")
        return self.get_argument("q", "")[:200], filters, int(covers) if covers else None

    async def get(self):
        q, filters, covers = self._params()
        result = await self.call(_search, self.fo, q, filters, covers)
        holders = {e["holder"]["id"]: e["holder"]["name"] for e in result.entries}
        self.page("catalogue.html", result=result, q=q, filters=filters, covers=covers or "", vocabs=VOCABS,
                  holders=holders, text=text)


class CatalogueApiHandler(CatalogueHandler):
    api = True

    async def get(self):
        q, filters, covers = self._params()
        result = await self.call(_search, self.fo, q, filters, covers)
        self.send_json({"total": result.total, "facets": result.facets,
                        "datasets": [{k: v for k, v in e.items() if not k.startswith("_") and k != "maintainers"}
                                     for e in result.entries]})


class DatasetPageHandler(FrontOfficeHandler):
    async def get(self, name: str):
        entry = await self.call(self.fo.catalogue.get, name)
        schema = dict((e["dataset"], s) for e, s in await self.call(self.fo.catalogue.items))[name]
        actor = self.actor(required=False)
        self.page("dataset.html", entry=entry, variables=variables(entry, schema), vocabs=VOCABS, text=text,
                  editable=bool(actor and can_edit(entry, actor)))


class DatasetIriHandler(FrontOfficeHandler):
    """A dataset's IRI dereferences to its page."""

    def get(self, name: str):
        self.redirect(self.url(f"catalogue/{name}"))


class HarvestHandler(FrontOfficeHandler):
    """`catalogue.ttl` / `catalogue.jsonld` (?page=N): what a national portal harvests. Public."""

    async def get(self, fmt: str):
        page = self.get_argument("page", "")
        if page and not page.isdigit():
            raise InvalidInput("page must be a number", field="page")
        body = await self.call(self.fo.catalogue.export, fmt, int(page) if page else None)
        self.set_header("Content-Type", FORMATS[fmt][1])
        self.set_header("Cache-Control", "public, max-age=300")
        self.finish(body)


class EntryEditHandler(FrontOfficeHandler):
    """A data holder (maintainer) or an operator edits an entry as YAML; saved only when valid."""

    async def get(self, name: str):
        actor = self.actor()
        entry = await self.call(self.fo.catalogue.find, name)
        if not can_edit(entry, actor):
            raise Forbidden(f"{actor.username} may not edit the catalogue entry of {name}")
        import yaml

        clean = {k: v for k, v in (entry or {"dataset": name}).items() if not k.startswith("_")}
        self.page("entry_edit.html", name=name, yaml_text=yaml.safe_dump(clean, allow_unicode=True, sort_keys=False))

    async def post(self, name: str):
        actor = self.actor()
        raw = load_yaml_text(self.get_body_argument("entry", ""), "catalogue entry")
        if raw.get("dataset") != name:
            raise InvalidInput(f"this page edits {name}", field="dataset")
        entry, outcome = await self.call(self.fo.catalogue.put, raw, actor)
        self.redirect(self.url(f"catalogue/{name}?message=entry+{outcome}"))


class EntryApiHandler(FrontOfficeHandler):
    api = True

    async def put(self, name: str):
        body = self.json_body()
        if body.get("dataset") != name:
            raise InvalidInput(f"the entry is for {body.get('dataset')!r}, not {name!r}", field="dataset")
        entry, outcome = await self.call(self.fo.catalogue.put, body, self.actor())
        self.send_json({"outcome": outcome, "entry": entry})


# --- applications ----------------------------------------------------------------------------

def app_json(fo, app, actor) -> dict:
    c = fo.applications.clock(app)
    facts = fo.applications.facts(app)
    return {"id": app.id, "kind": app.kind, "state": app.state, "owner": wf.owner_of(app.state),
            "applicant": app.applicant, "document": app.document, "facts": app.facts,
            "clock": {"started": c.started, "due": c.due, "days_left": c.days_left, "paused": c.paused,
                      "extended": c.extended, "overdue": c.overdue},
            "can": sorted(a for a in wf.ACTIONS if wf.can(a, facts, actor)),
            "can_respond": sorted(d for d in app.datasets if wf.can_respond(facts, actor, d))}


def history(engine: sa.Engine, app_id: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(audit_events.c.ts, audit_events.c.actor, audit_events.c.action,
                                      audit_events.c.detail)
                            .where(audit_events.c.object_id == app_id, audit_events.c.action.like("application.%"))
                            .order_by(audit_events.c.seq)).all()
    return [{"ts": r.ts[:16].replace("T", " "), "actor": r.actor, "action": r.action.split(".", 1)[1],
             "detail": json.loads(r.detail or "{}")} for r in rows]


def _parse_team(raw: str) -> list[dict]:
    team = []
    for line in raw.replace(",", "\n").splitlines():
        line = line.strip()
        if not line:
            continue
        name, _, role = line.partition(":")
        team.append({"username": name.strip(), "role": (role.strip() or "researcher")})
    return team


def form_document(handler) -> dict:
    """The application document from the form's fields (variables as `dataset|table.column` boxes)."""
    arg = handler.get_body_argument
    datasets: dict[str, dict[str, list[str]]] = {}
    for value in handler.get_body_arguments("variable"):
        ds, _, var = value.partition("|")
        table, _, column = var.partition(".")
        if ds and table and column:
            datasets.setdefault(ds, {}).setdefault(table, []).append(column)
    cohort_text = arg("cohort", "").strip()
    cohort = load_yaml_text(cohort_text, "cohort") if cohort_text else None
    doc = {
        "kind": arg("kind", "permit"), "title": arg("title", ""), "organisation": arg("organisation", ""),
        "applicant_category": arg("applicant_category", ""), "purpose": arg("purpose", ""),
        "purpose_description": arg("purpose_description", ""),
        "team": _parse_team(arg("team", "")),
        "datasets": [{"dataset": ds, "tables": tables, **({"cohort": cohort} if cohort else {})}
                     for ds, tables in datasets.items()],
        "start": arg("start", ""), "months": int(arg("months")) if arg("months", "").isdigit() else arg("months", ""),
    }
    for key in ("pseudonymised_justification", "statistics"):
        if arg(key, "").strip():
            doc[key] = arg(key)
    cpu, mem = arg("cpu_limit", "").strip(), arg("mem_limit", "").strip()
    if cpu or mem:
        try:
            doc["resources"] = {**({"cpu_limit": float(cpu)} if cpu else {}), **({"mem_limit": mem} if mem else {})}
        except ValueError:
            raise InvalidInput("CPU limit must be a number", field="resources.cpu_limit") from None
    return doc


class HomeHandler(FrontOfficeHandler):
    async def get(self):
        actor = self.actor()
        apps = await self.call(self.fo.applications.visible, actor)
        overdue = await self.call(self.fo.applications.overdue) if (actor.has(ASSESSOR) or actor.has(DECIDER)
                                                                     or actor.has(OPERATOR)) else []
        entries = [e for e in await self.call(self.fo.catalogue.entries) if can_edit(e, actor)] \
            if (actor.has(DATA_HOLDER) or actor.has(OPERATOR)) else []
        clocks = {a.id: self.fo.applications.clock(a) for a in apps}
        self.page("home.html", apps=apps, clocks=clocks, overdue=overdue, entries=entries, owner_of=wf.owner_of,
                  roles=sorted(actor.roles))


class NewApplicationHandler(FrontOfficeHandler):
    async def get(self):
        self.actor()
        chosen = self.get_arguments("dataset")
        items = [(e, variables(e, s)) for e, s in await self.call(self.fo.catalogue.items)]
        self.page("application_new.html", items=items, chosen=set(chosen), purposes=ALLOWED, text=text,
                  today=date.today().isoformat())

    async def post(self):
        actor = self.actor()
        app = await self.call(self.fo.applications.create, actor, form_document(self))
        self.redirect(self.url(f"applications/{app.id}"))


class ApplicationPageHandler(FrontOfficeHandler):
    async def get(self, app_id: str):
        actor = self.actor()
        app = await self.call(self.fo.applications.get, actor, app_id)
        estimate = await self.call(self.fo.applications.estimate, app.document, app.applicant)
        self.page("application.html", app=app, view=app_json(self.fo, app, actor), estimate=estimate.as_dict(),
                  history=await self.call(history, self.fo.engine, app.id), purposes=ALLOWED)


def action_params(handler, action: str) -> dict:
    arg = handler.get_body_argument
    params = {"text": arg("text", None), "reasons": arg("reasons", None), "reason": arg("reason", None),
              "decision": arg("decision", None)}
    if action == wf.SUBMIT:
        params["accept_fee_estimate"] = arg("accept_fee_estimate", "") == "yes"
        if arg("accepted_total_cents", "").isdigit():
            params["accepted_total_cents"] = int(arg("accepted_total_cents"))
    if action == wf.GRANT_PARTIALLY:
        granted: dict = {}
        for value in handler.get_body_arguments("granted"):
            ds, _, var = value.partition("|")
            table, _, column = var.partition(".")
            granted.setdefault(ds, {}).setdefault(table, []).append(column)
        params["granted"] = granted
        if arg("months", "").isdigit():
            params["months"] = int(arg("months"))
    if action == wf.CONSULT:
        params["datasets"] = handler.get_body_arguments("datasets") or None
    return {k: v for k, v in params.items() if v is not None}


class ActionFormHandler(FrontOfficeHandler):
    async def post(self, app_id: str, action: str):
        actor = self.actor()
        await self.call(self.fo.applications.act, actor, app_id, action, **action_params(self, action))
        self.redirect(self.url(f"applications/{app_id}?message={action.replace('_', '+')}+done"))


class ConsultationFormHandler(FrontOfficeHandler):
    async def post(self, app_id: str):
        actor = self.actor()
        await self.call(self.fo.applications.respond, actor, app_id, self.get_body_argument("dataset", ""),
                        self.get_body_argument("opinion", ""), self.get_body_argument("comment", ""))
        self.redirect(self.url(f"applications/{app_id}?message=answer+recorded"))


class ApplicationsApiHandler(FrontOfficeHandler):
    api = True

    async def get(self):
        actor = self.actor()
        apps = await self.call(self.fo.applications.visible, actor, self.get_argument("state", None))
        self.send_json({"applications": [app_json(self.fo, a, actor) for a in apps]})

    async def post(self):
        actor = self.actor()
        app = await self.call(self.fo.applications.create, actor, self.json_body())
        self.send_json(app_json(self.fo, app, actor), status=201)


class EstimateApiHandler(FrontOfficeHandler):
    """POST an application document: validated (nothing stored) and priced."""
    api = True

    async def post(self):
        actor = self.actor()
        doc, fee = await self.call(self.fo.applications.preview, actor, self.json_body())
        self.send_json({"document": doc, "estimate": fee.as_dict()})


class ApplicationApiHandler(FrontOfficeHandler):
    api = True

    async def get(self, app_id: str):
        actor = self.actor()
        app = await self.call(self.fo.applications.get, actor, app_id)
        self.send_json(app_json(self.fo, app, actor))

    async def put(self, app_id: str):
        actor = self.actor()
        app = await self.call(self.fo.applications.update, actor, app_id, self.json_body())
        self.send_json(app_json(self.fo, app, actor))


class ActionApiHandler(FrontOfficeHandler):
    api = True

    async def post(self, app_id: str, action: str):
        actor = self.actor()
        app = await self.call(self.fo.applications.act, actor, app_id, action, **self.json_body())
        self.send_json(app_json(self.fo, app, actor))


class ConsultationApiHandler(FrontOfficeHandler):
    api = True

    async def post(self, app_id: str):
        actor = self.actor()
        body = self.json_body()
        app = await self.call(self.fo.applications.respond, actor, app_id, body.get("dataset", ""),
                              body.get("opinion", ""), body.get("comment", ""))
        self.send_json(app_json(self.fo, app, actor))


# --- invoices ----------------------------------------------------------------------------------

class InvoiceHandler(FrontOfficeHandler):
    """An issued invoice as HTML or PDF: operators, and the permit's principal investigator."""

    async def get(self, permit_id: str, month: str, fmt: str):
        actor = self.actor()
        permit = await self.call(PermitStore(self.fo.engine).get, permit_id)
        if not (actor.has(OPERATOR) or actor.username == permit.principal_investigator):
            raise Forbidden(f"{actor.username} may not see the invoices of permit {permit_id}")
        docs = [d for d in await self.call(list_invoices, self.fo.engine, permit_id) if d["month"] == month]
        if not docs:
            raise web.HTTPError(404, f"no invoice of permit {permit_id} for {month} (spe fees invoice)")
        hdab = text(self.fo.config["hdab"]["name"])
        if fmt == "pdf":
            self.set_header("Content-Type", "application/pdf")
            self.set_header("Content-Disposition", f'attachment; filename="{docs[0]["id"]}.pdf"')
            self.finish(render_pdf(docs[0], hdab))
        else:
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(render_html(docs[0], hdab))


def routes(prefix: str) -> list[tuple]:
    p = prefix
    app = r"(APP-[0-9A-F]{8})"
    name = r"([a-z][a-z0-9_-]{0,62})"
    return [
        (p + r"catalogue", CatalogueHandler),
        (p + r"catalogue\.(ttl|jsonld)", HarvestHandler),
        (p + rf"catalogue/datasets/{name}", DatasetIriHandler),
        (p + rf"catalogue/{name}", DatasetPageHandler),
        (p + rf"catalogue/{name}/edit", EntryEditHandler),
        (p + r"api/catalogue", CatalogueApiHandler),
        (p + rf"api/catalogue/{name}", EntryApiHandler),
        (p + r"applications/new", NewApplicationHandler),
        (p + rf"applications/{app}", ApplicationPageHandler),
        (p + rf"applications/{app}/actions/([a-z_]+)", ActionFormHandler),
        (p + rf"applications/{app}/consultation", ConsultationFormHandler),
        (p + r"api/applications", ApplicationsApiHandler),
        (p + r"api/estimate", EstimateApiHandler),
        (p + rf"api/applications/{app}", ApplicationApiHandler),
        (p + rf"api/applications/{app}/consultation", ConsultationApiHandler),
        (p + rf"api/applications/{app}/([a-z_]+)", ActionApiHandler),
        (p + r"invoices/([A-Za-z0-9][A-Za-z0-9._-]{1,62})/([0-9]{4}-[0-9]{2})\.(html|pdf)", InvoiceHandler),
        *notify_routes(p),  # each person's mail preferences (hub.notify.web)
        (p + r"?", HomeHandler),
    ]
