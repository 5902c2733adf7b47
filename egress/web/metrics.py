"""The egress service's Prometheus endpoint, `<prefix>/metrics`: egress's own metric groups
(`egress`, `dp`, registered by `egress.extension`) and hub's `audit` group, read from the
registry database at scrape time by `hub.metrics.SpeCollector`. Read-only and without a login,
as before the move from hub: labels carry permit ids, states and rule names, never a person.
"""

from __future__ import annotations

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from tornado import web

from hub.metrics import SpeCollector

EGRESS_PROCESS_GROUPS = ("egress", "dp", "audit")


class MetricsHandler(web.RequestHandler):
    def initialize(self, registry: CollectorRegistry):
        self.registry = registry

    def get(self):
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.write(generate_latest(self.registry))


def metrics_handlers(engine: sa.Engine, prefix: str) -> list[tuple]:
    """The route serving the egress-side families at `<prefix>/metrics`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SpeCollector(engine, groups=EGRESS_PROCESS_GROUPS))
    return [(prefix.rstrip("/") + "/metrics", MetricsHandler, {"registry": registry})]
