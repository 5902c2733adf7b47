"""The public transparency register: permits and released outputs, no login, no personal data."""

from __future__ import annotations

import json
from datetime import date

import requests
import sqlalchemy as sa

from egress.web.register import register_handlers
from hub.permits.store import PermitStore
from hub.register import register_document
from tests.conftest import copy_example
from tests.integration.egress_rows import released_output
from tests.integration.tornado_thread import TornadoThread

PEOPLE = ("alice", "bob", "carol", "dave")  # members, PI, author and reviewer names used below


def _permits(engine, tmp_path):
    store = PermitStore(engine)
    first, _ = store.apply_file(copy_example("demo-gibleed.yaml", tmp_path), actor="op")
    # Applied before its validity starts, the second permit stays a draft (not yet granted).
    second, _ = store.apply_file(copy_example("demo-second.yaml", tmp_path), actor="op", today=date(2025, 1, 1))
    assert (first.status, second.status) == ("active", "draft")
    return first, second


def _egress_release(engine, permit_id):
    released_output(engine, request_id="r-1", permit_id=permit_id, version=2, kind="table",
                    description="GI bleeding incidence by sex\nprepared by alice, reviewed by carol",
                    released_at="2026-03-04T09:00:00Z", author="alice", releaser="dave")


def test_register_lists_granted_permits_and_releases_without_names(engine, eunomia, tmp_path):
    first, second = _permits(engine, tmp_path)
    assert register_document(engine)["released_outputs"] == []  # before anything is released
    _egress_release(engine, first.id)
    with TornadoThread(register_handlers("/services/egress", engine)) as srv:
        doc = requests.get(srv.url + "/services/egress/register.json", timeout=10).json()
        page = requests.get(srv.url + "/services/egress/register", timeout=10)
    assert [p["id"] for p in doc["permits"]] == [first.id]  # the draft is not listed
    p = doc["permits"][0]
    assert p == {"id": first.id, "title": first.title, "purpose_category": "scientific_research",
                 "purpose_legal_basis": p["purpose_legal_basis"], "organisation": first.organisation,
                 "datasets": ["eunomia"], "valid_from": "2026-01-01", "valid_until": "2030-12-31",
                 "status": "active"}
    assert doc["released_outputs"] == [{"permit_id": first.id, "output_id": "r-1",
                                        "title": "GI bleeding incidence by sex", "date": "2026-03-04",
                                        "kind": "table"}]
    assert page.status_code == 200 and first.id in page.text and second.id not in page.text
    everything = (json.dumps(doc) + page.text).lower()
    for person in PEOPLE + tuple(m.username for m in first.members) + (first.principal_investigator,):
        assert person.lower() not in everything, person


def test_register_needs_no_login_and_escapes_html(engine, eunomia, tmp_path):
    first, _ = _permits(engine, tmp_path)
    _egress_release(engine, first.id)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE egress_request_versions SET description = '<script>x</script>'"))
    with TornadoThread(register_handlers("/p", engine)) as srv:
        page = requests.get(srv.url + "/p/register", timeout=10, allow_redirects=False)
        post = requests.post(srv.url + "/p/register.json", timeout=10, data="{}")
    assert page.status_code == 200
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text
    assert post.status_code == 405  # read-only
