"""JSON API of the egress service (workspace client, scripts, tests).

    POST {prefix}api/requests                      submit (multipart or JSON+base64)
    GET  {prefix}api/requests                      own requests; ?queue=1 the checker queue
    GET  {prefix}api/requests/<id>                 one request (blinded reviews)
    POST {prefix}api/requests/<id>/versions        resubmit a new version (multipart or JSON)
    POST {prefix}api/requests/<id>/reviews         {"version", "decision", "comment"}
    POST {prefix}api/requests/<id>/release
    POST {prefix}api/requests/<id>/withdraw
    POST {prefix}api/requests/<id>/suppression     apply the suggested suppression (a new version)
    GET  {prefix}api/requests/<id>/files/<name>    download a released file (members; audited)
    GET  {prefix}api/releases                      released files of the user's permits
    POST {prefix}api/dp/query, GET {prefix}api/dp/budget   DP gateway (egress.web.dp)

Uploads are streamed and bounded while they are read (`max_request_bytes`): an oversized
body is answered 413 and never held in memory. Handlers only parse and call the business
layer; they never change state themselves.
"""

from __future__ import annotations

import base64
import binascii
import json
from urllib.parse import quote

from tornado import httputil, web

from egress.business import Submission
from egress.web.base import BaseHandler
from hub.exceptions import InvalidInput

MAX_JSON_BYTES = 1024 * 1024  # non-upload JSON bodies (reviews, queries)


class ApiHandler(BaseHandler):
    api = True

    def json_body(self) -> dict:
        if len(self.request.body) > MAX_JSON_BYTES:
            raise InvalidInput(f"the request body is larger than {MAX_JSON_BYTES} bytes", field="body")
        try:
            body = json.loads(self.request.body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InvalidInput(f"the body is not JSON: {err}", field="body") from None
        if not isinstance(body, dict):
            raise InvalidInput("the body must be a JSON object", field="body")
        return body

    def send(self, obj, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(obj, default=str))


@web.stream_request_body
class UploadHandler(ApiHandler):
    """Base of the upload endpoints: the body is counted as it arrives and refused past the limit
    (`limit_setting`: the application setting that holds it)."""

    limit_setting = "max_request_bytes"

    async def prepare(self):
        await super().prepare()
        limit = self.settings[self.limit_setting]
        self._limit = limit
        self._chunks: list[bytes] = []
        self._received = 0
        self._too_large = False
        if self.request.method != "POST":
            return
        if not self.current_user:
            raise web.HTTPError(401, "authenticate with a hub token (Authorization: token …)")
        # The connection's hard cap: a body this large is cut off by tornado itself. Below it,
        # the excess is read and dropped (not stored) so the client receives a clear 413.
        self.request.connection.set_max_body_size(4 * limit + 1024 * 1024)
        length = self.request.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > 4 * limit:
            self._too_large = True
            raise web.HTTPError(413, f"the upload is larger than the limit of {limit} bytes")

    def data_received(self, chunk: bytes) -> None:
        self._received += len(chunk)
        if self._received > self._limit:
            self._too_large = True
            self._chunks = []  # drop what we had: it will not be used
            return
        self._chunks.append(chunk)

    def body(self) -> bytes:
        """The whole body, or 413 if it was larger than the limit (then nothing of it was kept)."""
        if self._too_large:
            raise web.HTTPError(413, f"the upload is larger than the limit of {self._limit} bytes")
        return b"".join(self._chunks)

    def submission(self) -> Submission:
        body = self.body()
        content_type = self.request.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            return _from_multipart(content_type, body)
        if content_type.startswith("application/json") or not content_type:
            try:
                doc = json.loads(body or b"{}")
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise InvalidInput(f"the body is not JSON: {err}", field="body") from None
            return _from_json(doc)
        raise InvalidInput(f"send multipart/form-data or application/json, not {content_type!r}",
                           field="Content-Type")


class RequestsHandler(UploadHandler):
    async def get(self):
        actor = self.actor()
        if self.get_argument("queue", "") in ("1", "true"):
            self.send({"requests": await self.call(self.service.queue, actor)})
        else:
            self.send({"requests": await self.call(self.service.list_own, actor)})

    async def post(self):
        actor = self.actor()
        submission = self.submission()
        permit_id = self.get_argument("permit", None)
        result = await self.call(self.service.submit, actor, submission, permit_id)
        self.set_header("Location", self.url("api/requests", result["id"]))
        self.send(result, 201)


class VersionsHandler(UploadHandler):
    async def post(self, request_id: str):
        actor = self.actor()
        result = await self.call(self.service.resubmit, actor, request_id, self.submission())
        self.send(result, 201)


class RequestHandler(ApiHandler):
    async def get(self, request_id: str):
        actor = self.actor()
        previews = self.get_argument("previews", "") in ("1", "true")
        self.send(await self.call(self.service.get, actor, request_id, with_previews=previews))


class ReviewsHandler(ApiHandler):
    async def post(self, request_id: str):
        actor = self.actor()
        body = self.json_body()
        version = body.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise InvalidInput("the version you reviewed (an integer) is required", field="version")
        result = await self.call(self.service.review, actor, request_id, version=version,
                                 decision=body.get("decision"), comment=body.get("comment", ""))
        self.send(result)


class ReleaseHandler(ApiHandler):
    async def post(self, request_id: str):
        self.send(await self.call(self.service.release, self.actor(), request_id))


class WithdrawHandler(ApiHandler):
    async def post(self, request_id: str):
        self.send(await self.call(self.service.withdraw, self.actor(), request_id))


class ApplySuggestionHandler(ApiHandler):
    async def post(self, request_id: str):
        self.send(await self.call(self.service.apply_suggestion, self.actor(), request_id), 201)


class ReleasesHandler(ApiHandler):
    async def get(self):
        self.send({"files": await self.call(self.service.released_for, self.actor())})


class DownloadHandler(ApiHandler):
    """Also used by the researcher page (cookie auth): same guard, same audit."""

    async def get(self, request_id: str, name: str):
        actor = self.actor()
        data, sha256 = await self.call(self.service.download, actor, request_id, name)
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(name)}")
        self.set_header("X-Content-SHA256", sha256)
        self.set_header("Digest", "sha-256=" + base64.b64encode(bytes.fromhex(sha256)).decode())
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(data)


# --- parsing uploads (pure) ------------------------------------------------------------------

def _from_multipart(content_type: str, body: bytes) -> Submission:
    arguments: dict = {}
    files: dict = {}
    try:
        httputil.parse_body_arguments(content_type, body, arguments, files)
    except httputil.HTTPInputError as err:  # tornado ≥ 6.5 raises; older versions only log
        raise InvalidInput(f"malformed multipart body: {str(err).splitlines()[0][:200]}", field="body") from None
    uploads = [f for field in files.values() for f in field]
    if not uploads and body:
        raise InvalidInput("malformed multipart body or no file part", field="files")

    def arg(name: str, default: str = "") -> str:
        values = arguments.get(name)
        return values[0].decode("utf-8", "replace") if values else default

    provenance = _provenance(arg("provenance", ""), arg("provenance_sql", ""),
                             [f.filename for f in uploads])
    return Submission(files=[(f.filename, f.body) for f in uploads], description=arg("description"),
                      kind=arg("kind", "frequency"), provenance=provenance)


def _from_json(doc) -> Submission:
    if not isinstance(doc, dict):
        raise InvalidInput("the body must be a JSON object", field="body")
    items = doc.get("files")
    if not isinstance(items, list) or not items:
        raise InvalidInput('"files" must be a non-empty list of {"name", "content_base64"}', field="files")
    files, provenance = [], {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) \
                or not isinstance(item.get("content_base64"), str):
            raise InvalidInput('each file is {"name": str, "content_base64": str}', field=f"files.{i}")
        try:
            data = base64.b64decode(item["content_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("content_base64 is not valid base64", field=f"files.{i}") from None
        files.append((item["name"], data))
        if item.get("provenance_sql"):
            if not isinstance(item["provenance_sql"], str):
                raise InvalidInput("provenance_sql must be text", field=f"files.{i}.provenance_sql")
            provenance[item["name"]] = item["provenance_sql"]
    shared = doc.get("provenance_sql")
    if shared is not None and not isinstance(shared, str):
        raise InvalidInput("provenance_sql must be text", field="provenance_sql")
    if shared:
        provenance.update(_provenance("", shared, [name for name, _ in files]))
    for key in ("description", "kind"):
        if key in doc and not isinstance(doc[key], str):
            raise InvalidInput("must be text", field=key)
    return Submission(files=files, description=doc.get("description", ""), kind=doc.get("kind", "frequency"),
                      provenance=provenance)


def _provenance(mapping_json: str, shared_sql: str, names: list[str]) -> dict:
    """`{file: sql}` from a JSON mapping, or one SQL for the single table of the request."""
    out: dict = {}
    if mapping_json:
        try:
            out = json.loads(mapping_json)
        except json.JSONDecodeError:
            raise InvalidInput("provenance must be a JSON object {file name: SQL}", field="provenance") from None
        if not isinstance(out, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in out.items()):
            raise InvalidInput("provenance must be a JSON object {file name: SQL}", field="provenance")
    if shared_sql:
        tables = [n for n in names if isinstance(n, str) and n.rsplit(".", 1)[-1].lower() in ("csv", "parquet", "json")]
        if len(tables) != 1:
            raise InvalidInput("one provenance_sql needs exactly one table in the request; "
                               "give each table its own SQL", field="provenance_sql")
        out[tables[0]] = shared_sql
    return out
