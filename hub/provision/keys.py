"""Operator key store: per-permit pseudonym secrets and the opt-out key.

Keys live in `settings.keys_dir` (0700 directory, 0600 files) on the operator side; they
are never written into an extract and never mounted into a workspace, so pseudonyms of two
permits cannot be linked and a pseudonym cannot be reversed by a researcher (EHDS Art. 66).
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from hub.exceptions import InvalidInput

KEY_BYTES = 32


class KeyStore:
    def __init__(self, keys_dir: Path):
        self.dir = Path(keys_dir)

    def _path(self, name: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}", name):
            raise InvalidInput(f"bad key name {name!r}", field="key")
        return self.dir / f"{name}.key"

    def get_or_create(self, name: str) -> bytes:
        path = self._path(name)
        if path.exists():
            key = bytes.fromhex(path.read_text().strip())
            if len(key) != KEY_BYTES:
                raise InvalidInput(f"key file {path} is damaged", field="key")
            return key
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = secrets.token_bytes(KEY_BYTES)
        # O_EXCL: two provisioning runs racing cannot end up with two different keys.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return self.get_or_create(name)
        with os.fdopen(fd, "w") as fh:
            fh.write(key.hex())
        return key

    def permit_key(self, permit_id: str) -> bytes:
        return self.get_or_create(f"permit-{permit_id}")

    def optout_key(self) -> bytes:
        return self.get_or_create("optout")


def hmac_pads(key: bytes) -> tuple[str, str]:
    """(ipad, opad) blocks as hex for an HMAC-SHA-256 computed inside DuckDB (RFC 2104)."""
    block = key.ljust(64, b"\0") if len(key) <= 64 else None
    if block is None:
        raise InvalidInput("HMAC keys longer than 64 bytes are not supported", field="key")
    return bytes(b ^ 0x36 for b in block).hex(), bytes(b ^ 0x5C for b in block).hex()


def hmac_sql(value_sql: str, ipad_param: str, opad_param: str) -> str:
    """SQL for hex HMAC-SHA-256 of `value_sql` (cast to text) with pads bound as named params."""
    return (f"sha256(unhex(${opad_param}) || unhex(sha256(unhex(${ipad_param}) || "
            f"CAST(CAST({value_sql} AS VARCHAR) AS BLOB))))")
