"""Applications on a real registry, driven through the business layer as the pages and API do:
the whole path to a provisioned permit holding only the granted variables, partial grants, data
requests, refusals that create nothing, bad input refused with nothing stored, the four-eyes rule,
legal deadlines with reminders, the register, and the invoice of the permit (HTML and PDF)."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from hub.audit.tables import audit_events
from hub.cli import main as spe
from hub.exceptions import Conflict, Forbidden, InvalidInput, Refused
from hub.frontoffice.applications import workflow as wf
from hub.frontoffice.roles import ASSESSOR, DECIDER, Actor
from hub.frontoffice.tables import applications
from hub.permits import access
from hub.permits.store import PermitStore
from hub.provision.extracts import current_extract
from hub.register import register_document
from hub.registry_tables import permits
from tests.integration.frontoffice.conftest import DIANE, HOLGER, HUGO, PAULA, TODAY, application


def actions(engine, app_id):
    with engine.connect() as conn:
        return [r.action for r in conn.execute(sa.select(audit_events.c.action).where(
            audit_events.c.object_id == app_id).order_by(audit_events.c.seq))]


def to_decision(fo, doc=None):
    """Drive an application from a new draft to the decider's desk."""
    apps = fo.applications
    app = apps.create(PAULA, doc or application())
    fee = apps.estimate(app.document, app.applicant)
    apps.act(PAULA, app.id, wf.SUBMIT, accept_fee_estimate=True, accepted_total_cents=fee.total_cents)
    apps.act(HUGO, app.id, wf.TAKE)
    apps.act(HUGO, app.id, wf.MARK_COMPLETE)
    return apps.act(HUGO, app.id, wf.RECOMMEND, decision="grant", reasons="proportionate and lawful")


def test_the_whole_path_ends_in_a_provisioned_permit_with_only_the_granted_variables(fo, engine, settings):
    apps = fo.applications
    app = apps.create(PAULA, application())
    assert app.state == wf.DRAFT
    with pytest.raises(Refused, match="accept the fee estimate"):
        apps.act(PAULA, app.id, wf.SUBMIT)
    fee = apps.estimate(app.document, app.applicant)
    assert fee.shares()["ohdsi-example"] > 0  # the data holder's preparation
    apps.act(PAULA, app.id, wf.SUBMIT, accept_fee_estimate=True, accepted_total_cents=fee.total_cents)
    apps.act(HUGO, app.id, wf.TAKE)
    apps.act(HUGO, app.id, wf.REQUEST_INFO, text="Which NSAIDs?")
    apps.act(PAULA, app.id, wf.PROVIDE_INFO, text="Ibuprofen and naproxen.")
    app = apps.act(HUGO, app.id, wf.MARK_COMPLETE)
    assert apps.clock(app).due is not None
    apps.act(HUGO, app.id, wf.CONSULT)
    with pytest.raises(Forbidden):
        apps.respond(PAULA, app.id, "eunomia", "no_objection")
    apps.respond(HOLGER, app.id, "eunomia", "no_objection")
    apps.act(HUGO, app.id, wf.END_CONSULTATION)
    apps.act(HUGO, app.id, wf.RECOMMEND, decision="grant", reasons="necessary and proportionate")
    with pytest.raises(Forbidden, match="a different decider"):
        apps.act(Actor("hugo", frozenset({ASSESSOR, DECIDER})), app.id, wf.GRANT, reasons="mine")
    app = apps.act(DIANE, app.id, wf.GRANT, reasons="necessary and proportionate")

    assert app.state == wf.GRANTED and app.facts["permits"] == [f"{app.id}-1"]
    permit = PermitStore(engine).get(f"{app.id}-1")
    assert permit.status == "active" and permit.principal_investigator == "paula"
    assert {m.username for m in permit.members} == {"paula", "bob"}
    assert permit.tables == {"condition_occurrence": ("condition_concept_id", "person_id"),
                             "person": ("gender_concept_id", "person_id", "year_of_birth")}
    extract = current_extract(engine, permit.id)
    assert extract is not None  # provisioning followed the grant
    columns = set(pq.read_schema(f"{extract['path']}/person.parquet").names)
    assert columns == {"person_id", "gender_concept_id", "year_of_birth"}
    assert actions(engine, app.id) == [
        "application.create", "application.submit", "application.take", "application.request_information",
        "application.provide_information", "application.mark_complete", "application.consult",
        "application.consultation_response", "application.end_consultation", "application.recommend",
        "application.grant"]
    with engine.connect() as conn:
        grant = conn.execute(sa.select(audit_events).where(audit_events.c.action == "permit.create",
                                                           audit_events.c.permit_id == permit.id)).one()
    assert grant.actor == "diane" and grant.role == "decider"
    decisions = register_document(engine)["decisions"]
    assert decisions[0]["application_id"] == app.id and decisions[0]["reasons"] == "necessary and proportionate"
    assert "paula" not in json.dumps(decisions) and "bob" not in json.dumps(decisions)


def test_a_refusal_creates_nothing(fo, engine, settings):
    app = to_decision(fo)
    app = fo.applications.act(DIANE, app.id, wf.REFUSE, reasons="the purpose does not need these data")
    assert app.state == wf.REFUSED and app.facts["permits"] == []
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(permits)).scalar() == 0
    assert not any(settings.extracts_dir.iterdir())
    assert register_document(engine)["decisions"][0]["decision"] == "refused"


def test_a_partial_grant_narrows_the_permit(fo, engine):
    app = to_decision(fo)
    granted = {"eunomia": {"person": ["person_id", "year_of_birth"]}}
    with pytest.raises(InvalidInput, match="was not requested"):
        fo.applications.act(DIANE, app.id, wf.GRANT_PARTIALLY, reasons="r",
                            granted={"eunomia": {"person": ["person_id", "race_concept_id"]}})
    app = fo.applications.act(DIANE, app.id, wf.GRANT_PARTIALLY, reasons="sex is not needed", granted=granted, months=3)
    permit = PermitStore(engine).get(app.facts["permits"][0])
    assert permit.tables == {"person": ("person_id", "year_of_birth")}
    assert permit.valid_until < permit.valid_from + timedelta(days=93)


def test_a_data_request_gives_the_applicant_the_results_not_a_workspace(fo, engine):
    doc = application(kind="data_request", statistics="Counts of GI bleeding by sex and 10-year age band.", team=[])
    doc.pop("pseudonymised_justification")
    app = to_decision(fo, doc)
    app = fo.applications.act(DIANE, app.id, wf.GRANT, reasons="aggregate statistics only")
    permit = PermitStore(engine).get(app.facts["permits"][0])
    assert permit.principal_investigator == "olga"  # the HDAB's analyst answers it in a workspace
    assert permit.member_role("paula") == "recipient"
    assert not access.can_open(permit, "paula") and access.can_open(permit, "olga")


STORED_NOTHING = "nothing stored"


@pytest.mark.parametrize("change, message", [
    ({"purpose": "advertising"}, "prohibited by EHDS Art. 54"),
    ({"purpose": "insurance_or_credit_exclusion"}, "prohibited by EHDS Art. 54"),
    ({"datasets": [{"dataset": "eunomia", "tables": {"person": ["person_id", "shoe_size"]}}]}, "no variable person.shoe_size"),
    ({"datasets": [{"dataset": "eunomia", "tables": {"person": ["person_source_value"]}}]}, "direct identifier"),
    ({"datasets": [{"dataset": "nosuch", "tables": {"person": ["person_id"]}}]}, "not in the catalogue"),
    ({"team": [{"username": "mallory", "role": "researcher"}]}, "'mallory' has no account"),
    ({"start": (TODAY - timedelta(days=1)).isoformat()}, "in the past"),
    ({"months": 999}, "120"),
    ({"months": 61}, "longer than this HDAB grants"),
    ({"pseudonymised_justification": None}, "why pseudonymised"),
    ({"resources": {"cpu_limit": 32}}, "at most 4.0 CPUs"),
    ({"datasets": [{"dataset": "eunomia", "tables": {"person": ["person_id"]},
                    "cohort": {"age": {"min": 90, "max": 20, "at": "2019-01-01"}}}]}, "age min is greater than max"),
])
def test_bad_input_is_refused_and_nothing_is_stored(fo, engine, change, message):
    doc = {k: v for k, v in application(**change).items() if v is not None}
    with pytest.raises(InvalidInput, match=message):
        fo.applications.create(PAULA, doc)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(applications)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_events).where(
            audit_events.c.action.like("application.%"))).scalar() == 0


def test_only_applicants_apply_and_only_drafts_change(fo):
    with pytest.raises(Forbidden, match="not an applicant"):
        fo.applications.create(HUGO, application())
    app = fo.applications.create(PAULA, application())
    fo.applications.update(PAULA, app.id, application(title="A better title"))
    fee = fo.applications.estimate(app.document, "paula")
    fo.applications.act(PAULA, app.id, wf.SUBMIT, accept_fee_estimate=True, accepted_total_cents=fee.total_cents)
    with pytest.raises(Conflict, match="only a draft"):
        fo.applications.update(PAULA, app.id, application())


def test_deadlines_reminders_and_the_overdue_list(fo, engine, settings, capsys):
    app = to_decision(fo)
    fo.applications.today = lambda: TODAY + timedelta(days=85)
    sent = fo.applications.send_reminders()
    assert [(r.application_id, r.action) for r in sent] == [(app.id, "application.reminder")]
    assert fo.applications.send_reminders() == []  # once
    fo.applications.today = lambda: TODAY + timedelta(days=100)
    assert [a.id for a, _ in fo.applications.overdue()] == [app.id]
    assert [r.action for r in fo.applications.send_reminders()] == ["application.overdue"]
    fo.applications.act(DIANE, app.id, wf.EXTEND, reasons="complex linkage")
    assert fo.applications.overdue() == []
    with pytest.raises(Refused, match="already extended once"):
        fo.applications.act(DIANE, app.id, wf.EXTEND, reasons="again")


# docker-py's unix-socket adapter drops (does not close) its pooled sockets on client.close();
# `spe fees meter` runs in this process, so the socket may be collected during this test.
@pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_the_permit_is_invoiced_with_the_data_holders_share(fo, engine, settings, tmp_path, capsys):
    app = fo.applications.act(DIANE, to_decision(fo).id, wf.GRANT, reasons="ok")
    pid = app.facts["permits"][0]
    assert spe(["--home", str(settings.home), "fees", "meter"]) == 0
    html, pdf = tmp_path / "inv.html", tmp_path / "inv.pdf"
    month = date.today().strftime("%Y-%m")
    assert spe(["--home", str(settings.home), "fees", "invoice", pid, "--month", month,
                "--html", str(html), "--pdf", str(pdf)]) == 0
    out = capsys.readouterr().out
    assert f"invoice INV-{pid}-{month} issued" in out and "ohdsi-example" in out
    assert pdf.read_bytes().startswith(b"%PDF-")
    text = html.read_text()
    assert "application fee (permit)" in text and "preparation of eunomia" in text and "ohdsi-example" in text
    assert spe(["--home", str(settings.home), "fees", "invoice", pid, "--month", month]) == 0
    assert f"INV-{pid}-{month} existing" in capsys.readouterr().out
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_events).where(
            audit_events.c.action == "fees.invoice")).scalar() == 1
    assert spe(["--home", str(settings.home), "fees", "invoice", pid, "--month", "2026-13"]) == 2
