"""The page frame (hub.ui): roles from scopes, the navigation each role sees, the language
switch's redirect, as tables."""

from __future__ import annotations

import pytest

from hub.hubapp.config import GROUP_SCOPES
from hub.ui import roles as r
from hub.ui.frame import NAV, base_url_of, make_frame
from hub.ui.web import check_next

# what each SPE group's scopes make of a person (the hub grants exactly these)
EXPECTED_ROLES = {
    "researchers": (r.RESEARCHER,),
    "output-checkers": (r.CHECKER,),
    "auditors": (r.AUDITOR,),
    "operators": (r.OPERATOR,),
    "applicants": (r.RESEARCHER, r.APPLICANT),  # a principal investigator works in the workspace too
    "hdab-assessors": (r.ASSESSOR,),
    "hdab-deciders": (r.DECIDER,),
    "data-holders": (r.DATA_HOLDER,),
    "citizens": (r.CITIZEN,),
}

# the navigation each group sees, by key
EXPECTED_NAV = {
    "researchers": {"home", "outputs", "imports", "catalogue", "register"},
    "output-checkers": {"home", "queue", "import_queue", "catalogue", "register"},
    "auditors": {"home", "audit", "catalogue", "register"},
    "operators": {"home", "applications", "admin", "catalogue", "register"},
    "applicants": {"home", "outputs", "imports", "applications", "catalogue", "register"},
    "hdab-assessors": {"home", "applications", "catalogue", "register"},
    "hdab-deciders": {"home", "applications", "catalogue", "register"},
    "data-holders": {"home", "applications", "catalogue", "register"},
    "citizens": {"home", "my_data", "catalogue", "register"},
}


def test_every_group_is_covered():
    assert set(EXPECTED_ROLES) == set(GROUP_SCOPES) == set(EXPECTED_NAV)


@pytest.mark.parametrize("group", sorted(GROUP_SCOPES))
def test_roles_and_navigation_per_group(group):
    frame = make_frame("someone", GROUP_SCOPES[group], "en", "/", "/hub/home")
    assert frame.roles == EXPECTED_ROLES[group]
    assert {i.key for i in frame.nav} == EXPECTED_NAV[group]
    html = frame.header_html()
    for key, _, path, _ in NAV:
        assert (f'data-nav="{key}"' in html) == (key in EXPECTED_NAV[group]), key


def test_scopes_filtered_to_the_user_count_and_others_do_not():
    assert r.roles_from_scopes("carla", {"custom:spe:review!user=carla"}) == (r.CHECKER,)
    assert r.roles_from_scopes("carla", {"custom:spe:review!user"}) == (r.CHECKER,)
    assert r.roles_from_scopes("carla", {"custom:spe:review!user=dan"}) == ()
    assert r.roles_from_scopes("carla", {"self", "access:services!service=egress"}) == ()


def test_anonymous_sees_only_public_pages_and_a_sign_in_link():
    frame = make_frame(None, {"custom:spe:audit"}, "en", "/", "/services/egress/register")
    assert [i.key for i in frame.nav] == ["catalogue", "register"]
    assert frame.roles == ()
    html = frame.header_html()
    assert 'id="spe-login"' in html and "spe-logout" not in html
    assert [i.key for i in frame.nav if i.current] == ["register"]


@pytest.mark.parametrize("path, current", [
    ("/services/egress/queue", "queue"),
    ("/services/egress/queue?show=review", "queue"),
    ("/services/egress/imports/queue", "import_queue"),
    ("/services/egress/requests/r-0123456789abcdef", None),  # no nav item of a checker owns it
    ("/hub/home", "home"),
])
def test_the_current_page_is_marked_once(path, current):
    frame = make_frame("carla", GROUP_SCOPES["output-checkers"], "en", "/", path)
    marked = [i.key for i in frame.nav if i.current]
    assert marked == ([current] if current else [])
    assert frame.header_html().count('aria-current="page"') == len(marked)


def test_base_url_is_honoured():
    frame = make_frame("alice", GROUP_SCOPES["researchers"], "en", base_url_of("/jh/services/egress/"),
                       "/jh/services/egress/")
    assert {i.href for i in frame.nav} >= {"/jh/hub/home", "/jh/services/egress/"}
    assert [i.key for i in frame.nav if i.current] == ["outputs"]
    assert 'href="/jh/hub/logout"' in frame.header_html()


def test_frame_texts_are_escaped():
    frame = make_frame("<b>x</b>", GROUP_SCOPES["researchers"], "en", "/", '/hub/home?"><script>')
    html = frame.header_html()
    assert "<b>x</b>" not in html and "<script>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html


def test_french_frame():
    frame = make_frame("alice", GROUP_SCOPES["researchers"], "fr", "/", "/hub/home")
    html = frame.header_html()
    assert "Aller au contenu principal" in html and "Mes sorties" in html and "chercheur·e" in html
    assert 'data-lang="fr" aria-current="true"' in html
    assert "Registre public" in frame.footer_html()


@pytest.mark.parametrize("raw, expected", [
    ("/hub/home", "/hub/home"),
    ("/services/egress/queue?show=review", "/services/egress/queue?show=review"),
    ("", "/d"),
    ("https://evil.example/", "/d"),
    ("//evil.example/", "/d"),
    ("/\\evil.example", "/d"),
    ("javascript:alert(1)", "/d"),
    ("/hub/home\r\nSet-Cookie: x=1", "/d"),
    ("/" + "a" * 3000, "/d"),
])
def test_language_switch_goes_back_only_within_the_site(raw, expected):
    assert check_next(raw, "/d") == expected
