"""HTTP endpoints of the DP gateway (`egress.dp`):

    POST {prefix}api/dp/query    a query spec (JSON); from a permit's workspace (server token)
    GET  {prefix}api/dp/budget   researchers: their own budget on the workspace's permit
                                 (or ?permit=); operators (custom:spe:operate): every row of ?permit=

A DP answer goes back to the researcher at once only when the permit says `dp.auto_release`;
otherwise it becomes an egress request (the answer as a text file) that two checkers review
like any other output, and the response says so without the values. Either way the query and
its charge are audited by `egress.dp.service.run_query`.
"""

from __future__ import annotations

import json

from egress import workflow as wf
from egress.business import Submission
from egress.dp.service import budget as dp_budget
from egress.dp.service import run_query
from egress.web.api import ApiHandler
from hub.exceptions import Forbidden, InvalidInput


class DpQueryHandler(ApiHandler):
    async def post(self):
        actor = self.actor()
        spec = self.json_body()
        service = self.service
        permit = await self.call(service.workspace_permit, actor)
        if permit is None:
            raise Forbidden("DP queries run from a permit's workspace (its server token names the permit)")
        wf.check_can_query(permit, actor)
        answer = await self.call(run_query, service.engine, service.settings, permit, actor.username, spec)
        if answer.get("release") == "auto":
            self.send(answer)
            return
        # Held for review: the values leave only through the two-person workflow.
        text = json.dumps(answer, indent=2, sort_keys=True, default=str).encode()
        name = f"dp-{answer['kind']}-{answer['query_hash'][:12]}.txt"
        request = await self.call(service.submit, actor, Submission(
            files=[(name, text)], kind="text",
            description=f"DP {answer['kind']} on {answer['table']} (epsilon {answer['epsilon']:g}); "
                        "held for review: the permit does not allow automatic release of DP answers"), permit.id)
        self.send({"release": "review", "request_id": request["id"], "state": request["state"],
                   "query_hash": answer["query_hash"], "charge_id": answer["charge_id"],
                   "budget": answer["budget"]}, 202)


class DpBudgetHandler(ApiHandler):
    async def get(self):
        actor = self.actor()
        service = self.service
        permit_id = self.get_argument("permit", None)
        permit = await self.call(service.permits.get, permit_id) if permit_id else \
            await self.call(service.workspace_permit, actor)
        if permit is None:
            raise InvalidInput("name the permit (?permit=...) or call from its workspace", field="permit")
        if actor.has(wf.SCOPE_OPERATE) and not permit.is_member(actor.username):
            view = await self.call(dp_budget, service.engine, permit, None)
        else:
            view = await self.call(dp_budget, service.engine, permit, actor.username)
        self.send(view if isinstance(view, dict) else {"budgets": view})


def routes(prefix: str) -> list:
    return [(prefix + r"api/dp/query", DpQueryHandler), (prefix + r"api/dp/budget", DpBudgetHandler)]
