"""The k-anonymity gate: a permit with `k_anonymity.min_k` whose extract would hold a smaller
class of quasi-identifiers stops before the switch, names the class sizes, records the refusal
and leaves the previous extract current and untouched (real DuckDB on Eunomia)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
import yaml

from hub.audit.tables import audit_events
from hub.exceptions import InvalidInput, Refused
from hub.permits.model import parse_permit
from hub.permits.store import PermitStore
from hub.provision.extracts import current_extract
from hub.provision.run import provision
from tests.conftest import EXAMPLES

P1 = "DEMO-2026-001"


def _permit_file(tmp_path, **changes):
    doc = yaml.safe_load((EXAMPLES / "demo-gibleed.yaml").read_text())
    doc.update(changes)
    path = tmp_path / "permit.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_small_class_stops_provisioning_and_keeps_the_previous_extract(engine, settings, eunomia, tmp_path):
    store = PermitStore(engine)
    store.apply_file(EXAMPLES / "demo-gibleed.yaml", "op")
    good = provision(engine, settings, P1, "op")
    kanon = good.manifest["k_anonymity"]
    assert kanon["smallest_class"] < 1000  # the demo extract has small classes (it only reports them)
    before = {p.name: p.read_bytes() for p in good.path.iterdir()}

    store.apply_file(_permit_file(tmp_path, k_anonymity={"min_k": 1000}), "op")
    with pytest.raises(Refused) as err:
        provision(engine, settings, P1, "op")
    message = str(err.value)
    assert "k-anonymity below the permit's minimum k=1000" in message
    assert f"class(es) of {kanon['smallest_class']}" in message and "gender_concept_id" in message
    assert current_extract(engine, P1)["extract_version"] == good.extract_version
    assert sorted(p.name for p in good.path.parent.iterdir()) == [str(good.extract_version)]  # no v2, no .tmp
    assert {p.name: p.read_bytes() for p in good.path.iterdir()} == before
    with engine.connect() as conn:
        last = conn.execute(sa.select(audit_events).where(audit_events.c.action == "extract.provision")
                            .order_by(audit_events.c.seq.desc())).mappings().first()
    detail = json.loads(last["detail"])
    assert (last["outcome"], detail["reason"], detail["min_k"]) == ("refused", "k_anonymity", 1000)
    assert sum(n * int(k) for k, n in detail["small_classes"].items()) == kanon["records"]  # all below 1000


def test_min_k_met_provisions(engine, settings, eunomia, tmp_path):
    store = PermitStore(engine)
    # person table reduced to one coarse quasi-identifier: every class is large
    store.apply_file(_permit_file(tmp_path, tables={"person": ["person_id", "gender_concept_id"]},
                                  generalise={}, k_anonymity={"min_k": 5}), "op")
    r = provision(engine, settings, P1, "op")
    assert r.manifest["k_anonymity"]["smallest_class"] >= 5


@pytest.mark.parametrize("section", [{"min_k": 1}, {"min_k": "5"}, {"min_k": 1001}, {}, {"min_k": 5, "qi": ["x"]}])
def test_min_k_must_be_an_integer_of_at_least_two(section):
    doc = yaml.safe_load((EXAMPLES / "demo-gibleed.yaml").read_text())
    doc["k_anonymity"] = section
    with pytest.raises(InvalidInput, match="k_anonymity"):
        parse_permit(doc)
