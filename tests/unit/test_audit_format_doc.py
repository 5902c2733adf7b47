"""docs/audit-format.md is exact: its worked example is recomputed here with the code, and the
separator, null marker, genesis and checkpoint message it states are the ones in use."""

from __future__ import annotations

import hashlib
import re

from hub.audit.chain import FIELDS, GENESIS, NULL, SEP, canonical_detail, content_hash, link_hash
from hub.audit.checkpoint import checkpoint_message
from tests.hubfixture import REPO

DOC = (REPO / "docs" / "audit-format.md").read_text(encoding="utf-8")


def _example(name: str) -> str:
    """The worked example's line `name = value` (the last such line: the formulas come first)."""
    return re.findall(rf"^{name}\s*=\s*(.+?)(?:\s{{3}}.*)?$", DOC, re.M)[-1].strip()


def test_the_worked_example_is_what_the_code_computes():
    values = [v.strip() for v in _example("fields").split("|")]
    event = dict(zip(FIELDS, values))
    event["schema_version"] = int(event["schema_version"])
    assert event["detail"] == canonical_detail({"kernel_id": "k0", "code": "x = 0", "code_bytes": 5})
    assert _example("content").replace("␟", SEP) == SEP.join(values)
    assert hashlib.sha256(SEP.join(values).encode()).hexdigest() == _example("content_hash") == content_hash(event)
    assert link_hash(GENESIS, content_hash(event)) == _example("hash")


def test_stated_constants_match_the_code():
    assert (SEP, NULL, GENESIS) == ("\x1f", "\x1e", "0" * 64)
    assert "U+001F" in DOC and "U+001E" in DOC and "64 zeros" in DOC
    assert checkpoint_message(7, "ab" * 32, "2026-01-01T00:00:00.000000Z", "periodic") == (
        b"spe-audit-checkpoint/1\n7\n" + b"ab" * 32 + b"\n2026-01-01T00:00:00.000000Z\nperiodic")
    assert "spe-audit-checkpoint/1\\n<seq in decimal>\\n<hash>\\n<ts>\\n<kind>" in DOC
    assert " | ".join(f"`{f}`" for f in FIELDS) == " | ".join(re.findall(r"^\| \d \| (`\w+`)", DOC, re.M))
