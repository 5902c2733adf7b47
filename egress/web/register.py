"""Public transparency register pages (EHDS Art. 58): an HTML page and a JSON endpoint.

No login (these handlers deliberately do not authenticate) and no personal data (the content
comes only from `hub.register`); the page sits in SPE's frame like every other. Mount with `register_handlers(prefix, engine)`; read-only.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import sqlalchemy as sa
from tornado import web

from hub.register import register_document
from hub.ui.web import FrameMixin

TEMPLATES = Path(__file__).parent / "templates"
PAGE_CSP = "default-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"


class _RegisterBase(FrameMixin, web.RequestHandler):
    def initialize(self, engine: sa.Engine, frame_prefix: str = "/"):
        self.engine = engine
        self._frame_prefix = frame_prefix

    def frame_prefix(self) -> str:
        return self._frame_prefix

    def get_template_path(self):
        return str(TEMPLATES)

    async def document(self) -> dict:
        return await asyncio.get_running_loop().run_in_executor(None, register_document, self.engine)

    def set_default_headers(self):
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "public, max-age=60")

    def check_xsrf_cookie(self):  # GET only; nothing to protect
        return


class RegisterJsonHandler(_RegisterBase):
    async def get(self):
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(await self.document(), indent=2, sort_keys=True))


class RegisterPageHandler(_RegisterBase):
    async def get(self):
        doc = await self.document()
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", PAGE_CSP)
        self.render("register.html", doc=doc, prefix=self.frame_prefix())


def register_handlers(prefix: str, engine: sa.Engine) -> list[tuple]:
    """Routes: `<prefix>/register` (HTML) and `<prefix>/register.json`. No authentication."""
    base = prefix.rstrip("/")
    kw = {"engine": engine, "frame_prefix": base + "/"}
    return [
        (base + "/register", RegisterPageHandler, kw),
        (base + "/register.json", RegisterJsonHandler, kw),
    ]
