"""Opt-out registry (EHDS Art. 71): national identifiers stored only as keyed hashes.

The import file is hostile input: one identifier per line (an optional `national_id`
header, `#` comments and blank lines allowed). Any malformed line refuses the whole file,
naming the line, and nothing is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from pathlib import Path

import sqlalchemy as sa

from hub import audit
from hub.audit.store import utc_now_iso
from hub.exceptions import InvalidInput, NotFound
from hub.provision.keys import KeyStore
from hub.registry_tables import optouts

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{2,63}$")
MAX_FILE_BYTES = 64 * 1024 * 1024


def parse_optout_lines(text: str) -> list[str]:
    ids: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        value = line.strip()
        if not value or value.startswith("#") or (n == 1 and value.lower() == "national_id"):
            continue
        if not ID_PATTERN.match(value):
            raise InvalidInput(f"line {n}: not a national identifier: {value[:40]!r}", field="optout file")
        ids.append(value)
    if not ids:
        raise InvalidInput("the file holds no identifiers", field="optout file")
    return ids


def optout_hash(key: bytes, national_id: str) -> str:
    return hmac.new(key, national_id.encode("utf-8"), hashlib.sha256).hexdigest()


def import_optouts(engine: sa.Engine, keys: KeyStore, path: str | Path, actor: str) -> tuple[int, int]:
    """Returns (identifiers in file, newly added)."""
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"opt-out file not found: {p}")
    if p.stat().st_size > MAX_FILE_BYTES:
        raise InvalidInput(f"opt-out file is larger than {MAX_FILE_BYTES} bytes", field="optout file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InvalidInput(f"not UTF-8 text (byte {err.start})", field="optout file") from None
    ids = parse_optout_lines(text)
    key = keys.optout_key()
    hashes = sorted({optout_hash(key, i) for i in ids})
    batch = uuid.uuid4().hex
    now = utc_now_iso()
    with engine.begin() as conn:
        existing = {r[0] for r in conn.execute(sa.select(optouts.c.id_hash))}
        new = [h for h in hashes if h not in existing]
        if new:
            conn.execute(optouts.insert(), [{"id_hash": h, "imported_at": now, "batch": batch} for h in new])
        audit.record(conn, actor=actor, role="operator", action="optout.import", object_id=batch,
                     detail={"lines": len(ids), "added": len(new), "file_sha256": hashlib.sha256(text.encode()).hexdigest()})
    return len(ids), len(new)
