"""A registry with Eunomia registered and catalogued, the demo users, and the front office built on
them (real SQLite, real DuckDB provisioning, the packaged HDAB config and fee schedule)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from hub.frontoffice.context import make_frontoffice
from hub.frontoffice.roles import APPLICANT, ASSESSOR, DATA_HOLDER, DECIDER, Actor, operator
from hub.frontoffice.users import DemoUsers
from hub.hubapp.auth import DEMO_USERS, demo_users_file, make_demo_users
from hub.yamlio import load_yaml_file

REPO = Path(__file__).resolve().parents[3]
ENTRY = REPO / "examples" / "catalogue" / "eunomia.yaml"
TODAY = date.today()

PAULA = Actor("paula", frozenset({APPLICANT}))
HUGO = Actor("hugo", frozenset({ASSESSOR}))
DIANE = Actor("diane", frozenset({DECIDER}))
HOLGER = Actor("holger", frozenset({DATA_HOLDER}))


def application(**change) -> dict:
    doc = {
        "kind": "permit", "title": "Bleeding after NSAIDs", "organisation": "Example University",
        "applicant_category": "public_research", "purpose": "scientific_research",
        "purpose_description": "Risk of gastrointestinal bleeding after NSAID exposure.",
        "team": [{"username": "bob", "role": "researcher"}],
        "datasets": [{"dataset": "eunomia", "tables": {"person": ["person_id", "gender_concept_id", "year_of_birth"],
                                                        "condition_occurrence": ["person_id", "condition_concept_id"]},
                      "cohort": {"age": {"min": 18, "at": "2019-01-01"}}}],
        "pseudonymised_justification": "Follow-up per person over time needs a stable pseudonym.",
        "start": TODAY.isoformat(), "months": 6,
    }
    doc.update(change)
    return doc


@pytest.fixture
def fo(settings, engine, eunomia):
    make_demo_users(demo_users_file(settings), DEMO_USERS)
    front = make_frontoffice(engine, settings, DemoUsers(demo_users_file(settings)))
    front.catalogue.put(load_yaml_file(ENTRY, "catalogue entry"), operator("olga"))
    return front
