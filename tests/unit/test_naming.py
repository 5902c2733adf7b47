"""`hub.naming`: container/volume/label slugs and permit <-> JupyterHub server names, with awkward ids."""

from __future__ import annotations

import re

import pytest
from jupyterhub.slugs import is_valid_safe_slug

from hub.exceptions import Conflict, NotFound
from hub.naming import permit_id_for_server, safe_slug, server_name_for

AWKWARD_PERMIT_IDS = ["DEMO-2026-001", "ABC_12.x", "a--b", "2026-001", "A-", "X" * 40, "x" * 40,
                      "Awk.Case_2026.1", "HDAB.Long_Permit-2026." + "Xy_z." * 8 + "X", "a.b", "a_b", "A_B"]


@pytest.mark.parametrize("permit_id, name", [
    ("DEMO-2026-001", "demo-2026-001"),
    ("ABC_12.x", "abc-12-x"),
    ("a--b", "a-b"),
    ("Awk.Case_2026.1", "awk-case-2026-1"),
])
def test_server_names_are_the_readable_id_when_that_is_a_jupyterhub_slug(permit_id, name):
    assert server_name_for(permit_id) == name


@pytest.mark.parametrize("permit_id", ["2026-001", "X" * 40, "A-", "HDAB.Long_Permit-2026." + "Xy_z." * 8 + "X"])
def test_server_names_fall_back_to_hashed_slug(permit_id):
    name = server_name_for(permit_id)
    assert is_valid_safe_slug(name) and len(name) <= 30
    assert name != permit_id.lower()


@pytest.mark.parametrize("permit_id", AWKWARD_PERMIT_IDS)
def test_every_permit_id_has_a_valid_server_name_that_leads_back_to_it(permit_id):
    name = server_name_for(permit_id)
    assert is_valid_safe_slug(name)
    others = [p for p in AWKWARD_PERMIT_IDS if server_name_for(p) != name]
    assert permit_id_for_server([*others, permit_id], name) == permit_id


def test_server_name_to_permit_is_exact_or_refused():
    assert permit_id_for_server(["DEMO-2026-001", "DEMO-2026-002"], "demo-2026-002") == "DEMO-2026-002"
    with pytest.raises(NotFound):
        permit_id_for_server(["DEMO-2026-001"], "demo-2026-009")
    with pytest.raises(NotFound):
        permit_id_for_server(["DEMO-2026-001"], "DEMO-2026-001")  # the id is not its server name
    with pytest.raises(Conflict):
        permit_id_for_server(["DEMO-1", "demo.1"], "demo-1")


@pytest.mark.parametrize("parts, kw, expected", [
    (("alice", "demo-2026-001"), {}, "spe-alice-demo-2026-001"),  # already safe: unchanged, no hash
    (("u", "p"), {"prefix": "p"}, "p-u-p"),
])
def test_safe_parts_are_kept_readable(parts, kw, expected):
    assert safe_slug(*parts, **kw) == expected


@pytest.mark.parametrize("parts", [
    ("Alice", "DEMO-2026-001"), ("alice", "Awk.Case_2026.1"), ("a@b.org", "p"), ("../../etc", "x"),
    ("", "p"), ("-", "-"), ("ünïcödé", "p"), ("a" * 100, "b" * 100), ("x;rm -rf /", "$(id)"),
])
def test_awkward_parts_become_dns_labels_with_a_hash(parts):
    slug = safe_slug(*parts)
    assert re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", slug) and len(slug) <= 63
    assert re.search(r"-[0-9a-f]{8}$", slug)


def test_distinct_inputs_stay_distinct():
    slugs = {safe_slug("alice", p) for p in ("A.B", "a.b", "a_b", "a-b", "A-B")}
    assert len(slugs) == 5
    assert safe_slug("ab", "c") != safe_slug("a", "bc")  # the join is not ambiguous
