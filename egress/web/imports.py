"""Pages and JSON API of import requests (egress.imports): researchers ask, checkers decide.

    GET  {prefix}imports                        form ("Import a file" / "Request a package") + own requests
    POST {prefix}imports/new?_xsrf=…            the form (multipart; the XSRF token rides in the query
                                                string because the body is streamed and bounded)
    GET  {prefix}imports/queue                  checker queue
    GET  {prefix}imports/<id>                   one import: type by its bytes, size, SHA-256, preview, buttons
    POST {prefix}imports/<id>/decision|withdraw|revoke   (forms)

    POST {prefix}api/imports                    multipart (permit, justification, file) or JSON
                                                {"permit", "justification", "package": {"name", "version"}}
    GET  {prefix}api/imports[?queue=1]          own requests, or the checker queue
    GET  {prefix}api/imports/<id>
    POST {prefix}api/imports/<id>/decision      {"decision": "approve"|"reject", "comment"}
    POST {prefix}api/imports/<id>/withdraw | /revoke {"comment"}

Uploads are streamed and bounded while they are read (`max_import_request_bytes`: the file limit
plus the form's own bytes); a larger body is answered 413 and never kept. Handlers parse and call
`egress.imports.service.ImportService`; the buttons a page shows are the guards' answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tornado import httputil

from egress.imports import workflow as iwf
from egress.web.api import ApiHandler, UploadHandler
from egress.web.pages import PageHandler
from hub.exceptions import InvalidInput

MULTIPART_SLACK_BYTES = 256 * 1024  # the form's other fields and multipart boundaries


@dataclass(frozen=True)
class ImportForm:
    permit: str
    justification: str
    kind: str
    file_name: str | None = None
    file_data: bytes | None = None
    package: str = ""
    version: str = ""


def parse_import_body(content_type: str, body: bytes) -> ImportForm:
    """An import request from a multipart form or a JSON body (pure; hostile input)."""
    if content_type.startswith("multipart/form-data"):
        arguments: dict = {}
        files: dict = {}
        try:
            httputil.parse_body_arguments(content_type, body, arguments, files)
        except httputil.HTTPInputError as err:
            raise InvalidInput(f"malformed multipart body: {str(err).splitlines()[0][:200]}", field="body") from None

        def arg(name: str) -> str:
            values = arguments.get(name)
            return values[0].decode("utf-8", "replace") if values else ""

        uploads = [f for f in files.get("file", []) if f.filename or f.body]
        if len(uploads) > 1:
            raise InvalidInput("one file per import request", field="file")
        kind = arg("kind") or (iwf.FILE if uploads else iwf.PACKAGE)
        upload = uploads[0] if uploads else None
        return ImportForm(permit=arg("permit"), justification=arg("justification"), kind=kind,
                          file_name=upload.filename if upload else None, file_data=upload.body if upload else None,
                          package=arg("package"), version=arg("version"))
    if content_type.startswith("application/json") or not content_type:
        try:
            doc = json.loads(body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InvalidInput(f"the body is not JSON: {err}", field="body") from None
        if not isinstance(doc, dict):
            raise InvalidInput("the body must be a JSON object", field="body")
        package = doc.get("package")
        if not isinstance(package, dict):
            raise InvalidInput('a JSON request asks for a package: {"package": {"name", "version"}}; '
                               "send files as multipart/form-data", field="package")
        values = {k: doc.get(k, "") for k in ("permit", "justification")}
        values.update(package=package.get("name", ""), version=package.get("version", ""))
        for key, value in values.items():
            if not isinstance(value, str):
                raise InvalidInput("must be text", field=key)
        return ImportForm(kind=iwf.PACKAGE, **values)
    raise InvalidInput(f"send multipart/form-data or application/json, not {content_type[:80]!r}",
                       field="Content-Type")


class _ImportUpload(UploadHandler):
    limit_setting = "max_import_request_bytes"

    @property
    def imports(self):
        return self.settings["import_service"]

    async def create(self) -> dict:
        actor = self.actor()
        form = parse_import_body(self.request.headers.get("Content-Type", ""), self.body())
        if form.kind == iwf.FILE:
            if form.file_data is None:
                raise InvalidInput("choose the file to import", field="file")
            return await self.call(self.imports.request_file, actor, form.permit, form.file_name, form.file_data,
                                   form.justification)
        if form.kind == iwf.PACKAGE:
            return await self.call(self.imports.request_package, actor, form.permit, form.package, form.version,
                                   form.justification)
        raise InvalidInput(f"kind must be one of {', '.join(iwf.KINDS)}", field="kind")


class ImportsApiHandler(_ImportUpload):
    async def get(self):
        actor = self.actor()
        if self.get_argument("queue", "") in ("1", "true"):
            self.send({"imports": await self.call(self.imports.queue, actor)})
        else:
            self.send({"imports": await self.call(self.imports.list_own, actor)})

    async def post(self):
        result = await self.create()
        self.set_header("Location", self.url("api/imports", result["id"]))
        self.send(result, 201)


class _ImportApi(ApiHandler):
    @property
    def imports(self):
        return self.settings["import_service"]


class ImportApiHandler(_ImportApi):
    async def get(self, import_id: str):
        self.send(await self.call(self.imports.get, self.actor(), import_id))


class ImportDecisionApiHandler(_ImportApi):
    async def post(self, import_id: str):
        body = self.json_body()
        self.send(await decide(self, import_id, body.get("decision"), body.get("comment", "")))


class ImportWithdrawApiHandler(_ImportApi):
    async def post(self, import_id: str):
        self.send(await self.call(self.imports.withdraw, self.actor(), import_id))


class ImportRevokeApiHandler(_ImportApi):
    async def post(self, import_id: str):
        self.send(await self.call(self.imports.revoke, self.actor(), import_id, self.json_body().get("comment", "")))


async def decide(handler, import_id: str, decision, comment):
    service = handler.settings["import_service"]
    if decision == iwf.APPROVE:
        return await handler.call(service.approve, handler.actor(), import_id, comment)
    if decision == iwf.REJECT:
        return await handler.call(service.reject, handler.actor(), import_id, comment)
    raise InvalidInput(f"decision must be one of {', '.join(iwf.DECISIONS)}", field="decision")


# --- pages ------------------------------------------------------------------------------------

class _ImportPage(PageHandler):
    @property
    def imports(self):
        return self.settings["import_service"]


class ImportsPageHandler(_ImportPage):
    async def get(self):
        actor = self.actor()
        permits = await self.call(self.imports.permits_for, actor)
        own = await self.call(self.imports.list_own, actor)
        self.page("imports.html", permits=permits, own=own, max_bytes=self.settings["import_settings"].max_bytes,
                  can_request=actor.has(iwf.SCOPE_IMPORT), message=self.get_argument("message", ""))


class ImportFormHandler(_ImportUpload):
    """The researcher's form: multipart, cookie session (XSRF token in the query string)."""

    api = False

    async def post(self):
        result = await self.create()
        self.redirect(self.url("imports", result["id"]) + "?message=submitted+for+review")


class ImportQueuePageHandler(_ImportPage):
    async def get(self):
        self.page("import_queue.html", queue=await self.call(self.imports.queue, self.actor()))


class ImportPageHandler(_ImportPage):
    async def get(self, import_id: str):
        item = await self.call(self.imports.get, self.actor(), import_id)
        self.page("import.html", item=item, message=self.get_argument("message", ""))


class ImportDecisionFormHandler(_ImportPage):
    async def post(self, import_id: str):
        decision = self.get_body_argument("decision", "")
        await decide(self, import_id, decision, self.get_body_argument("comment", ""))
        self.redirect(self.url("imports", import_id) + f"?message={'approved' if decision == iwf.APPROVE else 'rejected'}")


class ImportWithdrawFormHandler(_ImportPage):
    async def post(self, import_id: str):
        await self.call(self.imports.withdraw, self.actor(), import_id)
        self.redirect(self.url("imports", import_id) + "?message=withdrawn")


class ImportRevokeFormHandler(_ImportPage):
    async def post(self, import_id: str):
        await self.call(self.imports.revoke, self.actor(), import_id, self.get_body_argument("comment", ""))
        self.redirect(self.url("imports", import_id) + "?message=revoked")


def routes(prefix: str) -> list:
    iid = r"(i-[0-9a-f]{16})"
    return [
        (prefix + r"api/imports", ImportsApiHandler),
        (prefix + rf"api/imports/{iid}", ImportApiHandler),
        (prefix + rf"api/imports/{iid}/decision", ImportDecisionApiHandler),
        (prefix + rf"api/imports/{iid}/withdraw", ImportWithdrawApiHandler),
        (prefix + rf"api/imports/{iid}/revoke", ImportRevokeApiHandler),
        (prefix + r"imports/queue", ImportQueuePageHandler),
        (prefix + rf"imports/{iid}", ImportPageHandler),
        (prefix + rf"imports/{iid}/decision", ImportDecisionFormHandler),
        (prefix + rf"imports/{iid}/withdraw", ImportWithdrawFormHandler),
        (prefix + rf"imports/{iid}/revoke", ImportRevokeFormHandler),
        (prefix + r"imports/new", ImportFormHandler),
        (prefix + r"imports", ImportsPageHandler),
    ]

