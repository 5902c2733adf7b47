"""SPE Prometheus metrics, computed from the registry database at scrape time (EHDS Art. 73(1)(f)).

One custom `SpeCollector` reads the audit trail (incrementally: each scrape folds only the
events appended since the last one) and the permit table, so the hub and the egress service,
in different processes, report the same numbers. Metric names follow Prometheus conventions
(base units in the name, `_total` for counters). No label carries a person identifier: the
fold keeps (user, server) keys in memory only to count workspaces, and labels carry permit
ids, states and rule names.

Mounting: `install_hub_metrics(engine)` registers the collector in the hub process's default
registry (JupyterHub already serves it at `/hub/metrics`); `metrics_handlers(engine, prefix)`
gives tornado handlers for the egress service's `/services/egress/metrics`.

Must not import `egress` (hub never depends on egress).
"""

from __future__ import annotations

import json
import threading
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from hub.audit.tables import audit_events, audit_head
from hub.registry_tables import permits

SPAWN_BUCKETS_SECONDS = (1, 2, 5, 10, 20, 30, 60, 120, 300)
PROVISION_BUCKETS_SECONDS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
DECISION_BUCKETS_SECONDS = (60, 300, 900, 3600, 4 * 3600, 86400, 3 * 86400, 7 * 86400, 30 * 86400)

EGRESS_TRANSITIONS = ("egress.submit", "egress.check", "egress.review", "egress.approve", "egress.return",
                      "egress.reject", "egress.release", "egress.resubmit", "egress.withdraw")
FOLDED_ACTIONS = (
    "workspace.spawn", "workspace.stop", "workspace.cull", "workspace.terminate", "extract.provision",
    *EGRESS_TRANSITIONS, "dp.charge", "audit.verify",
)
# Egress request states (egress.workflow); every transition event carries detail "to", the
# state after it (the audit trail mirrors the egress tables, so it is enough for counting).
EGRESS_STATES = ("submitted", "checked", "in_review", "approved", "returned", "rejected", "released", "withdrawn")
DECIDED_STATES = ("released", "rejected")
GROUPS = ("workspace", "provisioning", "egress", "dp", "audit", "permits")
# egress.dp.units.EPSILON_UNITS_PER_1 (hub never imports egress; a test checks they agree).
EPSILON_UNITS_PER_1 = 10**12


def _findings(node, out: dict, depth: int = 0) -> None:
    """Count {"rule": r, "status": "fail"} findings anywhere in a stored check result."""
    if depth > 12:
        return
    if isinstance(node, dict):
        if node.get("status") == "fail" and isinstance(node.get("rule"), str):
            out[node["rule"]] = out.get(node["rule"], 0) + 1
        for v in node.values():
            _findings(v, out, depth + 1)
    elif isinstance(node, list):
        for v in node:
            _findings(v, out, depth + 1)


def check_failure_rows(conn) -> dict[str, int] | None:
    """rule -> failed findings over every checked file version, from the egress service's
    `egress_files.check_json`; None until that table exists."""
    if not sa.inspect(conn).has_table("egress_files"):
        return None
    t = sa.Table("egress_files", sa.MetaData(), autoload_with=conn)
    if "check_json" not in t.c:
        return None
    out: dict[str, int] = {}
    for (doc,) in conn.execute(sa.select(t.c.check_json)):
        try:
            _findings(json.loads(doc), out)
        except (ValueError, TypeError):
            continue
    return out


def dp_budget_rows(conn) -> dict[str, tuple[float, float]] | None:
    """permit -> (epsilon spent, epsilon total) from the DP ledger's `dp_budgets` (summed over
    member scopes, so no username leaves this function); None until that table exists."""
    if not sa.inspect(conn).has_table("dp_budgets"):
        return None
    t = sa.Table("dp_budgets", sa.MetaData(), autoload_with=conn)
    q = sa.select(t.c.permit_id, sa.func.sum(t.c.epsilon_spent_units), sa.func.sum(t.c.epsilon_total_units)) \
        .group_by(t.c.permit_id)
    return {pid: (int(spent or 0) / EPSILON_UNITS_PER_1, int(total or 0) / EPSILON_UNITS_PER_1)
            for pid, spent, total in conn.execute(q)}


def _ts_seconds(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


@dataclass
class _Histogram:
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


@dataclass
class AuditFold:
    """Aggregates over the audit trail, advanced event by event (pure: no I/O)."""

    last_seq: int = 0
    active: dict = field(default_factory=dict)  # (user, server) -> permit_id; memory only, never a label
    spawn: _Histogram = field(default_factory=lambda: _Histogram(SPAWN_BUCKETS_SECONDS))
    provision: _Histogram = field(default_factory=lambda: _Histogram(PROVISION_BUCKETS_SECONDS))
    provisioned_rows: dict = field(default_factory=dict)  # permit -> rows
    requests: dict = field(default_factory=dict)  # request_id -> (state, submitted_ts)
    decision: _Histogram = field(default_factory=lambda: _Histogram(DECISION_BUCKETS_SECONDS))
    check_failures: dict = field(default_factory=dict)  # rule -> count
    dp_spent: dict = field(default_factory=dict)  # permit -> epsilon
    last_verify: tuple[bool, float] | None = None
    networkpolicy: str | None = None  # last kube.networkpolicy_check result

    def apply(self, ev: dict) -> None:
        action = ev["action"]
        self.last_seq = max(self.last_seq, ev["seq"])
        if ev["outcome"] != "ok" and action != "audit.verify":
            return
        try:
            d = json.loads(ev["detail"]) if ev.get("detail") else {}
        except ValueError:
            d = {}
        permit = ev.get("permit_id") or "none"
        if action == "workspace.spawn":
            self.active[(ev["actor"], d.get("server", ""))] = permit
            seconds = d.get("ready_seconds", d.get("duration_seconds"))
            if isinstance(seconds, (int, float)):
                self.spawn.observe(float(seconds))
        elif action in ("workspace.stop", "workspace.cull", "workspace.terminate"):
            self.active.pop((d.get("user", ev["actor"]), d.get("server", "")), None)
        elif action == "extract.provision":
            if isinstance(d.get("seconds"), (int, float)):
                self.provision.observe(float(d["seconds"]))
            if isinstance(d.get("rows"), int):
                self.provisioned_rows[permit] = self.provisioned_rows.get(permit, 0) + d["rows"]
        elif action in EGRESS_TRANSITIONS:
            rid = str(ev.get("object_id") or d.get("request_id"))
            state, submitted = self.requests.get(rid, (None, None))
            new_state = str(d.get("to") or action.split(".", 1)[1])
            if action in ("egress.submit", "egress.resubmit") and submitted is None:
                submitted = ev["ts"]
            if action == "egress.check":
                for rule in d.get("failed_rules") or ():
                    self.check_failures[str(rule)] = self.check_failures.get(str(rule), 0) + 1
            if new_state in DECIDED_STATES and submitted and state not in DECIDED_STATES:
                self.decision.observe(max(0.0, _ts_seconds(ev["ts"]) - _ts_seconds(submitted)))
            self.requests[rid] = (new_state, submitted)
        elif action == "dp.charge":
            try:
                self.dp_spent[permit] = self.dp_spent.get(permit, 0.0) + float(d["epsilon"])
            except (KeyError, TypeError, ValueError):
                pass
        elif action == "kube.networkpolicy_check":
            self.networkpolicy = str(d.get("result"))
        elif action == "audit.verify":
            self.last_verify = (bool(d.get("ok")) and ev["outcome"] == "ok", _ts_seconds(ev["ts"]))


class SpeCollector(Collector):
    """Reads the registry DB at scrape time; `groups` selects which families this process exposes."""

    def __init__(self, engine: sa.Engine, groups: tuple[str, ...] = GROUPS, batch: int = 5000):
        unknown = set(groups) - set(GROUPS)
        if unknown:
            raise ValueError(f"unknown metric groups {sorted(unknown)}; known: {GROUPS}")
        self.engine, self.groups, self.batch = engine, groups, batch
        self.fold = AuditFold()
        self._lock = threading.Lock()

    def _advance(self, conn) -> int:
        q = (sa.select(audit_events.c.seq, audit_events.c.ts, audit_events.c.actor, audit_events.c.action,
                       audit_events.c.permit_id, audit_events.c.object_id, audit_events.c.outcome,
                       audit_events.c.detail)
             .where(audit_events.c.action.in_(FOLDED_ACTIONS)).order_by(audit_events.c.seq).limit(self.batch))
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
            ledger = dp_budget_rows(conn) if "dp" in self.groups else None
            checks = check_failure_rows(conn) if "egress" in self.groups else None
            conn.rollback()
        f, g = self.fold, self.groups
        if "workspace" in g:
            active = GaugeMetricFamily("spe_workspaces_active", "Running workspaces per permit", labels=["permit"])
            # Every known permit gets a series (0 when idle), so a stop shows as a drop, not a gap.
            per_permit: dict[str, int] = {pid: 0 for pid, _s, _d in permit_rows}
            for permit in f.active.values():
                per_permit[permit] = per_permit.get(permit, 0) + 1
            for permit, n in sorted(per_permit.items()):
                active.add_metric([permit], n)
            yield active
            yield f.spawn.family("spe_workspace_spawn_duration_seconds", "Time from spawn request to a running workspace")
            if f.networkpolicy is not None:  # Kubernetes only: the hub's start-up self-check
                enforced = GaugeMetricFamily("spe_networkpolicy_enforced",
                                             "1 if the cluster enforces the workspace NetworkPolicy, 0 if not, "
                                             "-1 if the hub's self-check could not tell")
                enforced.add_metric([], {"enforced": 1, "not-enforced": 0}.get(f.networkpolicy, -1))
                yield enforced
        if "provisioning" in g:
            yield f.provision.family("spe_provisioning_duration_seconds", "Time to provision a permit's extract")
            rows = CounterMetricFamily("spe_provisioned_rows", "Rows written into permit extracts", labels=["permit"])
            for permit, n in sorted(f.provisioned_rows.items()):
                rows.add_metric([permit], n)
            yield rows
        if "egress" in g:
            states = GaugeMetricFamily("spe_egress_requests", "Egress requests by current state", labels=["state"])
            counts: dict[str, int] = {}
            for state, _ in f.requests.values():
                counts[state] = counts.get(state, 0) + 1
            for state in sorted(set(EGRESS_STATES) | set(counts)):
                states.add_metric([state], counts.get(state, 0))
            yield states
            yield f.decision.family("spe_egress_decision_duration_seconds", "Time from submission to release or rejection")
            fails = CounterMetricFamily("spe_egress_check_failures", "Automatic disclosure check failures by rule",
                                        labels=["rule"])
            # The egress service's stored check results, plus `failed_rules` named in check events
            # (by emitters that do not store results in egress_files).
            merged = dict(f.check_failures)
            for rule, n in (checks or {}).items():
                merged[rule] = merged.get(rule, 0) + n
            for rule, n in sorted(merged.items()):
                fails.add_metric([rule], n)
            yield fails
        if "dp" in g:
            spent = GaugeMetricFamily("spe_dp_epsilon_spent", "Differential-privacy epsilon spent per permit",
                                      labels=["permit"])
            remaining = GaugeMetricFamily("spe_dp_epsilon_remaining", "Differential-privacy epsilon left per permit",
                                          labels=["permit"])
            for pid, _status, doc in permit_rows:
                if ledger is not None and pid in ledger:  # the DP ledger is authoritative
                    used, budget = ledger[pid]
                else:  # no ledger row yet: the permit's budget and the dp.charge events
                    try:
                        budget = float((json.loads(doc).get("dp") or {}).get("epsilon", 0.0))
                    except (ValueError, TypeError, AttributeError):
                        budget = 0.0
                    used = f.dp_spent.get(pid, 0.0)
                spent.add_metric([pid], used)
                remaining.add_metric([pid], max(0.0, budget - used))
            yield spent
            yield remaining
        if "permits" in g:
            by_status = GaugeMetricFamily("spe_permits", "Data permits by status", labels=["status"])
            counts = {}
            for _pid, status, _doc in permit_rows:
                counts[status] = counts.get(status, 0) + 1
            for status, n in sorted(counts.items()):
                by_status.add_metric([status], n)
            yield by_status
        if "audit" in g:
            yield CounterMetricFamily("spe_audit_events", "Audit events written (chain head sequence)", value=head_seq)
            ok = GaugeMetricFamily("spe_audit_last_verification_ok",
                                   "1 if the last `spe audit verify` found the trail intact, 0 if damaged, -1 never run")
            ok.add_metric([], -1 if f.last_verify is None else int(f.last_verify[0]))
            yield ok
            ts = GaugeMetricFamily("spe_audit_last_verification_timestamp_seconds",
                                   "Unix time of the last audit verification (0: never)")
            ts.add_metric([], 0 if f.last_verify is None else f.last_verify[1])
            yield ts


_installed: dict[int, SpeCollector] = {}


def install_hub_metrics(engine: sa.Engine, registry: CollectorRegistry = REGISTRY) -> SpeCollector:
    """Register SPE metrics in the hub's registry (served at /hub/metrics). Idempotent."""
    key = id(registry)
    if key not in _installed:
        collector = SpeCollector(engine, groups=("workspace", "provisioning", "permits", "audit"))
        registry.register(collector)
        _installed[key] = collector
    return _installed[key]


def egress_registry(engine: sa.Engine) -> CollectorRegistry:
    """A registry with the egress-side families (egress requests, checks, DP, audit)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SpeCollector(engine, groups=("egress", "dp", "audit")))
    return registry


def metrics_handlers(engine: sa.Engine, prefix: str) -> list[tuple]:
    """Tornado routes serving `egress_registry(engine)` at `<prefix>/metrics`."""
    from tornado import web

    registry = egress_registry(engine)

    class MetricsHandler(web.RequestHandler):
        def get(self):
            self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.write(generate_latest(registry))

    return [(prefix.rstrip("/") + "/metrics", MetricsHandler, {})]


# The name the egress engineer asked for.
def egress_metrics_handler(engine: sa.Engine, prefix: str = "/services/egress") -> list[tuple]:
    return metrics_handlers(engine, prefix)
