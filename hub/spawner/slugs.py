"""The one function that makes container, volume, network and pod names (DNS-label safe).

Names embed user and permit ids, which are hostile input: anything outside [a-z0-9-] is
replaced, and a short hash of the original keeps distinct inputs distinct.
"""

from __future__ import annotations

import hashlib
import re

_SAFE = re.compile(r"[^a-z0-9-]+")


def safe_slug(*parts: str, max_length: int = 63, prefix: str = "spe") -> str:
    """`spe-<part>-<part>…` lower-case, [a-z0-9-], ≤ max_length; a hash suffix when altered or cut."""
    raw = "\x00".join(parts)
    cleaned = [(_SAFE.sub("-", p.lower()).strip("-") or "x") for p in parts]
    slug = "-".join([prefix, *cleaned])
    altered = any(c != p for c, p in zip(cleaned, parts)) or len(slug) > max_length
    if altered:
        digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:8]
        slug = slug[: max_length - 9].rstrip("-") + "-" + digest
    return slug
