"""The hook through which egress plugs into hub (hub.extensions): tables, metric groups and
register rows arrive only by registration, and the installed `spe` command loads egress's
entry point so that one call creates every table."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest

from hub import audit, extensions
from hub.db import make_engine
from hub.metrics import HUB_PROCESS_GROUPS, MetricGroup, SpeCollector, install_hub_metrics, metric_groups
from hub.permits.store import PermitStore
from hub.register import ReleasedOutput, register_document
from tests.conftest import copy_example

EGRESS_TABLES = {"egress_requests", "egress_request_versions", "egress_files", "egress_reviews", "egress_releases",
                 "egress_downloads", "dp_budgets", "dp_charges"}


@pytest.fixture
def registry_of_extensions(monkeypatch):
    """The process-wide extension registry, restored after the test (other tests rely on egress's)."""
    monkeypatch.setattr(extensions, "_registered", dict(extensions._registered))
    return extensions


def test_the_spe_command_creates_egress_tables_through_its_entry_point(tmp_path):
    # A fresh process: nothing but the installed `spe.extensions` entry point can bring egress in.
    home = tmp_path / "home"
    code = ("import sys; from hub.cli import main; "
            "sys.exit(main(['--home', sys.argv[1], 'permit', 'list']))")
    run = subprocess.run([sys.executable, "-c", code, str(home)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    tables = set(sa.inspect(sa.create_engine(f"sqlite:///{home / 'registry.db'}")).get_table_names())
    assert EGRESS_TABLES <= tables and {"permits", "audit_events"} <= tables


def test_hub_alone_knows_only_its_own_tables_and_groups(tmp_path):
    # hub by itself (no extension registered) in a fresh interpreter
    code = ("import sys, sqlalchemy as sa; from hub.db import make_engine; from hub.metrics import metric_groups; "
            "e = make_engine('sqlite:///' + sys.argv[1]); "
            "print(sorted(sa.inspect(e).get_table_names())); print(sorted(metric_groups())); "
            "print(sorted(m for m in sys.modules if m == 'egress' or m.startswith('egress.')))")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "hub.db")], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    tables, groups, egress_modules = run.stdout.splitlines()
    assert "audit_events" in tables and not any(t in tables for t in EGRESS_TABLES)
    assert groups == str(sorted(HUB_PROCESS_GROUPS)) and egress_modules == "[]"


def test_tables_of_an_extension_registered_after_the_engine_are_created(registry_of_extensions, tmp_path):
    url = f"sqlite:///{tmp_path / 'late.db'}"
    make_engine(url)
    late = sa.MetaData()
    sa.Table("late_extension_rows", late, sa.Column("id", sa.Integer, primary_key=True))
    extensions.register(extensions.Extension(name="late", metadata=(late,)))
    assert "late_extension_rows" in sa.inspect(make_engine(url)).get_table_names()


def test_register_rows_of_every_extension_reach_the_register_only_through_public_fields(
        registry_of_extensions, engine, eunomia, tmp_path):
    permit, _ = PermitStore(engine).apply_file(copy_example("demo-gibleed.yaml", tmp_path), actor="op")
    long_title = "Incidence " * 20
    extensions.register(extensions.Extension(name="other-a", released_outputs=lambda _e: [
        ReleasedOutput(permit.id, "a-1", f"{long_title}\nprepared by alice", "2026-02-01T10:00:00Z", "table")]))
    extensions.register(extensions.Extension(name="other-b", released_outputs=lambda _e: [
        ReleasedOutput(permit.id, "b-1", "", "2026-03-01T10:00:00Z", "figure")]))
    outputs = register_document(engine)["released_outputs"]
    assert [o["output_id"] for o in outputs] == ["b-1", "a-1"]  # newest first, across extensions
    assert outputs[0] == {"permit_id": permit.id, "output_id": "b-1", "title": "(untitled)", "date": "2026-03-01",
                          "kind": "figure"}
    assert len(outputs[1]["title"]) == 120 and outputs[1]["title"].endswith("…") and "alice" not in str(outputs)


def test_metric_groups_cannot_shadow_each_other(registry_of_extensions):
    class Nothing(MetricGroup):
        def collect(self, scrape):
            return []

    extensions.register(extensions.Extension(name="shadow", metric_groups={"workspace": Nothing}))
    with pytest.raises(ValueError, match="redefines hub's metric group 'workspace'"):
        metric_groups()
    extensions.register(extensions.Extension(name="shadow", metric_groups={"nothing": Nothing}))  # replaced by name
    assert "nothing" in metric_groups()
    with pytest.raises(ValueError, match="'egress'.*already registered by 'egress'"):
        extensions.register(extensions.Extension(name="copy", metric_groups={"egress": Nothing}))


def test_networkpolicy_check_events_reach_the_hub_metric(engine):
    registry = CollectorRegistry()
    install_hub_metrics(engine, registry=registry)
    assert "spe_networkpolicy_enforced" not in generate_latest(registry).decode()  # no check yet
    for result in ("enforced", "not-enforced"):
        with engine.begin() as conn:
            audit.record(conn, actor="hub", action="kube.networkpolicy_check", detail={"result": result})
    assert "spe_networkpolicy_enforced 0.0" in generate_latest(registry).decode()


def test_the_hub_process_serves_no_egress_family(engine):
    text = generate_latest(_registry(SpeCollector(engine, groups=HUB_PROCESS_GROUPS))).decode()
    assert "spe_audit_events_total" in text and "spe_egress" not in text and "spe_dp" not in text


def _registry(collector):
    registry = CollectorRegistry()
    registry.register(collector)
    return registry
