"""Every name SPE derives from hostile ids: the one home of naming rules (pure).

- `safe_slug(*parts)`: container, volume, network, pod and label names (DNS-label safe).
  Names embed user and permit ids, which are hostile input: anything outside [a-z0-9-] is
  replaced, and a short hash of the original keeps distinct inputs distinct.
- `server_name_for(permit_id)`: the JupyterHub named server (workspace) of a permit.
  JupyterHub 6 accepts only safe slugs as server names (lower-case ASCII letters, digits,
  single hyphens, at most 30 characters, starting with a letter). Permit ids are issued by the
  health data access body (`[A-Za-z0-9][A-Za-z0-9._-]{1,62}`), so a workspace's server name is
  the id lower-cased with `.`/`_` as `-` when that is a safe slug, else JupyterHub's
  `safe_slug` of it (with a hash).
- `permit_id_for_server(permit_ids, server_name)`: the inverse, over the permits that exist.
  Two permits mapping to one name are refused, never guessed.

Callers compare names only through these functions (a server name is never the permit id
lower-cased). Used by the spawners, provisioning, the lifecycle service, bench, and through
`hub.permits.access` (which permit a workspace belongs to) by egress.
Imports nothing of SPE but `hub.exceptions`; must not import `egress`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Iterable

from jupyterhub.slugs import is_valid_safe_slug
from jupyterhub.slugs import safe_slug as jupyterhub_safe_slug

from hub.exceptions import Conflict, NotFound

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


def server_name_for(permit_id: str) -> str:
    """The JupyterHub server name under which the workspace of `permit_id` runs."""
    name = re.sub(r"-{2,}", "-", re.sub(r"[._]", "-", permit_id.lower())).strip("-")
    if is_valid_safe_slug(name):
        return name
    return jupyterhub_safe_slug(permit_id)


def permit_id_for_server(permit_ids: Iterable[str], server_name: str) -> str:
    """The one permit whose server name is `server_name`; NotFound / Conflict otherwise."""
    hits = [pid for pid in permit_ids if server_name_for(pid) == server_name]
    if not hits:
        raise NotFound(f"no permit opens as workspace {server_name[:64]!r}")
    if len(hits) > 1:
        raise Conflict(f"permits {', '.join(sorted(hits))} share the workspace name {server_name!r}; "
                       "an operator must rename one")
    return hits[0]
