"""The egress detail pages (an output request, an import, the import form and queue) in French and
in English, rendered with the template loader and frame the service uses (hub.ui.frame.make_frame,
autoescape on): French text appears, the English phrases do not, the English page keeps its
wording, and text from the request stays escaped in both languages."""

from __future__ import annotations

import html
import re

import pytest
from tornado import template

from egress.web.pages import cell_marks
from egress.workflow import Actor
from hub.ui.frame import make_frame
from tests.unit.test_workflow_pages import EVIL, TEMPLATES, view

MODULES = type("Modules", (), {"xsrf_form_html": staticmethod(lambda: '<input type="hidden" name="_xsrf">')})


class _Handler:
    xsrf_token = "t"


def render(name: str, lang: str, **values) -> str:
    loader = template.Loader(str(TEMPLATES), autoescape="xhtml_escape")
    frame = make_frame("carol", {"custom:spe:review"}, lang, "/", "/services/egress/x")
    page = loader.load(name).generate(frame=frame, _=frame.t, frame_css="/hub/static/ui/spe.css",
                                      prefix="/services/egress/", message="", url_escape=lambda s, plus=False: s,
                                      handler=_Handler, _tt_modules=MODULES, **values).decode()
    return page


def text(page: str) -> str:
    """The page as read: no tags, entities decoded, one space between words."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def request_page() -> dict:
    req = view({"review": True, "approve": True, "release": True, "withdraw": True, "download": True})
    current = req["versions"][-1]
    current["files"][0]["check"]["suppression"] = {
        "loss_cells": 2, "verified": True,
        "cells": [{"reason": "primary", "row": 1, "column": "n"}, {"reason": "secondary", "row": 0, "column": "n"}]}
    return {"actor": Actor("carol"), "req": req, "current": current, "cell_marks": cell_marks,
            "earlier": [{"request_id": "r-1", "version": 1, "released_at": "2026-01-02", "released_by": "dora",
                         "files": ["a.csv"], "description": "counts"}]}


def import_page() -> dict:
    return {"item": {"id": "i-1", "permit_id": "P-1", "author": "alice", "state": "submitted", "owner": "checker",
                     "kind": "package", "project": "tqdm", "version": "4.66.1", "name": "tqdm-4.66.1-py3-none-any.whl",
                     "type": {"label": "Python wheel"}, "detected_type": "wheel", "size_bytes": 78000, "sha256": "b" * 64,
                     "source": "", "created_at": "2026-01-01", "decided_by": "", "decision_comment": "", "published": "",
                     "justification": EVIL, "wheel": {"summary": "progress bars", "license": "MIT",
                                                      "requires_python": ">=3.7", "requires_dist": [], "home_page": ""},
                     "preview": None, "can": {"approve": True, "reject": True, "revoke": False, "withdraw": False}}}


class _Permit:
    id, title = "P-1", "Bleeding after NSAIDs"


PAGES = {
    "request.html": (request_page, {
        "fr": ["Demande r-0123456789abcdef", "Contrôles automatiques", "Suppression suggérée", "Constats par cellule",
               "Votre avis", "Renvoyer à l'auteur·rice", "Remises antérieures de cette autorisation",
               "v1 remise le 2026-01-02 par dora : a.csv", "10 octets"],
        "en": ["Request r-0123456789abcdef", "Automated checks", "Suggested suppression", "Findings per cell",
               "Your review", "Return to author", "Earlier releases of this permit",
               "v1 released 2026-01-02 by dora: a.csv", "10 bytes",
               "Comment (required to return or reject)", "(next: checker)"]}),
    "import.html": (import_page, {
        "fr": ["Importation i-1", "Version publiée tqdm==4.66.1", "Métadonnées du paquet", "Dépend de rien",
               "Votre décision", "78000 octets"],
        "en": ["Import i-1", "Release tqdm==4.66.1", "Package metadata", "Depends on nothing", "Your decision",
               "78000 bytes", "Type, by its bytes"]}),
    "imports.html": (lambda: {"can_request": True, "permits": [_Permit], "max_bytes": 50 << 20, "own": []}, {
        "fr": ["Importer dans un espace de travail", "Fichier (au plus 50 Mio", "Demander un paquet Python",
               "Mes demandes d'importation", "Aucune pour l'instant."],
        "en": ["Import into a workspace", "File (at most 50 MiB; the name it will have under /imports)",
               "Request a Python package", "My import requests", "None yet.",
               "approved packages install with pip install NAME==VERSION there."]}),
    "import_queue.html": (lambda: {"queue": []}, {
        "fr": ["File des importations", "Rien ne vous attend."],
        "en": ["Import queue", "Nothing waiting for you."]}),
}


@pytest.mark.parametrize("name", sorted(PAGES))
def test_french_page(name):
    values, phrases = PAGES[name]
    raw = render(name, "fr", **values())
    assert '<html lang="fr">' in raw
    page = text(raw)
    assert [p for p in phrases["fr"] if p not in page] == []
    assert [p for p in phrases["en"] if p in page] == []


@pytest.mark.parametrize("name", sorted(PAGES))
def test_english_page_keeps_its_wording(name):
    values, phrases = PAGES[name]
    page = text(render(name, "en", **values()))
    assert [p for p in phrases["en"] if p not in page] == []
    assert [p for p in phrases["fr"] if p in page] == []


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_request_text_stays_escaped_in_every_language(lang):
    raw = render("import.html", lang, **import_page())
    assert EVIL not in raw and "&lt;script&gt;" in raw
