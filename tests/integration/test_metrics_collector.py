"""SpeCollector read directly (no Prometheus): DP budget comes from the real DP ledger when
it has a row, and no username appears in any label or sample."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from egress.dp.ledger import charge
from hub.metrics import SpeCollector
from hub.permits.store import PermitStore
from tests.conftest import copy_example


def test_dp_budget_from_the_ledger_without_usernames(engine, eunomia, tmp_path):
    permit, _ = PermitStore(engine).apply_file(copy_example("demo-gibleed.yaml", tmp_path), actor="op")
    charge(engine, permit.id, "alice", 0.5, 0.0, "q1", budget=permit.dp, kind="count")
    charge(engine, permit.id, "bob", 0.25, 0.0, "q2", budget=permit.dp, kind="count")
    registry = CollectorRegistry()
    registry.register(SpeCollector(engine))
    text = generate_latest(registry).decode()
    samples = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
               if line and not line.startswith("#")}
    total = permit.dp.epsilon * (len(permit.members) if permit.dp.per_member else 1)
    assert samples[f'spe_dp_epsilon_spent{{permit="{permit.id}"}}'] == 0.75
    assert samples[f'spe_dp_epsilon_remaining{{permit="{permit.id}"}}'] == total - 0.75
    for person in ("alice", "bob"):
        assert person not in text


def test_check_failures_by_rule_from_the_egress_check_results(engine):
    import json

    # The egress service's table (egress/tables.py), with stored results in the shape of
    # egress.checks.verdicts (nested findings naming their rule).
    result = {"tables": [{"cells": [{"findings": [{"rule": "threshold", "status": "fail"},
                                                  {"rule": "dominance", "status": "review"}]},
                                    {"findings": [{"rule": "threshold", "status": "fail"}]}],
                          "findings": [{"rule": "person_key_column", "status": "fail"}]}]}
    from tests.integration.egress_rows import insert_row

    for version, check in ((1, json.dumps(result)), (2, "not json")):
        insert_row(engine, "egress_requests", id=f"r-{version}", permit_id="P", author="alice", state="checked")
        insert_row(engine, "egress_request_versions", request_id=f"r-{version}", version=version, kind="table",
                   description="d", submitted_at="2026-01-01T00:00:00Z")
        insert_row(engine, "egress_files", request_id=f"r-{version}", version=version, name="a.csv",
                   check_json=check)
    registry = CollectorRegistry()
    registry.register(SpeCollector(engine, groups=("egress",)))
    text = generate_latest(registry).decode()
    assert 'spe_egress_check_failures_total{rule="threshold"} 2.0' in text
    assert 'spe_egress_check_failures_total{rule="person_key_column"} 1.0' in text
    assert 'rule="dominance"' not in text  # "review" is not a failure
