"""The page frame every SPE page shares: skip link, header with the navigation a person's roles
allow, who is signed in and as what, the language switch, and the footer (pure).

Both template engines use it: the hub's Jinja pages (hub/hubapp/templates/page.html) and the
services' tornado pages include `frame.header_html()` / `frame.footer_html()` as they are, so
there is one frame, not three copies. The navigation is a table (`NAV`): an item appears only
for the roles that may use its page; the page itself still checks its own scope (a link hidden
is a courtesy, the guard is the protection). Must not import `egress`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Callable
from urllib.parse import urlencode

from hub.ui import roles as r
from hub.ui.i18n import LANGUAGE_NAMES, LANGUAGES, translator

EVERYONE = None  # shown to anonymous visitors too
SIGNED_IN = frozenset()  # any signed-in person
FRONT_OFFICE_ROLES = frozenset({r.APPLICANT, r.ASSESSOR, r.DECIDER, r.DATA_HOLDER, r.OPERATOR})

# key, label (message id), path below the hub's base URL, who sees it
NAV = (
    ("home", "Home", "hub/home", SIGNED_IN),
    ("outputs", "My outputs", "services/egress/", frozenset({r.RESEARCHER})),
    ("imports", "Imports", "services/egress/imports", frozenset({r.RESEARCHER})),
    ("queue", "Output checking", "services/egress/queue", frozenset({r.CHECKER})),
    ("import_queue", "Import checking", "services/egress/imports/queue", frozenset({r.CHECKER})),
    ("audit", "Audit trail", "services/egress/audit/events", frozenset({r.AUDITOR})),
    ("applications", "Applications", "services/frontoffice/", FRONT_OFFICE_ROLES),
    ("admin", "Hub administration", "hub/admin", frozenset({r.OPERATOR})),
    ("my_data", "My health data", "services/citizens/", frozenset({r.CITIZEN})),
    ("catalogue", "Catalogue", "services/frontoffice/catalogue", EVERYONE),
    ("register", "Public register", "services/egress/register", EVERYONE),
)

_CURRENT_PAGE, _CURRENT_LANG = ' aria-current="page"', ' aria-current="true"'
LANG_PATH = "services/egress/lang"  # the language switch (hub.ui.web.LanguageHandler in egress)


@dataclass(frozen=True)
class NavItem:
    key: str
    label: str
    href: str
    current: bool = False


def make_nav(roles: tuple[str, ...], signed_in: bool, base_url: str, current_path: str,
             t: Callable[[str], str]) -> list[NavItem]:
    """The navigation for these roles; the item whose page is the longest prefix of `current_path` is current."""
    items = []
    for key, label, path, who in NAV:
        if who is not EVERYONE and (not signed_in or (who and not who.intersection(roles))):
            continue
        items.append((key, t(label), base_url + path))
    here = current_path.split("?", 1)[0]
    best = max((href for _, _, href in items if here == href or here.startswith(href.rstrip("/") + "/")
                or here.rstrip("/") == href.rstrip("/")), key=len, default=None)
    return [NavItem(k, label, href, href == best) for k, label, href in items]


@dataclass(frozen=True)
class Frame:
    lang: str
    username: str | None
    roles: tuple[str, ...]
    base_url: str
    current_path: str
    nav: list[NavItem] = field(default_factory=list)

    @property
    def t(self) -> Callable[..., str]:
        return translator(self.lang)

    def has(self, role: str) -> bool:
        return role in self.roles

    def role_labels(self) -> list[str]:
        return [self.t(r.ROLE_LABELS[role]) for role in self.roles]

    def url(self, path: str) -> str:
        return self.base_url + path

    def lang_href(self, lang: str) -> str:
        return self.url(LANG_PATH) + "?" + urlencode({"lang": lang, "next": self.current_path})

    def header_html(self) -> str:
        t, e = self.t, escape
        links = "".join(
            f'<li><a href="{e(i.href)}" data-nav="{e(i.key)}"{_CURRENT_PAGE if i.current else ""}>'
            f"{e(i.label)}</a></li>" for i in self.nav)
        if self.username:
            roles = ", ".join(self.role_labels()) or t("no SPE role")
            who = (f'<span class="spe-user" id="spe-user">{e(self.username)}</span> '
                   f'<span class="spe-roles" id="spe-roles">{e(roles)}</span> '
                   f'<a href="{e(self.url("hub/logout"))}" id="spe-logout">{e(t("Sign out"))}</a>')
        else:
            who = f'<a href="{e(self.url("hub/login"))}" id="spe-login">{e(t("Sign in"))}</a>'
        langs = "".join(
            f'<li><a href="{e(self.lang_href(code))}" lang="{code}" hreflang="{code}" data-lang="{code}"'
            f'{_CURRENT_LANG if code == self.lang else ""}>{e(LANGUAGE_NAMES[code])}</a></li>'
            for code in LANGUAGES)
        return (f'<a class="spe-skip" href="#spe-main">{e(t("Skip to main content"))}</a>'
                f'<header class="spe-header" lang="{self.lang}">'
                f'<a class="spe-brand" href="{e(self.url("hub/home"))}">SPE</a>'
                f'<nav class="spe-nav" aria-label="{e(t("Main navigation"))}"><ul>{links}</ul></nav>'
                f'<div class="spe-who">{who}</div>'
                f'<nav class="spe-lang" aria-label="{e(t("Language"))}"><ul>{langs}</ul></nav>'
                f"</header>")

    def footer_html(self) -> str:
        t, e = self.t, escape
        return (f'<footer class="spe-footer" lang="{self.lang}"><p>'
                f'{e(t("SPE, a secure processing environment for health data (EHDS)."))} '
                f'<a href="{e(self.url("services/egress/register"))}">{e(t("Public register"))}</a> · '
                f'<a href="{e(self.url("services/egress/register.json"))}">{e(t("Register as JSON"))}</a>'
                f"</p></footer>")


def make_frame(username: str | None, scopes, lang: str, base_url: str, current_path: str) -> Frame:
    """The frame for one request: `username` None for an anonymous visitor."""
    base_url = base_url if base_url.endswith("/") else base_url + "/"
    roles = r.roles_from_scopes(username, scopes) if username else ()
    nav = make_nav(roles, bool(username), base_url, current_path, translator(lang))
    return Frame(lang=lang, username=username, roles=roles, base_url=base_url, current_path=current_path, nav=nav)


def base_url_of(service_prefix: str) -> str:
    """The hub's base URL from a service's prefix (`/x/services/egress/` -> `/x/`)."""
    head, sep, _ = service_prefix.rpartition("services/")
    return head if sep else "/"

