"""What an import request must be, and what a checker is shown before deciding (pure).

Uploads are hostile input:
- the name is one plain file name (`check_file_name`): no directory part, no `..`, not hidden
  (no leading `.`), no control or shell-special characters, at most 128 characters; it is the
  name the file gets under /imports, so it is refused, never silently rewritten;
- the size is 1 byte to `max_bytes` (zero-byte and oversized uploads are refused);
- the type is judged by the bytes (`hub.filetypes.detect`), and a known extension that the bytes
  contradict (`codes.csv` that is Parquet) is refused;
- the SHA-256 is computed here and goes into the audit event and the request.
A package is one release, `NAME==VERSION` (`hub.mirror.wheels`); the justification is text of
1 to 5000 characters. A checker sees the name, size, hash, detected type with its warning, and
for text the first lines (`text_preview`).

Bytes in, values out: no I/O. Must not import the web layer.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from hub.exceptions import InvalidInput
from hub.filetypes import FileType, check_name_matches, detect

DEFAULT_MAX_IMPORT_BYTES = 50 * 1024 * 1024
MAX_NAME_CHARS = 128
MAX_JUSTIFICATION_CHARS = 5000
PREVIEW_LINES = 40
PREVIEW_CHARS = 8000

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ ()+,=@-]*")


@dataclass(frozen=True)
class UploadFacts:
    name: str
    size_bytes: int
    sha256: str
    file_type: FileType


def check_file_name(name: object) -> str:
    """The name the file will have under /imports; InvalidInput (field `name`) naming the rule."""
    if not isinstance(name, str) or not name:
        raise InvalidInput("the file needs a name", field="name")
    shown = name[:MAX_NAME_CHARS]
    if "/" in name or "\\" in name or "\x00" in name:
        raise InvalidInput(f"{shown!r}: a file name has no directory part", field="name")
    if ".." in name:
        raise InvalidInput(f"{shown!r}: a file name must not contain '..'", field="name")
    if name.startswith("."):
        raise InvalidInput(f"{shown!r}: hidden files (a name starting with '.') are not imported", field="name")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidInput(f"a file name is at most {MAX_NAME_CHARS} characters", field="name")
    if not _NAME.fullmatch(name) or name.endswith((" ", ".")):
        raise InvalidInput(f"{shown!r}: use letters A-Z, digits and . _ - ( ) + , = @ or spaces, starting "
                           "with a letter or digit", field="name")
    return name


def check_upload(name: object, data: object, max_bytes: int) -> UploadFacts:
    """Everything an uploaded file must be before anything is stored."""
    name = check_file_name(name)
    if not isinstance(data, (bytes, bytearray)):
        raise InvalidInput("the file's content is missing", field="file")
    if len(data) == 0:
        raise InvalidInput(f"{name} is empty (0 bytes): there is nothing to import", field="file")
    if len(data) > max_bytes:
        raise InvalidInput(f"{name} is {len(data)} bytes; imports are at most {max_bytes} bytes", field="file")
    ftype = detect(bytes(data))
    check_name_matches(name, ftype, field="file")
    return UploadFacts(name=name, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), file_type=ftype)


def check_justification(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("say why the workspace needs it (what it is, where it comes from)", field="justification")
    if len(text) > MAX_JUSTIFICATION_CHARS:
        raise InvalidInput(f"at most {MAX_JUSTIFICATION_CHARS} characters", field="justification")
    return text.strip()


def text_preview(data: bytes, ftype: FileType) -> dict | None:
    """The first lines of a text file for the checker ({"text", "truncated"}); None for binary."""
    if ftype.family not in ("text", "notebook") and ftype.kind != "script":
        return None
    head = data[:PREVIEW_CHARS * 4].decode("utf-8", "replace")
    lines = head.splitlines()
    text = "\n".join(lines[:PREVIEW_LINES])
    truncated = len(lines) > PREVIEW_LINES or len(text) > PREVIEW_CHARS or len(data) > PREVIEW_CHARS * 4
    return {"text": text[:PREVIEW_CHARS], "truncated": truncated}
