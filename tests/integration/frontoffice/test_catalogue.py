"""The catalogue on a real registry: entries validated against the vendored HealthDCAT-AP shapes
(a broken entry is refused naming the failing shape, nothing stored), maintainers' rights, the
harvest export in Turtle and JSON-LD (parsed back and validated, paged), and the CLI."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from rdflib import Graph
from rdflib.namespace import DCAT, RDF

from hub.audit.tables import audit_events
from hub.cli import main as spe
from hub.exceptions import Forbidden, InvalidInput
from hub.frontoffice.catalogue.shacl import validate
from hub.frontoffice.roles import operator
from hub.yamlio import load_yaml_file
from tests.integration.frontoffice.conftest import ENTRY, HOLGER, PAULA


def _entry(**change):
    doc = load_yaml_file(ENTRY, "entry")
    doc.update(change)
    return {k: v for k, v in doc.items() if v is not None}


def _events(engine, action):
    with engine.connect() as conn:
        return conn.execute(sa.select(audit_events.c.object_id, audit_events.c.detail)
                            .where(audit_events.c.action == action)).all()


@pytest.mark.parametrize("fmt, rdf_format", [("ttl", "turtle"), ("jsonld", "json-ld")])
def test_the_export_is_valid_healthdcat_ap(fo, fmt, rdf_format):
    body = fo.catalogue.export(fmt)
    g = Graph().parse(data=body, format=rdf_format)
    datasets = list(g.subjects(RDF.type, DCAT.Dataset))
    assert len(datasets) == 1 and str(datasets[0]).endswith("catalogue/datasets/eunomia")
    assert validate(g) == []
    # the variables carry their disclosure class
    classes = {str(o) for s, p, o in g if str(p).endswith("ns#disclosureClass")}
    assert classes == {"direct_identifier", "person_key", "quasi_identifier", "sensitive", "other"}


def test_a_broken_entry_is_refused_with_the_failing_shape_and_nothing_stored(fo, engine):
    before = fo.catalogue.get("eunomia")
    with pytest.raises(InvalidInput) as err:
        fo.catalogue.put(_entry(keywords=None, title={"en": "Changed title"}), operator("olga"))
    assert "Dataset_Shape dcat:keyword" in str(err.value) and err.value.field == "dcat:keyword"
    assert fo.catalogue.get("eunomia") == before
    assert len(_events(engine, "catalogue.update")) == 0
    # the same entry without keywords is valid HealthDCAT-AP at the PUBLIC level
    entry, outcome = fo.catalogue.put(_entry(keywords=None, access_rights="PUBLIC"), operator("olga"))
    assert outcome == "updated" and entry["access_rights"] == "PUBLIC"


def test_cli_validate_reports_an_entry_broken_after_it_was_stored(fo, settings, engine, capsys):
    from hub.frontoffice.tables import catalogue_entries

    doc = json.loads(json.dumps(fo.catalogue.get("eunomia")))
    doc = {k: v for k, v in doc.items() if not k.startswith("_")}
    doc["keywords"] = {"en": []}
    with engine.begin() as conn:  # as an older release could have stored it
        conn.execute(catalogue_entries.update().values(document_json=json.dumps(doc)))
    assert spe(["--home", str(settings.home), "catalogue", "validate"]) == 2
    out = capsys.readouterr().out
    assert "eunomia: Dataset_Shape dcat:keyword" in out


def test_maintainers_edit_their_entry_and_nobody_else_does(fo, engine):
    entry, outcome = fo.catalogue.put(_entry(description={"en": "New text", "fr": "Nouveau texte"}), HOLGER)
    assert outcome == "updated" and entry["description"]["en"] == "New text"
    assert [r.object_id for r in _events(engine, "catalogue.update")] == ["eunomia"]
    with pytest.raises(Forbidden, match="only an operator changes who maintains"):
        fo.catalogue.put(_entry(maintainers=["holger", "paula"]), HOLGER)
    with pytest.raises(Forbidden):
        fo.catalogue.put(_entry(), PAULA)


def test_an_entry_must_name_a_registered_dataset_and_real_variables(fo):
    with pytest.raises(InvalidInput, match="no variable 'person.shoe_size'"):
        fo.catalogue.put(_entry(variables={"person.shoe_size": {"en": "x"}}), operator("olga"))
    from hub.exceptions import NotFound

    with pytest.raises(NotFound):
        fo.catalogue.put(_entry(dataset="nosuch"), operator("olga"))


def test_cli_export_pages(fo, settings, tmp_path, capsys):
    out = tmp_path / "cat.ttl"
    assert spe(["--home", str(settings.home), "catalogue", "export", "--page", "1", "-o", str(out)]) == 0
    g = Graph().parse(out, format="turtle")
    assert any(str(p).endswith("hydra/core#totalItems") for _, p, _ in g)
    assert spe(["--home", str(settings.home), "catalogue", "export", "--page", "2"]) == 2
    assert "page 2 does not exist" in capsys.readouterr().err
