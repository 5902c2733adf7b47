"""The pages' gettext catalogues: `hub/ui/locale/<lang>/LC_MESSAGES/spe.po`, read once per process.

English text is the message id, so English has no catalogue; an
entry with a `msgctxt` is keyed `context EOT message`, as gettext does. A fuzzy or empty `msgstr` is not
used (the page shows the English text, as gettext does); tests/unit/test_ui_i18n.py fails for
either. The files are package data (pyproject's `[tool.setuptools.package-data]`). Must not
import `egress`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "spe"


def po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def message_key(message: str, context: str | None = None) -> str:
    """The lookup key of a message: gettext's `context EOT message` when it has a `msgctxt`."""
    return f"{context}\x04{message}" if context else message


@cache
def messages(lang: str) -> dict[str, str]:
    """`{English message: translation}` of `lang`; `{}` for a language without a catalogue."""
    path = po_path(lang)
    if not path.is_file():
        return {}
    with path.open("rb") as f:
        catalog = read_po(f, locale=lang, domain=DOMAIN)
    return {message_key(m.id, m.context): m.string for m in catalog
            if m.id and isinstance(m.id, str) and m.string and not m.fuzzy}
