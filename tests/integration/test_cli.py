"""The `spe` CLI end to end (in-process): clear one-line errors, non-zero exit, nothing changed."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from hub.audit.tables import audit_events
from hub.identity import local_operator
from hub.registry_tables import datasets, permit_versions, permits
from tests.conftest import EXAMPLES


def snapshot(engine):
    with engine.connect() as conn:
        return {t.name: conn.execute(sa.select(t)).all() for t in (datasets, permits, permit_versions, audit_events)}


def test_happy_path_and_idempotent_apply(spe, engine):
    assert spe("dataset", "add-example")[0] == 0
    code, out, _ = spe("permit", "apply", str(EXAMPLES / "demo-gibleed.yaml"))
    assert code == 0 and "created: version 1, active" in out
    code, out, _ = spe("permit", "apply", str(EXAMPLES / "demo-gibleed.yaml"))
    assert code == 0 and "unchanged" in out
    code, out, _ = spe("permit", "show", "DEMO-2026-001")
    shown = json.loads(out)
    assert shown["status"] == "active" and len(shown["versions"]) == 1
    code, out, err = spe("permit", "provision", "DEMO-2026-001")
    assert code == 0 and "extract DEMO-2026-001/1" in out and "writing person" in err
    code, out, _ = spe("audit", "verify")
    assert code == 0 and "intact" in out
    with engine.connect() as conn:
        recorded = conn.execute(sa.select(audit_events.c.actor, audit_events.c.detail)).all()
    # $SPE_ACTOR=olga is a claim: the actor is the Unix account that ran the commands (hub.identity)
    assert {actor for actor, _ in recorded} == {local_operator().actor}
    assert {(json.loads(d)["auth"], json.loads(d)["claimed_actor"]) for _, d in recorded} == {("local-unix", "olga")}


def test_changed_permit_gets_a_new_version(spe, tmp_path):
    spe("dataset", "add-example")
    spe("permit", "apply", str(EXAMPLES / "demo-gibleed.yaml"))
    changed = tmp_path / "p.yaml"
    changed.write_text((EXAMPLES / "demo-gibleed.yaml").read_text().replace("threshold: 10", "threshold: 12"))
    code, out, _ = spe("permit", "apply", str(changed))
    assert code == 0 and "updated: version 2" in out
    code, out, _ = spe("permit", "show", "DEMO-2026-001")
    assert json.loads(out)["effective"]["egress"]["threshold"] == 12


BAD = [
    ("invalid yaml", "id: [unclosed\n", "invalid YAML at line"),
    ("not a mapping", "- a\n- b\n", "must be a YAML mapping"),
    ("unknown table", None, "no table 'nosuch'"),
    ("unknown column", None, "no column 'shoe_size'"),
    ("dates out of order", None, "must be after valid_from"),
    ("prohibited purpose", None, "prohibited by EHDS"),
    ("duplicate member", None, "duplicate member"),
]


def _mutate(case: str, text: str) -> str:
    return {
        "unknown table": text.replace("  drug_exposure:", "  nosuch:"),
        "unknown column": text.replace("race_concept_id]", "race_concept_id, shoe_size]"),
        "dates out of order": text.replace('valid_until: "2030-12-31"', 'valid_until: "2020-12-31"'),
        "prohibited purpose": text.replace("purpose: scientific_research", "purpose: advertising"),
        "duplicate member": text.replace("{username: bob, role: researcher}", "{username: alice, role: researcher}"),
    }[case]


@pytest.mark.parametrize("case, text, message", BAD)
def test_bad_permit_files_change_nothing(spe, engine, tmp_path, case, text, message):
    spe("dataset", "add-example")
    spe("permit", "apply", str(EXAMPLES / "demo-gibleed.yaml"))
    before = snapshot(engine)
    f = tmp_path / "bad.yaml"
    f.write_text(text if text is not None else _mutate(case, (EXAMPLES / "demo-gibleed.yaml").read_text()))
    code, out, err = spe("permit", "apply", str(f))
    assert code == 2
    assert message in err and err.startswith("spe: error:") and len(err.strip().splitlines()) == 1
    after = snapshot(engine)
    assert {k: v for k, v in after.items() if k != "audit_events"} == {k: v for k, v in before.items() if k != "audit_events"}
    # the only addition is the audit record of the refused attempt
    assert after["audit_events"][:-1] == before["audit_events"]
    refused = after["audit_events"][-1]._mapping
    assert (refused["action"], refused["outcome"], refused["actor"]) == ("cli.permit.apply", "refused",
                                                                         local_operator().actor)
    assert json.loads(refused["detail"])["claimed_actor"] == "olga"


def test_missing_files_and_unknown_dataset(spe, engine, tmp_path):
    code, _, err = spe("dataset", "add", "x", "--omop-duckdb", str(tmp_path / "nope.duckdb"),
                       "--descriptor", str(tmp_path / "nope.yaml"))
    assert code == 2 and "not found" in err
    code, _, err = spe("permit", "apply", str(EXAMPLES / "demo-gibleed.yaml"))
    assert code == 2 and "no dataset named 'eunomia'" in err
    code, _, err = spe("optout", "import", str(tmp_path / "missing.txt"))
    assert code == 2 and "not found" in err
    assert snapshot(engine)["permits"] == []


def test_malformed_optout_file_stores_nothing(spe, engine, tmp_path):
    f = tmp_path / "o.txt"
    f.write_text("national_id\nABC-123\nbad id with spaces\n")
    code, _, err = spe("optout", "import", str(f))
    assert code == 2 and "line 3" in err
    from hub.registry_tables import optouts

    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(optouts)).scalar() == 0
