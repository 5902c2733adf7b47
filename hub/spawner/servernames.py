"""Permit id <-> JupyterHub server name (pure).

JupyterHub 6 accepts only safe slugs as server names (lower-case ASCII letters, digits,
single hyphens, ≤ 30 characters, starting with a letter). Permit ids are issued by the
health data access body (`[A-Za-z0-9][A-Za-z0-9._-]{1,62}`), so a workspace's server name is
the id lower-cased with `.`/`_` as `-` when that is a safe slug, else JupyterHub's
`safe_slug` of it (with a hash). Two permits mapping to one name are refused, never guessed.
"""

from __future__ import annotations

import re
from typing import Iterable

from jupyterhub.slugs import is_valid_safe_slug, safe_slug

from hub.exceptions import Conflict, NotFound


def server_name_for(permit_id: str) -> str:
    name = re.sub(r"-{2,}", "-", re.sub(r"[._]", "-", permit_id.lower())).strip("-")
    if is_valid_safe_slug(name):
        return name
    return safe_slug(permit_id)


def permit_id_for_server(permit_ids: Iterable[str], server_name: str) -> str:
    """The one permit whose server name is `server_name`; NotFound / Conflict otherwise."""
    hits = [pid for pid in permit_ids if server_name_for(pid) == server_name]
    if not hits:
        raise NotFound(f"no permit opens as workspace {server_name[:64]!r}")
    if len(hits) > 1:
        raise Conflict(f"permits {', '.join(sorted(hits))} share the workspace name {server_name!r}; "
                       "an operator must rename one")
    return hits[0]
