"""Significant findings from the workspace (EHDS Art. 61(5)), the researcher's door into
hub.citizens.findings:

    POST {prefix}api/findings        {"permit", "pseudonym", "text"}  -> 201 {id, state}
    GET  {prefix}api/findings/<id>   the reporter's view: id, permit, state, date (never the person)

Needs `custom:spe:submit`; a workspace's own token may report only for its permit. The HDAB's
review and the key holder's resolution are operator-side (`spe findings ...`).
"""

from __future__ import annotations

from hub.citizens import findings
from hub.exceptions import Forbidden, NotFound
from hub.permits.access import is_workspace_of

from egress.web.api import ApiHandler

SUBMIT = "custom:spe:submit"


class FindingsHandler(ApiHandler):
    async def post(self):
        actor = self.actor()
        if not actor.has(SUBMIT):
            raise Forbidden("reporting a finding needs the custom:spe:submit scope (a researcher's token)")
        body = self.json_body()
        permit_id = str(body.get("permit") or "")[:64]
        if actor.server_name and not is_workspace_of(permit_id, actor.server_name):
            raise Forbidden("a workspace reports findings only for its own permit")
        result = await self.call(findings.report, self.service.engine, permit_id, actor.username,
                                 body.get("pseudonym"), body.get("text"))
        self.send(result, 201)


class FindingHandler(ApiHandler):
    async def get(self, finding_id: str):
        actor = self.actor()
        row = await self.call(findings.get, self.service.engine, finding_id)
        if row["reported_by"] != actor.username:
            raise NotFound(f"no finding {finding_id} of yours")
        self.send(findings.for_researcher(row))


def routes(prefix: str) -> list[tuple]:
    return [(prefix + r"api/findings", FindingsHandler),
            (prefix + r"api/findings/(FND-[0-9A-F]{12})", FindingHandler)]
