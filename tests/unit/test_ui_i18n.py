"""Language choice and the message catalogue (hub.ui.i18n, hub.ui.catalogues): every text the
frame and the pages show has a French msgstr in hub/ui/locale/fr/LC_MESSAGES/spe.po, none fuzzy
or empty."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from hub.ui import frame, roles
from hub.ui.catalogues import message_key, po_path
from hub.ui.i18n import DEFAULT_LANGUAGE, LANGUAGES, negotiate, translator

REPO = Path(__file__).resolve().parents[2]
TEMPLATE_DIRS = ["hub/hubapp/templates", "egress/web/templates", "hub/frontoffice/web/templates"]
_CALL = re.compile(r"""_\(\s*(["'])(.+?)\1(?:\s*,\s*_context=(["'])(.+?)\3)?""")
_FRAME_CALL = re.compile(r"""\bt\(\s*(["'])(.+?)\1""")


@pytest.mark.parametrize("accept, cookie, expected", [
    ("fr-FR,fr;q=0.9,en;q=0.8", None, "fr"),
    ("en-GB,en;q=0.9,fr;q=0.8", None, "en"),
    ("de-DE,fr;q=0.5", None, "fr"),  # the first language SPE speaks
    ("de-DE,nl", None, "en"),  # none: English
    ("en;q=0.2,fr;q=0.9", None, "fr"),  # q-values, not order
    ("fr;q=0,en", None, "en"),  # q=0 means "not this one"
    ("fr;q=abc", None, "en"),
    ("", None, "en"),
    (None, None, "en"),
    ("en", "fr", "fr"),  # the person's choice wins
    ("fr", "en", "en"),
    ("fr", "xx", "fr"),  # a cookie SPE does not speak is ignored
    ("," * 10_000 + "fr", None, "en"),  # bounded parsing
])
def test_negotiate(accept, cookie, expected):
    assert negotiate(accept, cookie) == expected


def _template_messages() -> set[str]:
    found = set()
    for d in TEMPLATE_DIRS:
        for path in (REPO / d).glob("*.html"):
            found |= {message_key(m.group(2), m.group(4)) for m in _CALL.finditer(path.read_text())}
    return found


def _frame_messages() -> set[str]:
    text = Path(frame.__file__).read_text()
    found = {m.group(2) for m in _FRAME_CALL.finditer(text)}
    found |= {label for _, label, _, _ in frame.NAV}
    found |= set(roles.ROLE_LABELS.values())
    return found


def test_the_scan_finds_the_texts():
    # guards the test below against a regex that silently finds nothing
    assert {"Your data permits", "Checker queue", "Front office", "Data permit register",
            "Release", "package\x04Release"} <= _template_messages()
    assert {"Skip to main content", "Sign out", "Public register", "output checker"} <= _frame_messages()


TRANSLATED = [lang for lang in LANGUAGES if lang != DEFAULT_LANGUAGE]  # English is the message id


def _po(lang: str):
    with po_path(lang).open("rb") as f:
        return read_po(f, domain="spe")  # the locale from the header


def test_french_is_translated():
    assert "fr" in TRANSLATED
    assert "Aller au contenu principal" in po_path("fr").read_text(encoding="utf-8")


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_text_has_a_msgstr(lang):
    translated = {message_key(m.id, m.context) for m in _po(lang) if m.id and m.string and not m.fuzzy}
    missing = sorted((_template_messages() | _frame_messages()) - translated)
    assert missing == []


@pytest.mark.parametrize("lang", TRANSLATED)
def test_no_fuzzy_or_empty_msgstr(lang):
    bad = sorted(m.id for m in _po(lang) if m.id and (m.fuzzy or not m.string))
    assert bad == []


@pytest.mark.parametrize("lang", TRANSLATED)
def test_the_po_is_utf8_and_names_its_language(lang):
    catalog = _po(lang)
    assert catalog.charset.lower() == "utf-8"
    assert str(catalog.locale) == lang


@pytest.mark.parametrize("lang", TRANSLATED)
def test_entries_keep_their_placeholders(lang):
    for m in _po(lang):
        if m.id:
            assert set(re.findall(r"{(\w+)}", m.id)) == set(re.findall(r"{(\w+)}", m.string)), m.id


def test_translator():
    assert translator("fr")("Welcome, {name}", name="Alice") == "Bienvenue, Alice"
    assert translator("en")("Welcome, {name}", name="Alice") == "Welcome, Alice"
    assert translator("fr")("a text nobody translated") == "a text nobody translated"


def test_a_message_context_picks_its_own_entry():
    fr = translator("fr")
    assert fr("Release") == "Remettre" and fr("Release", _context="package") == "Version publiée"
    assert translator("en")("Release", _context="package") == "Release"
