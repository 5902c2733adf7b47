"""SPE Prometheus metrics, computed from the registry database at scrape time (EHDS Art. 73(1)(f)).

One custom `SpeCollector` reads the audit trail (incrementally: each scrape folds only the
events appended since the last one) and the permit table, so every process that serves
metrics reports the same numbers. Metric names follow Prometheus conventions (base units in
the name, `_total` for counters). No label carries a person identifier: a group may keep
(user, server) keys in memory to count workspaces, but labels carry permit ids, states and
rule names.

Families come in groups (`MetricGroup`): hub defines `workspace`, `provisioning`, `permits` and
`audit`; an extension adds its own through `hub.extensions` (egress: `egress` and `dp`, in
`egress.metrics`). `install_hub_metrics(engine)` registers hub's groups in the hub process's
default registry (JupyterHub serves it at `/hub/metrics`); the egress service serves its own.

Must not import `egress` (hub never depends on egress).
"""

from __future__ import annotations

import json
import threading
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable

import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

from hub import extensions
from hub.audit.tables import audit_events, audit_head
from hub.registry_tables import permits

SPAWN_BUCKETS_SECONDS = (1, 2, 5, 10, 20, 30, 60, 120, 300)
PROVISION_BUCKETS_SECONDS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
HUB_PROCESS_GROUPS = ("workspace", "provisioning", "permits", "audit", "browser")


def ts_seconds(ts: str) -> float:
    """Unix seconds of an audit timestamp (ISO 8601, `Z` for UTC)."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


@dataclass
class Buckets:
    """Counts of a histogram folded from the trail, turned into a family at scrape time."""

    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self):
        self.counts = [0] * (len(self.buckets) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.total += value

    def family(self, name: str, doc: str) -> HistogramMetricFamily:
        cumulative, running = [], 0
        for le, c in zip((*map(str, self.buckets), "+Inf"), self.counts):
            running += c
            cumulative.append((le if le == "+Inf" else str(float(le)), running))
        return HistogramMetricFamily(name, doc, buckets=cumulative, sum_value=self.total)


@dataclass(frozen=True)
class Scrape:
    """What a group may read at scrape time besides its own fold."""

    conn: sa.Connection
    permit_rows: list  # (id, status, document_json) of every permit
    head_seq: int  # the audit chain head


class MetricGroup:
    """One group of metric families. `apply` folds each audit event whose action is in `actions`
    (once, in seq order; pure, no I/O); `collect` returns the families at scrape time (it may
    read `scrape.conn`). A group that needs only the permit table names no actions."""

    actions: tuple[str, ...] = ()

    def apply(self, ev: dict, detail: dict) -> None:
        pass

    def collect(self, scrape: Scrape) -> list[Metric]:
        raise NotImplementedError


class WorkspaceGroup(MetricGroup):
    actions = ("workspace.spawn", "workspace.stop", "workspace.cull", "workspace.terminate",
               "kube.networkpolicy_check")

    def __init__(self):
        self.active: dict = {}  # (user, server) -> permit_id; memory only, never a label
        self.spawn = Buckets(SPAWN_BUCKETS_SECONDS)
        self.networkpolicy: str | None = None  # the last kube.networkpolicy_check result

    def apply(self, ev: dict, d: dict) -> None:
        if ev["outcome"] != "ok":
            return
        action = ev["action"]
        if action == "workspace.spawn":
            self.active[(ev["actor"], d.get("server", ""))] = ev.get("permit_id") or "none"
            seconds = d.get("ready_seconds", d.get("duration_seconds"))
            if isinstance(seconds, (int, float)):
                self.spawn.observe(float(seconds))
        elif action == "kube.networkpolicy_check":
            self.networkpolicy = str(d.get("result"))
        else:
            self.active.pop((d.get("user", ev["actor"]), d.get("server", "")), None)

    def collect(self, scrape: Scrape) -> list[Metric]:
        active = GaugeMetricFamily("spe_workspaces_active", "Running workspaces per permit", labels=["permit"])
        # Every known permit gets a series (0 when idle), so a stop shows as a drop, not a gap.
        per_permit: dict[str, int] = {pid: 0 for pid, _s, _d in scrape.permit_rows}
        for permit in self.active.values():
            per_permit[permit] = per_permit.get(permit, 0) + 1
        for permit, n in sorted(per_permit.items()):
            active.add_metric([permit], n)
        out = [active, self.spawn.family("spe_workspace_spawn_duration_seconds",
                                         "Time from spawn request to a running workspace")]
        if self.networkpolicy is not None:  # Kubernetes only: the hub's start-up self-check
            enforced = GaugeMetricFamily("spe_networkpolicy_enforced",
                                         "1 if the cluster enforces the workspace NetworkPolicy, 0 if not, "
                                         "-1 if the hub's self-check could not tell")
            enforced.add_metric([], {"enforced": 1, "not-enforced": 0}.get(self.networkpolicy, -1))
            out.append(enforced)
        return out


class ProvisioningGroup(MetricGroup):
    actions = ("extract.provision",)

    def __init__(self):
        self.provision = Buckets(PROVISION_BUCKETS_SECONDS)
        self.rows: dict[str, int] = {}  # permit -> rows

    def apply(self, ev: dict, d: dict) -> None:
        if ev["outcome"] != "ok":
            return
        if isinstance(d.get("seconds"), (int, float)):
            self.provision.observe(float(d["seconds"]))
        if isinstance(d.get("rows"), int):
            permit = ev.get("permit_id") or "none"
            self.rows[permit] = self.rows.get(permit, 0) + d["rows"]

    def collect(self, scrape: Scrape) -> list[Metric]:
        rows = CounterMetricFamily("spe_provisioned_rows", "Rows written into permit extracts", labels=["permit"])
        for permit, n in sorted(self.rows.items()):
            rows.add_metric([permit], n)
        return [self.provision.family("spe_provisioning_duration_seconds", "Time to provision a permit's extract"),
                rows]


class PermitsGroup(MetricGroup):
    def collect(self, scrape: Scrape) -> list[Metric]:
        by_status = GaugeMetricFamily("spe_permits", "Data permits by status", labels=["status"])
        counts: dict[str, int] = {}
        for _pid, status, _doc in scrape.permit_rows:
            counts[status] = counts.get(status, 0) + 1
        for status, n in sorted(counts.items()):
            by_status.add_metric([status], n)
        return [by_status]


class AuditGroup(MetricGroup):
    actions = ("audit.verify", "audit.checkpoint")

    def __init__(self):
        self.last_verify: tuple[bool, float] | None = None  # (intact, unix time)
        self.last_checkpoint = 0.0  # unix time of the last signed checkpoint (0: never)

    def apply(self, ev: dict, d: dict) -> None:  # a failed verification counts too
        if ev["action"] == "audit.checkpoint":
            self.last_checkpoint = ts_seconds(ev["ts"]) if ev["outcome"] == "ok" else self.last_checkpoint
            return
        self.last_verify = (bool(d.get("ok")) and ev["outcome"] == "ok", ts_seconds(ev["ts"]))

    def collect(self, scrape: Scrape) -> list[Metric]:
        ok = GaugeMetricFamily("spe_audit_last_verification_ok",
                               "1 if the last `spe audit verify` found the trail intact, 0 if damaged, -1 never run")
        ok.add_metric([], -1 if self.last_verify is None else int(self.last_verify[0]))
        ts = GaugeMetricFamily("spe_audit_last_verification_timestamp_seconds",
                               "Unix time of the last audit verification (0: never)")
        ts.add_metric([], 0 if self.last_verify is None else self.last_verify[1])
        cp = GaugeMetricFamily("spe_audit_last_checkpoint_timestamp_seconds",
                               "Unix time of the last signed audit checkpoint (0: never)")
        cp.add_metric([], self.last_checkpoint)
        return [CounterMetricFamily("spe_audit_events", "Audit events written (chain head sequence)",
                                    value=scrape.head_seq), ok, ts, cp]


class BrowserGroup(MetricGroup):
    """Bytes the session recorder passed to browsers and withheld (its meter table, hub.sessionlog.meterdb)."""

    def collect(self, scrape: Scrape) -> list[Metric]:
        from hub.sessionlog.meterdb import totals_by_permit

        served = CounterMetricFamily("spe_browser_output_bytes", "Bytes of workspace output and file contents "
                                     "passed to browsers (session recorder meter)", labels=["permit"])
        withheld = CounterMetricFamily("spe_browser_withheld_bytes", "Bytes withheld from browsers because a "
                                       "day's output budget was used up", labels=["permit"])
        for permit, (used, held) in sorted(totals_by_permit(scrape.conn).items()):
            served.add_metric([permit], used)
            withheld.add_metric([permit], held)
        return [served, withheld]


HUB_GROUPS: dict[str, Callable[[], MetricGroup]] = {
    "workspace": WorkspaceGroup, "provisioning": ProvisioningGroup, "permits": PermitsGroup, "audit": AuditGroup,
    "browser": BrowserGroup,
}


def metric_groups() -> dict[str, Callable[[], MetricGroup]]:
    """Hub's groups and those of every registered extension, by name."""
    out = dict(HUB_GROUPS)
    for ext in extensions.installed():
        for name, factory in ext.metric_groups.items():
            if name in HUB_GROUPS:
                raise ValueError(f"extension {ext.name!r} redefines hub's metric group {name!r}")
            out[name] = factory
    return out


class Fold:
    """The audit events folded so far into some groups (pure: no I/O)."""

    def __init__(self, groups: Iterable[MetricGroup]):
        self.groups = tuple(groups)
        self.last_seq = 0
        self._by_action: dict[str, list[MetricGroup]] = {}
        for g in self.groups:
            for action in g.actions:
                self._by_action.setdefault(action, []).append(g)

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(sorted(self._by_action))

    def apply(self, ev: dict) -> None:
        self.last_seq = max(self.last_seq, ev["seq"])
        try:
            detail = json.loads(ev["detail"]) if ev.get("detail") else {}
        except ValueError:
            detail = {}
        if not isinstance(detail, dict):
            detail = {}
        for g in self._by_action.get(ev["action"], ()):
            g.apply(ev, detail)


class SpeCollector(Collector):
    """Reads the registry DB at scrape time; `groups` names the groups this process serves
    (default: every known one, see `metric_groups`)."""

    def __init__(self, engine: sa.Engine, groups: tuple[str, ...] | None = None, batch: int = 5000):
        known = metric_groups()
        groups = tuple(known) if groups is None else tuple(groups)
        unknown = set(groups) - set(known)
        if unknown:
            raise ValueError(f"unknown metric groups {sorted(unknown)}; known: {sorted(known)}")
        self.engine, self.batch = engine, batch
        self.fold = Fold(known[name]() for name in groups)
        self._lock = threading.Lock()

    def _advance(self, conn) -> int:
        if self.fold.actions:
            q = (sa.select(audit_events.c.seq, audit_events.c.ts, audit_events.c.actor, audit_events.c.action,
                           audit_events.c.permit_id, audit_events.c.object_id, audit_events.c.outcome,
                           audit_events.c.detail)
                 .where(audit_events.c.action.in_(self.fold.actions)).order_by(audit_events.c.seq).limit(self.batch))
            while True:
                rows = conn.execute(q.where(audit_events.c.seq > self.fold.last_seq)).mappings().all()
                for r in rows:
                    self.fold.apply(r)
                if len(rows) < self.batch:
                    break
        return conn.execute(sa.select(audit_head.c.seq)).scalar() or 0

    def collect(self):
        with self._lock, self.engine.connect() as conn:
            head_seq = self._advance(conn)
            permit_rows = conn.execute(sa.select(permits.c.id, permits.c.status, permits.c.document_json)).all()
            scrape = Scrape(conn, permit_rows, head_seq)
            families = [m for g in self.fold.groups for m in g.collect(scrape)]
            conn.rollback()
        yield from families


# id(registry) -> (registry, collector); holding the registry keeps its id from being reused.
_installed: dict[int, tuple[CollectorRegistry, SpeCollector]] = {}


def install_hub_metrics(engine: sa.Engine, registry: CollectorRegistry = REGISTRY) -> SpeCollector:
    """Register hub's metric groups in the hub's registry (served at /hub/metrics). Idempotent."""
    key = id(registry)
    if key not in _installed:
        collector = SpeCollector(engine, groups=HUB_PROCESS_GROUPS)
        registry.register(collector)
        _installed[key] = (registry, collector)
    return _installed[key][1]
