"""HTTP endpoints of the DP gateway (`egress.dp`):

    POST {prefix}api/dp/query    a query spec (JSON); from a permit's workspace (server token)
    GET  {prefix}api/dp/budget   researchers: their own budget on the workspace's permit
                                 (or ?permit=); operators (custom:spe:operate): every row of ?permit=

A DP answer goes back to the researcher at once only when the permit says `dp.auto_release`
(200); otherwise it becomes an egress request (the answer as a text file) that two checkers
review like any other output, and the response (202) says so without the values. Both are
decided by the business layer (`EgressService.query_dp`, `EgressService.dp_budget`); the
query and its charge are audited by `egress.dp.service.run_query`.
"""

from __future__ import annotations

from egress.web.api import ApiHandler


class DpQueryHandler(ApiHandler):
    async def post(self):
        actor = self.actor()
        spec = self.json_body()
        answer = await self.call(self.service.query_dp, actor, spec)
        self.send(answer, 200 if answer.get("release") == "auto" else 202)


class DpBudgetHandler(ApiHandler):
    async def get(self):
        actor = self.actor()
        view = await self.call(self.service.dp_budget, actor, self.get_argument("permit", None))
        self.send(view if isinstance(view, dict) else {"budgets": view})


def routes(prefix: str) -> list:
    return [(prefix + r"api/dp/query", DpQueryHandler), (prefix + r"api/dp/budget", DpBudgetHandler)]
