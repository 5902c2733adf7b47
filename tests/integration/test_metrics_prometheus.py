"""A real Prometheus server scrapes the hub-side and egress-side SPE metrics endpoints.

The hub endpoint is prometheus_client's own HTTP server over the registry that
`install_hub_metrics` fills (what JupyterHub serves at /hub/metrics); the egress endpoint is a
tornado app mounting `metrics_handlers` (what the egress service mounts). Both read the same
registry DB, filled through the real permit store and `hub.audit.record`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests
from prometheus_client import CollectorRegistry, start_http_server

from hub.audit import record
from hub.audit.store import utc_now_iso
from egress.web.metrics import metrics_handlers
from hub.metrics import install_hub_metrics
from hub.permits.store import PermitStore
from tests.conftest import stop_process, copy_example
from tests.integration.tornado_thread import TornadoThread
from hub.hubapp.process import free_loopback_port as free_port  # noqa: E402

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"




def fill_registry(engine, tmp_path) -> str:
    permit, _ = PermitStore(engine).apply_file(copy_example("demo-gibleed.yaml", tmp_path), actor="op")
    pid = permit.id
    t0 = datetime.now(timezone.utc) - timedelta(hours=2)
    events = [
        dict(actor="alice", action="workspace.spawn", permit_id=pid, detail={"server": "a", "ready_seconds": 3.5}),
        dict(actor="bob", action="workspace.spawn", permit_id=pid, detail={"server": "b", "ready_seconds": 42.0}),
        dict(actor="bob", action="workspace.stop", permit_id=pid, detail={"server": "b"}),
        dict(actor="op", action="extract.provision", permit_id=pid, detail={"rows": 1234, "seconds": 12.5}),
        dict(actor="alice", action="egress.submit", permit_id=pid, object_id="r1",
             detail={"from": "draft", "to": "submitted"}, ts=utc_now_iso(t0)),
        dict(actor="egress", action="egress.check", permit_id=pid, object_id="r1",
             detail={"from": "submitted", "to": "checked", "failed_rules": ["threshold", "dominance"]}),
        dict(actor="carol", action="egress.release", permit_id=pid, object_id="r1",
             detail={"from": "approved", "to": "released"}, ts=utc_now_iso(t0 + timedelta(seconds=1800))),
        dict(actor="alice", action="egress.submit", permit_id=pid, object_id="r2",
             detail={"from": "draft", "to": "submitted"}),
        dict(actor="egress", action="egress.check", permit_id=pid, object_id="r2",
             detail={"from": "submitted", "to": "checked", "failed_rules": ["threshold"]}),
        dict(actor="alice", action="dp.charge", permit_id=pid, detail={"epsilon": 0.5}),
        dict(actor="alice", action="dp.charge", permit_id=pid, detail={"epsilon": 0.25}),
        dict(actor="op", action="audit.verify", detail={"ok": True, "events": 11}),
    ]
    for e in events:
        with engine.begin() as conn:
            record(conn, **e)
    return pid


@pytest.fixture
def prometheus(tmp_path):
    ports = {"hub": free_port(), "egress": free_port(), "prom": free_port()}
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: hub\n    static_configs: [{{targets: ['127.0.0.1:{ports['hub']}']}}]\n"
        f"  - job_name: egress\n    metrics_path: /services/egress/metrics\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{ports['egress']}']}}]\n")
    log = open(tmp_path / "prometheus.log", "w")
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{ports['prom']}"], stdout=log, stderr=log)
    try:
        yield ports
    finally:
        stop_process(proc)
        log.close()
        if os.environ.get("SPE_TEST_VERBOSE"):
            print((tmp_path / "prometheus.log").read_text())


def query(prom_port: int, expr: str, deadline_seconds: float = 90) -> list[dict]:
    end = time.monotonic() + deadline_seconds
    last = None
    while time.monotonic() < end:
        try:
            r = requests.get(f"http://127.0.0.1:{prom_port}/api/v1/query", params={"query": expr}, timeout=5)
            last = r.json()
            if last.get("status") == "success" and last["data"]["result"]:
                return last["data"]["result"]
        except (requests.ConnectionError, ValueError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"Prometheus never returned {expr!r}; last answer: {last}")


def value(results, **labels) -> float:
    for r in results:
        if all(r["metric"].get(k) == v for k, v in labels.items()):
            return float(r["value"][1])
    raise AssertionError(f"no series with {labels} in {results}")


def test_prometheus_scrapes_hub_and_egress_metrics(engine, eunomia, tmp_path, prometheus):
    pid = fill_registry(engine, tmp_path)
    hub_registry = CollectorRegistry()
    install_hub_metrics(engine, registry=hub_registry)
    hub_server, _ = start_http_server(prometheus["hub"], addr="127.0.0.1", registry=hub_registry)
    try:
        with TornadoThread(metrics_handlers(engine, "/services/egress"), port=prometheus["egress"]):
            p = prometheus["prom"]
            assert value(query(p, 'spe_workspaces_active{job="hub"}'), permit=pid) == 1
            assert value(query(p, "spe_workspace_spawn_duration_seconds_count"), job="hub") == 2
            assert value(query(p, 'spe_workspace_spawn_duration_seconds_bucket{le="5.0"}')) == 1
            assert value(query(p, "spe_workspace_spawn_duration_seconds_sum")) == pytest.approx(45.5)
            assert value(query(p, "spe_provisioning_duration_seconds_sum")) == pytest.approx(12.5)
            assert value(query(p, "spe_provisioned_rows_total"), permit=pid) == 1234
            assert value(query(p, "spe_egress_requests"), state="released", job="egress") == 1
            assert value(query(p, "spe_egress_requests"), state="checked") == 1
            assert value(query(p, "spe_egress_decision_duration_seconds_sum")) == pytest.approx(1800, abs=1)
            fails = query(p, "spe_egress_check_failures_total")
            assert value(fails, rule="threshold") == 2 and value(fails, rule="dominance") == 1
            assert value(query(p, "spe_dp_epsilon_spent"), permit=pid) == pytest.approx(0.75)
            assert value(query(p, "spe_dp_epsilon_remaining"), permit=pid) == pytest.approx(1.25)
            assert value(query(p, "spe_audit_last_verification_ok")) == 1
            assert value(query(p, "spe_audit_last_verification_timestamp_seconds")) > time.time() - 3600
            # Both processes read the same trail: they agree on the number of events written.
            audit = query(p, "spe_audit_events_total")
            assert value(audit, job="hub") == value(audit, job="egress") >= 12
            # No label anywhere carries a person identifier.
            all_series = query(p, '{__name__=~"spe_.*"}')
            label_values = {v for s in all_series for k, v in s["metric"].items() if k != "__name__"}
            for person in ("alice", "bob", "carol", "op", "egress-user"):
                assert person not in label_values
            assert {"permit", "state", "rule"} & {k for s in all_series for k in s["metric"]}

            # A later event shows up at the next scrape (gauges are computed at scrape time).
            with engine.begin() as conn:
                record(conn, actor="alice", action="workspace.stop", permit_id=pid, detail={"server": "a"})
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                res = query(p, 'spe_workspaces_active{job="hub"}')
                if value(res, permit=pid) == 0:
                    break
                time.sleep(0.5)
            else:  # the gauge for the permit never went to 0
                raise AssertionError("spe_workspaces_active did not drop after the stop")
    finally:
        hub_server.shutdown()
        hub_server.server_close()
