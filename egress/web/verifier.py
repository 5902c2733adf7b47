"""The auditor's browser verifier of evidence packs, served as static files (no login, no data).

`<prefix>/audit/verifier` is the page, `<prefix>/audit/verifier.js` and `verifier-page.js` its
scripts, all from `hub/audit` (docs/audit-format.md). The page only reads files the auditor
chooses, in the browser; it sends nothing back, and a saved copy works offline. The Content
Security Policy forbids every connection (`connect-src 'none'`), so even a changed script
could not upload a pack.
"""

from __future__ import annotations

from pathlib import Path

from tornado import web

import hub.audit

FILES = {
    "verifier": ("verifier.html", "text/html; charset=utf-8"),
    "verifier.js": ("verifier.js", "text/javascript; charset=utf-8"),
    "verifier-page.js": ("verifier-page.js", "text/javascript; charset=utf-8"),
}
HERE = Path(hub.audit.__file__).parent
CSP = ("default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'none'; "
       "form-action 'none'; base-uri 'none'; frame-ancestors 'none'")


class VerifierFileHandler(web.RequestHandler):
    def initialize(self, name: str):
        self.filename, self.content_type = FILES[name]

    def check_xsrf_cookie(self):  # GET only; nothing to protect
        return

    def get(self):
        self.set_header("Content-Type", self.content_type)
        self.set_header("Content-Security-Policy", CSP)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "public, max-age=300")
        self.finish((HERE / self.filename).read_bytes())


def verifier_handlers(prefix: str) -> list[tuple]:
    """Routes `<prefix>/audit/verifier` and its two scripts. No authentication."""
    base = prefix.rstrip("/") + "/audit/"
    return [(base + name.replace(".", r"\."), VerifierFileHandler, {"name": name}) for name in FILES]
