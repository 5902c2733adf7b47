"""Routing table of the session recorder: URL prefix -> workspace address, owner and permit.

The spawner calls `register_target` when a workspace is running and `remove_target` when it
stops; the recorder looks routes up here (shared registry DB, so spawner and recorder can be
different processes). Only the control plane writes this table: workspaces have no access
to the registry database.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import sqlalchemy as sa

from hub.db import metadata
from hub.exceptions import InvalidInput

session_routes = sa.Table(
    "session_routes",
    metadata,
    sa.Column("prefix", sa.String(300), primary_key=True),  # e.g. /user/alice/P-1/
    sa.Column("target_url", sa.String(300), nullable=False),  # e.g. http://10.0.0.5:8888
    sa.Column("username", sa.String(200), nullable=False),
    sa.Column("permit_id", sa.String(100)),
    sa.Column("updated_at", sa.String(32), nullable=False),
)

_created: set[int] = set()


@dataclass(frozen=True)
class Route:
    prefix: str
    target_url: str
    user: str
    permit_id: str | None


def ensure_table(engine: sa.Engine) -> None:
    if id(engine) not in _created:
        session_routes.create(engine, checkfirst=True)
        _created.add(id(engine))


def check_route(prefix: str, target_url: str) -> tuple[str, str]:
    if not prefix.startswith("/") or "//" in prefix or ".." in prefix or len(prefix) > 300:
        raise InvalidInput(f"must be an absolute URL path, not {prefix!r}", field="prefix")
    parts = urlsplit(target_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise InvalidInput(f"must be http(s)://host:port without a path, not {target_url!r}", field="target_url")
    return (prefix if prefix.endswith("/") else prefix + "/"), target_url.rstrip("/")


def register_target(engine: sa.Engine, prefix: str, target_url: str, user: str, permit_id: str | None) -> Route:
    """Route `prefix` (a workspace's URL prefix) to `target_url`; replaces an existing route."""
    from hub.audit.store import utc_now_iso

    prefix, target_url = check_route(prefix, target_url)
    ensure_table(engine)
    with engine.begin() as conn:
        conn.execute(session_routes.delete().where(session_routes.c.prefix == prefix))
        conn.execute(session_routes.insert().values(prefix=prefix, target_url=target_url, username=user,
                                                    permit_id=permit_id, updated_at=utc_now_iso()))
    return Route(prefix, target_url, user, permit_id)


def remove_target(engine: sa.Engine, prefix: str) -> None:
    ensure_table(engine)
    with engine.begin() as conn:
        conn.execute(session_routes.delete().where(session_routes.c.prefix == (prefix if prefix.endswith("/") else prefix + "/")))


def load_routes(engine: sa.Engine) -> list[Route]:
    ensure_table(engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(session_routes)).mappings().all()
        conn.rollback()
    return [Route(r["prefix"], r["target_url"], r["username"], r["permit_id"]) for r in rows]


def match(routes: list[Route], path: str) -> Route | None:
    """The longest prefix that `path` starts with (pure)."""
    best = None
    for r in routes:
        if (path + "/").startswith(r.prefix) and (best is None or len(r.prefix) > len(best.prefix)):
            best = r
    return best
