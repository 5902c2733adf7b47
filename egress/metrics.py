"""egress's metric groups, served by `hub.metrics.SpeCollector` once `egress.extension` registers them.

- `egress`: requests by current state, time from submission to decision, automatic disclosure
  check failures by rule (from the stored check results and from `failed_rules` in check events);
- `dp`: differential-privacy epsilon spent and left per permit (the DP ledger when it has a row,
  otherwise the permit's budget and the `dp.charge` events).

States and audit actions come from `egress.workflow`, epsilon units from `egress.dp.units`, the
rows from `egress.tables` and the DP ledger: nothing here copies a rule of theirs. No label
carries a person identifier (budgets are summed over member scopes). Must not import the web layer.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from egress import workflow as wf
from egress.dp.ledger import dp_budgets
from egress.dp.units import EPSILON_UNITS_PER_1
from egress.tables import egress_files
from hub.metrics import Buckets, MetricGroup, Scrape, ts_seconds

DECISION_BUCKETS_SECONDS = (60, 300, 900, 3600, 4 * 3600, 86400, 3 * 86400, 7 * 86400, 30 * 86400)
TRANSITION_ACTIONS = tuple(dict.fromkeys(wf.AUDIT_ACTION.values()))
# A request enters the trail when it is submitted: a draft is never counted.
COUNTED_STATES = tuple(s for s in wf.STATES if s != wf.DRAFT)
DECIDED_STATES = (wf.RELEASED, wf.REJECTED)


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


def check_failure_rows(conn: sa.Connection) -> dict[str, int]:
    """rule -> failed findings over every checked file version (`egress_files.check_json`)."""
    out: dict[str, int] = {}
    for (doc,) in conn.execute(sa.select(egress_files.c.check_json)):
        try:
            _findings(json.loads(doc), out)
        except (ValueError, TypeError):
            continue
    return out


def dp_budget_rows(conn: sa.Connection) -> dict[str, tuple[float, float]]:
    """permit -> (epsilon spent, epsilon total) from the DP ledger, summed over member scopes
    (so no username leaves this function)."""
    t = dp_budgets
    q = sa.select(t.c.permit_id, sa.func.sum(t.c.epsilon_spent_units), sa.func.sum(t.c.epsilon_total_units)) \
        .group_by(t.c.permit_id)
    return {pid: (int(spent or 0) / EPSILON_UNITS_PER_1, int(total or 0) / EPSILON_UNITS_PER_1)
            for pid, spent, total in conn.execute(q)}


class EgressGroup(MetricGroup):
    actions = TRANSITION_ACTIONS

    def __init__(self):
        self.requests: dict = {}  # request id -> (state, submitted ts)
        self.decision = Buckets(DECISION_BUCKETS_SECONDS)
        self.check_failures: dict[str, int] = {}  # rule -> count, from `failed_rules` of check events

    def apply(self, ev: dict, d: dict) -> None:
        if ev["outcome"] != "ok":
            return
        action = ev["action"]
        rid = str(ev.get("object_id") or d.get("request_id"))
        state, submitted = self.requests.get(rid, (None, None))
        # Every transition event carries detail "to", the state after it.
        new_state = str(d.get("to") or action.split(".", 1)[1])
        if action in (wf.AUDIT_ACTION[wf.SUBMIT], wf.AUDIT_ACTION[wf.RESUBMIT]) and submitted is None:
            submitted = ev["ts"]
        if action == wf.AUDIT_ACTION[wf.CHECK]:
            for rule in d.get("failed_rules") or ():
                self.check_failures[str(rule)] = self.check_failures.get(str(rule), 0) + 1
        if new_state in DECIDED_STATES and submitted and state not in DECIDED_STATES:
            self.decision.observe(max(0.0, ts_seconds(ev["ts"]) - ts_seconds(submitted)))
        self.requests[rid] = (new_state, submitted)

    def collect(self, scrape: Scrape):
        states = GaugeMetricFamily("spe_egress_requests", "Egress requests by current state", labels=["state"])
        counts: dict[str, int] = {}
        for state, _ in self.requests.values():
            counts[state] = counts.get(state, 0) + 1
        for state in sorted(set(COUNTED_STATES) | set(counts)):
            states.add_metric([state], counts.get(state, 0))
        fails = CounterMetricFamily("spe_egress_check_failures", "Automatic disclosure check failures by rule",
                                    labels=["rule"])
        # The stored check results, plus `failed_rules` named in check events (by emitters that
        # do not store results in egress_files).
        merged = dict(self.check_failures)
        for rule, n in check_failure_rows(scrape.conn).items():
            merged[rule] = merged.get(rule, 0) + n
        for rule, n in sorted(merged.items()):
            fails.add_metric([rule], n)
        return [states, self.decision.family("spe_egress_decision_duration_seconds",
                                             "Time from submission to release or rejection"), fails]


class DpGroup(MetricGroup):
    actions = ("dp.charge",)

    def __init__(self):
        self.spent: dict[str, float] = {}  # permit -> epsilon, from dp.charge events

    def apply(self, ev: dict, d: dict) -> None:
        if ev["outcome"] != "ok":
            return
        permit = ev.get("permit_id") or "none"
        try:
            self.spent[permit] = self.spent.get(permit, 0.0) + float(d["epsilon"])
        except (KeyError, TypeError, ValueError):
            pass

    def collect(self, scrape: Scrape):
        ledger = dp_budget_rows(scrape.conn)
        spent = GaugeMetricFamily("spe_dp_epsilon_spent", "Differential-privacy epsilon spent per permit",
                                  labels=["permit"])
        remaining = GaugeMetricFamily("spe_dp_epsilon_remaining", "Differential-privacy epsilon left per permit",
                                      labels=["permit"])
        for pid, _status, doc in scrape.permit_rows:
            if pid in ledger:  # the DP ledger is authoritative
                used, budget = ledger[pid]
            else:  # no ledger row yet: the permit's budget and the dp.charge events
                try:
                    budget = float((json.loads(doc).get("dp") or {}).get("epsilon", 0.0))
                except (ValueError, TypeError, AttributeError):
                    budget = 0.0
                used = self.spent.get(pid, 0.0)
            spent.add_metric([pid], used)
            remaining.add_metric([pid], max(0.0, budget - used))
        return [spent, remaining]


METRIC_GROUPS = {"egress": EgressGroup, "dp": DpGroup}
