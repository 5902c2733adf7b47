"""Content-addressed file store of egress submissions, outside every workspace.

A blob lives at `<store_dir>/<sha256[:2]>/<sha256>`; its name is its checksum, so a file
cannot be replaced without changing its name, two requests with the same bytes share one
blob, and a read verifies the content against the name (a damaged blob is a Failure, never
served). Writes go to a temporary file in the same directory and are renamed into place
(atomic), so a crash never leaves a partial blob under a real name. Names never come from
users: only the checksum computed here is used as a path.

Must not import the web layer or the database.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from hub.exceptions import Failure, NotFound

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class BlobStore:
    def __init__(self, root: Path | str):
        self.root = Path(root)

    def _path(self, sha256: str) -> Path:
        if not _SHA256.match(sha256 or ""):
            raise NotFound(f"not a content address: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        """Store `data`; returns its sha256 (idempotent)."""
        digest = hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        if path.is_file():
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o440)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def get(self, sha256: str) -> bytes:
        """The bytes stored under `sha256`, verified against it."""
        path = self._path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise Failure(f"stored file {sha256} is missing from the egress store") from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise Failure(f"stored file {sha256} is damaged (checksum mismatch); it is not served")
        return data

    def has(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def delete(self, sha256: str) -> bool:
        """Remove the blob under `sha256` (retention: `egress.retention`); False if it was not there."""
        try:
            self._path(sha256).unlink()
            return True
        except FileNotFoundError:
            return False
