"""The front office's pages in French and English. The public pages (the catalogue, a dataset)
through the real handlers over HTTP, in the browser's language and in the one the `spe_lang`
cookie chose; the signed-in application pages (which need a hub login) with the values their
handlers give, rendered by the service's template loader and frame. French text, none of the
English phrases; the English pages keep their wording."""

from __future__ import annotations

import pytest
import requests
from tornado import template

from hub.frontoffice.catalogue.model import variables
from hub.frontoffice.config import text as text_of
from hub.frontoffice.users import DemoUsers
from hub.frontoffice.web.app import make_app
from hub.frontoffice.web.base import TEMPLATES
from hub.frontoffice.web.handlers import app_json, history
from hub.hubapp.auth import demo_users_file
from hub.permits.purposes import ALLOWED
from hub.ui.frame import make_frame
from tests.integration.frontoffice.conftest import PAULA, application
from tests.integration.tornado_thread import TornadoThread
from tests.unit.test_detail_pages_french import MODULES, text

PREFIX = "/services/frontoffice/"
PAGES = {
    "catalogue": {
        "fr": ["Catalogue des jeux de données", "Rechercher", "Couvre l'année", "thème", "1 jeu(x) de données",
               "Moissonnez-le en"],
        "en": ["Dataset catalogue", "Covers year", "1 dataset(s)", "Harvest it as"]},
    "catalogue/eunomia": {
        "fr": ["Détenteur·rice de données", "Base juridique", "Classe de divulgation",
               "Demander l'accès à ce jeu de données", "les identifiants directs ne sont jamais fournis"],
        "en": ["Data holder", "Legal basis", "Disclosure class", "Apply for this dataset",
               "direct identifiers are never made available"]},
}


@pytest.fixture
def server(fo, settings):
    with TornadoThread(app_factory=lambda: make_app(settings, DemoUsers(demo_users_file(settings)),
                                                    prefix=PREFIX, worker_threads=1)) as srv:
        yield srv.url + PREFIX


@pytest.mark.parametrize("path", sorted(PAGES))
def test_public_pages_in_french_and_english(server, path):
    fr = requests.get(server + path, headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"}, timeout=60)
    assert fr.status_code == 200 and '<html lang="fr">' in fr.text
    page = text(fr.text)
    assert [p for p in PAGES[path]["fr"] if p not in page] == []
    assert [p for p in PAGES[path]["en"] if p in page] == []

    en = requests.get(server + path, headers={"Accept-Language": "en-GB"}, timeout=60)
    page = text(en.text)
    assert en.status_code == 200 and [p for p in PAGES[path]["en"] if p not in page] == []
    assert [p for p in PAGES[path]["fr"] if p in page] == []


def test_the_cookie_beats_the_browser_language(server):
    r = requests.get(server + "catalogue", headers={"Accept-Language": "en"}, cookies={"spe_lang": "fr"}, timeout=60)
    assert r.status_code == 200 and "Catalogue des jeux de données" in r.text


def render(name: str, lang: str, actor, **values) -> str:
    """A signed-in page with the values its handler gives (hub.frontoffice.web.handlers), in the
    template loader and frame the service uses."""
    loader = template.Loader(str(TEMPLATES), autoescape="xhtml_escape")
    scopes = {"access:services!service=frontoffice", "custom:spe:apply"}
    frame = make_frame(actor.username, scopes, lang, "/", PREFIX + "applications")
    return loader.load(name).generate(frame=frame, _=frame.t, frame_css="/hub/static/ui/spe.css", prefix=PREFIX,
                                      actor=actor, message="", _tt_modules=MODULES, **values).decode()


def application_values(fo):
    app = fo.applications.create(PAULA, application())
    estimate = fo.applications.estimate(app.document, app.applicant)
    return {"app": app, "view": app_json(fo, app, PAULA), "estimate": estimate.as_dict(),
            "history": history(fo.engine, app.id), "purposes": ALLOWED}


def new_application_values(fo):
    return {"items": [(e, variables(e, s)) for e, s in fo.catalogue.items()], "chosen": {"eunomia"},
            "purposes": ALLOWED, "text": text_of, "today": "2026-01-01"}


SIGNED_IN = {
    "application.html": (application_values, {
        "fr": ["Demandeur·e", "Estimation de la redevance", "Historique", "J'accepte l'estimation de la redevance de",
               "Soumettre à l'organisme d'accès (HDAB)", "Jeu de données eunomia", "6 mois à partir du"],
        "en": ["Applicant", "Fee estimate", "History", "I accept the fee estimate of", "Submit to the HDAB",
               "Dataset eunomia", "6 months from"]}),
    "application_new.html": (new_application_values, {
        "fr": ["Demander l'accès à l'organisme d'accès aux données de santé", "autorisation de traitement (espace de travail)",
               "Catégorie de demandeur·e", "Durée et ressources", "Enregistrer comme brouillon"],
        "en": ["Apply to the health data access body", "data permit (workspace)", "Applicant category",
               "Duration and resources", "Save as draft and see the fee estimate"]}),
}


@pytest.mark.parametrize("name", sorted(SIGNED_IN))
def test_application_pages_in_french_and_english(fo, name):
    make_values, phrases = SIGNED_IN[name]
    values = make_values(fo)
    raw = render(name, "fr", PAULA, **values)
    assert '<html lang="fr">' in raw
    page = text(raw)
    assert [p for p in phrases["fr"] if p not in page] == []
    assert [p for p in phrases["en"] if p in page] == []
    page = text(render(name, "en", PAULA, **values))
    assert [p for p in phrases["en"] if p not in page] == []
    assert [p for p in phrases["fr"] if p in page] == []
