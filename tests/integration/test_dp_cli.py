"""`python -m egress.dp budget`: the operators' view of the ledger, against a real registry
(the demo permit applied, real charges), and its one-line errors."""

from __future__ import annotations

import json

from egress.dp.cli import main
from egress.dp.ledger import charge
from hub.permits.store import PermitStore
from tests.conftest import copy_example


def test_budget_shows_spent_and_remaining_and_the_charges(settings, engine, eunomia, tmp_path, capsys):
    permit, _ = PermitStore(engine).apply_file(copy_example("demo-gibleed.yaml", tmp_path), actor="op")
    charge(engine, permit.id, "alice", 0.5, 0.0, "q1" * 8, budget=permit.dp, kind="count")
    charge(engine, permit.id, "bob", 0.25, 1e-7, "q2" * 8, budget=permit.dp, kind="mean")
    assert main(["--db-url", settings.db_url, "budget", permit.id, "--charges", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (shared,) = report["budgets"]
    assert (shared["epsilon_total"], shared["epsilon_spent"], shared["epsilon_remaining"]) == (2.0, 0.75, 1.25)
    assert [(c["member"], c["kind"], c["epsilon"]) for c in report["charges"]] == [
        ("alice", "count", 0.5), ("bob", "mean", 0.25)]
    assert main(["--db-url", settings.db_url, "budget", permit.id, "--member", "bob", "--charges"]) == 0
    text = capsys.readouterr().out
    assert "1.25" in text and "bob mean" in text and "alice" not in text


def test_an_unknown_permit_is_one_line_and_exit_2(settings, engine, capsys):
    assert main(["--db-url", settings.db_url, "budget", "NO-SUCH-PERMIT"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("egress.dp: error:") and "NO-SUCH-PERMIT" in err and err.count("\n") == 1


def test_an_unreadable_registry_is_one_line_and_exit_3(tmp_path, capsys):
    (tmp_path / "registry.db").write_text("not a database")
    assert main(["--db-url", f"sqlite:///{tmp_path / 'registry.db'}", "budget", "DEMO-2026-001"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("egress.dp: failed:") and err.count("\n") == 1
