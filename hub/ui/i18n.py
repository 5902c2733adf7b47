"""The language of a page and its translator: English and French.

English text is the message id, as in gettext: a message missing from a catalogue shows in
English rather than not at all. The French messages are the gettext catalogue
`hub/ui/locale/fr/LC_MESSAGES/spe.po` (read by hub.ui.catalogues); tests/unit/test_ui_i18n.py
fails for any `_("…")` of a template or frame text that has no French msgstr. The language
comes from the person's choice (the `spe_lang` cookie, set by the switch in the header) or else
the browser's Accept-Language (pure logic, `negotiate`); English when neither names a language
SPE speaks. Must not import `egress`.
"""

from __future__ import annotations

from typing import Callable

from hub.ui.catalogues import message_key, messages

LANGUAGES = ("en", "fr")
DEFAULT_LANGUAGE = "en"
LANGUAGE_NAMES = {"en": "English", "fr": "Français"}
COOKIE = "spe_lang"
MAX_ACCEPT_LANGUAGE_CHARS = 500


def negotiate(accept_language: str | None, cookie: str | None) -> str:
    """The page language: the cookie's choice if SPE speaks it, else the browser's first
    language SPE speaks (by q-value, then order), else English."""
    if cookie in LANGUAGES:
        return cookie
    ranked = []
    for i, part in enumerate((accept_language or "")[:MAX_ACCEPT_LANGUAGE_CHARS].split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            name, _, value = p.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and q > 0:
            ranked.append((-q, i, primary))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE


def translator(lang: str) -> Callable[..., str]:
    """`t(message, **values)`: the message in `lang` (English when missing), `{name}` filled from
    values. `t(message, _context="package")` is the catalogue's entry with that `msgctxt`, for an
    English word with two meanings ("Release": the button, a package's release)."""
    catalogue = messages(lang) if lang in LANGUAGES else {}

    def t(message: str, _context: str | None = None, **values) -> str:
        text = catalogue.get(message_key(message, _context), message)
        return text.format(**values) if values else text

    return t
