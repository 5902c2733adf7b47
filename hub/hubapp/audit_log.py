"""Audit of hub API requests the spawner cannot see: who stopped a server (idle culler, lifecycle).

JupyterHub calls `tornado_settings['log_function']` once per finished request. We keep its
own access log line and add one audit event for each successful server deletion made by a
service: the idle culler's deletions are `workspace.cull`, filed under the permit the server
is the workspace of (so a permit's audit export holds its culls). (Spawn and stop themselves are
audited by PermitSpawner; logins by the authenticator hooks.) Must not import `egress`.
"""

from __future__ import annotations

import logging
import re

from hub import audit
from hub.db import make_engine

log = logging.getLogger("spe.hub")

_SERVER_PATH = re.compile(r"^/[^?]*?/hub/api/users/(?P<user>[^/?]+)/servers?/?(?P<server>[^/?]*)"
                          r"|^/hub/api/users/(?P<user2>[^/?]+)/servers?/?(?P<server2>[^/?]*)")


def parse_server_delete(method: str, path: str) -> tuple[str, str] | None:
    """(user, server) when this request deletes a user's server, else None (pure)."""
    if method != "DELETE":
        return None
    m = _SERVER_PATH.match(path)
    if not m:
        return None
    user = m.group("user") or m.group("user2")
    server = m.group("server") if m.group("user") else m.group("server2")
    return user, server or ""


def permit_of_server(engine, server: str) -> str | None:
    """The id of the permit whose workspace `server` is (server names are lower-case slugs of
    permit ids, hub.permits.access); None when no permit opens as it."""
    from hub.exceptions import Refused
    from hub.permits.access import permit_for_server
    from hub.permits.store import PermitStore

    if not server:
        return None
    try:
        return permit_for_server(PermitStore(engine).list(), server).id
    except Refused:
        return None


def make_log_function(db_url: str, cull_services: tuple[str, ...] = ("idle-culler",)):
    from jupyterhub.log import log_request
    from urllib.parse import unquote

    def log_function(handler):
        log_request(handler)
        try:
            status = handler.get_status()
            hit = parse_server_delete(handler.request.method, handler.request.path)
            if hit is None or status >= 400:
                return
            who = handler.current_user
            kind = getattr(who, "kind", None)
            name = getattr(who, "name", "")
            if kind != "service" or name not in cull_services:
                return
            user, server = (unquote(x) for x in hit)
            engine = make_engine(db_url)
            permit_id = permit_of_server(engine, server)
            with engine.begin() as conn:
                audit.record(conn, actor=name, role="system", action="workspace.cull", permit_id=permit_id,
                             detail={"user": user[:64], "server": server[:128], "reason": "idle"})
        except Exception:  # the request itself already succeeded; never break the hub on audit of a log line
            log.exception("could not audit a server deletion")

    return log_function
