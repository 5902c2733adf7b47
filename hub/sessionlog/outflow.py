"""What the browser may read from a workspace: the contents-API policy and the per-permit limits.

The browser is an egress channel (EHDS Art. 73(1)(b), 73(2)): only reviewed results may leave.
The session recorder (`hub.sessionlog.proxy`) asks this module, for every contents-API read
that carries content, whether to serve it:

* notebooks are served up to `notebook_max_bytes` (default 5 MiB);
* text files (code, markdown, small CSV/JSON) up to `contents_max_bytes` (default 256 KiB);
* base64 (binary) content is never served, and neither is anything whose *bytes* (not its
  name, `hub.filetypes.detect`) say it is data (Parquet, Arrow, DuckDB, SQLite, ...), an
  archive, an image, a document, an executable or unrecognised binary.

Directory listings and models without content (`content=0`) are not judged. The limits come
from the permit document's optional `browser` section (`limits_from_document`).

Pure: no I/O; standard library and `hub.filetypes` only.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

from hub.filetypes import detect

KIB, MIB = 1024, 1024 * 1024
DEFAULT_CONTENTS_MAX_BYTES = 256 * KIB
DEFAULT_NOTEBOOK_MAX_BYTES = 5 * MIB
DEFAULT_DAILY_BUDGET_BYTES = 25 * MIB
MAX_KERNEL_MESSAGE_BYTES = 2 * MIB  # one kernel message above this is truncated with a notice
AUDIT_READ_ABOVE_BYTES = 64 * KIB  # contents reads above this are audit events (path, size, SHA-256)
WARN_FRACTION = 0.8

REVIEW_HINT = ("Results leave this secure processing environment only through egress review: "
               "submit the file as an output request (spe.submit in a notebook, or the SPE page).")
SERVED_FAMILIES = ("text", "notebook")  # families whose content the browser may read

_CONTENTS = re.compile(r"/api/contents(?:/(?P<path>.*))?$")


@dataclass(frozen=True)
class BrowserLimits:
    contents_max_bytes: int = DEFAULT_CONTENTS_MAX_BYTES
    notebook_max_bytes: int = DEFAULT_NOTEBOOK_MAX_BYTES
    daily_budget_bytes: int = DEFAULT_DAILY_BUDGET_BYTES


def limits_from_document(doc: dict | None) -> BrowserLimits:
    """The permit's `browser` section (validated by the permit schema) over the defaults."""
    section = (doc or {}).get("browser") or {}
    known = {k: int(v) for k, v in section.items()
             if k in BrowserLimits.__dataclass_fields__ and isinstance(v, int) and not isinstance(v, bool) and v > 0}
    return BrowserLimits(**known)


@dataclass(frozen=True)
class ContentsRead:
    """A contents-API GET that asks for content (`content` absent or not 0)."""

    path: str
    format: str | None  # text | base64 | json | None (the server picks)
    type: str | None  # file | notebook | directory | None


def contents_read(method: str, url_path: str, query: str, prefix: str) -> ContentsRead | None:
    """The contents read that a request is, or None (not a GET of /api/contents, or content=0)."""
    if method not in ("GET", "HEAD") or not url_path.startswith(prefix):
        return None
    m = _CONTENTS.match("/" + url_path[len(prefix):].lstrip("/"))
    if m is None:
        return None
    path = unquote(m.group("path") or "")
    if path.endswith("/checkpoints") or "/checkpoints/" in path:
        return None  # checkpoint listings are metadata only
    q = parse_qs(query, keep_blank_values=True)
    if q.get("content", ["1"])[-1] == "0":
        return None
    return ContentsRead(path=path, format=(q.get("format") or [None])[-1], type=(q.get("type") or [None])[-1])


# Served from the image's read-only application directories: not metered.
STATIC_PREFIXES = ("static/", "lab/static/")


def is_static(url_path: str, prefix: str) -> bool:
    """A Jupyter server or JupyterLab static asset (not metered: it derives from no user file)."""
    rest = url_path[len(prefix):] if url_path.startswith(prefix) else url_path
    return ".." not in rest and rest.startswith(STATIC_PREFIXES)


def max_body_bytes(limits: BrowserLimits) -> int:
    """The most the recorder holds of one contents response before refusing it: the larger cap,
    with room for JSON escaping (every byte of text may become up to 6) and the model around it."""
    return 6 * max(limits.contents_max_bytes, limits.notebook_max_bytes) + 64 * KIB


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str  # why it was refused ("" when allowed)
    kind: str  # hub.filetypes kind of the content ("directory", "notebook", ... or "")
    size_bytes: int  # bytes of the file's content (0 for a directory)
    data: bytes = b""  # the content's bytes (for the audit hash), when a file


def refused(reason: str, kind: str = "", size: int = 0) -> Verdict:
    return Verdict(False, reason, kind, size)


def judge_model(model: dict, limits: BrowserLimits) -> Verdict:
    """Whether the browser may receive this contents model (the JSON a contents GET returns)."""
    mtype, fmt, content = model.get("type"), model.get("format"), model.get("content")
    if mtype == "directory":
        return Verdict(True, "", "directory", 0)
    if content is None:
        return Verdict(True, "", "", 0)
    if mtype == "notebook":
        import json

        data = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if len(data) > limits.notebook_max_bytes:
            return refused(f"this notebook is {len(data)} bytes, above the {limits.notebook_max_bytes}-byte cap "
                           "for notebooks opened in the browser", "notebook", len(data))
        return Verdict(True, "", "notebook", len(data), data)
    if fmt == "base64":
        try:
            data = base64.b64decode(content if isinstance(content, str) else "", validate=False)
        except (binascii.Error, ValueError):
            data = b""
        ft = detect(data)
        return refused(f"binary content ({ft.label}) is not shown in the browser", ft.kind, len(data))
    if fmt != "text" or not isinstance(content, str):
        return refused(f"content in format {fmt!r} is not shown in the browser", "", 0)
    data = content.encode("utf-8", errors="surrogatepass")
    if len(data) > limits.contents_max_bytes:
        return refused(f"this file is {len(data)} bytes, above the {limits.contents_max_bytes}-byte cap "
                       "for files opened in the browser", "", len(data))
    ft = detect(data)
    if ft.family not in SERVED_FAMILIES and ft.kind != "empty":
        return refused(f"its bytes are {ft.label}, which is not shown in the browser", ft.kind, len(data))
    return Verdict(True, "", ft.kind, len(data), data)


def refusal_message(path: str, reason: str, hint: str = REVIEW_HINT) -> str:
    return f"{path or '/'}: {reason}. {hint}"


IMPORT_HINT = ("Files enter this secure processing environment only through an import request: "
               "ask for one on the SPE page of your permit; an output checker reviews it.")


def contents_write(method: str, url_path: str, prefix: str) -> str | None:
    """The path a contents-API PUT writes (an upload or a save), or None."""
    if method != "PUT" or not url_path.startswith(prefix):
        return None
    m = _CONTENTS.match("/" + url_path[len(prefix):].lstrip("/"))
    if m is None or not m.group("path"):
        return None
    path = unquote(m.group("path"))
    return None if path.endswith("/checkpoints") or "/checkpoints/" in path else path


def judge_upload(path: str, body: bytes, limits: BrowserLimits) -> Verdict:
    """Whether the browser may write this contents model into the workspace (an upload or a save):
    notebooks under the notebook cap, text under the text cap, judged by the bytes; nothing else."""
    import json

    from hub.exceptions import InvalidInput
    from hub.filetypes import check_name_matches

    try:
        model = json.loads(body or b"{}")
    except ValueError:
        return refused("the request body is not a JSON contents model")
    if not isinstance(model, dict):
        return refused("the request body is not a JSON contents model")
    if model.get("chunk") is not None:
        return refused("uploads in chunks (files over 15 MB) are not accepted")
    mtype, fmt, content = model.get("type"), model.get("format"), model.get("content")
    if mtype == "directory" or content is None:
        return Verdict(True, "", mtype or "", 0)  # a new folder or an empty file; a rename has no content
    if mtype == "notebook":
        if not isinstance(content, dict):
            return refused("a notebook's content must be a JSON object")
        data = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if len(data) > limits.notebook_max_bytes:
            return refused(f"this notebook is {len(data)} bytes, above the {limits.notebook_max_bytes}-byte cap",
                           "notebook", len(data))
        return Verdict(True, "", "notebook", len(data), data)
    if fmt == "base64" and isinstance(content, str):
        try:
            data = base64.b64decode(content, validate=False)
        except (binascii.Error, ValueError):
            return refused("the base64 content does not decode")
    elif fmt == "text" and isinstance(content, str):
        data = content.encode("utf-8", errors="surrogatepass")
    else:
        return refused(f"content in format {fmt!r} is not accepted")
    ft = detect(data)
    cap = limits.notebook_max_bytes if ft.family == "notebook" else limits.contents_max_bytes
    if ft.family not in SERVED_FAMILIES and ft.kind != "empty":
        return refused(f"its bytes are {ft.label}", ft.kind, len(data))
    if len(data) > cap:
        return refused(f"this file is {len(data)} bytes, above the {cap}-byte cap", ft.kind, len(data))
    try:
        check_name_matches(path, ft, field="path")
    except InvalidInput as err:
        return refused(str(err).split(" (")[0], ft.kind, len(data))
    return Verdict(True, "", ft.kind, len(data), data)
