"""Public transparency register pages (EHDS Art. 58): an HTML page and a JSON endpoint.

No login (these handlers deliberately do not authenticate) and no personal data (the content
comes only from `hub.register`). Mount with `register_handlers(prefix, engine)`; read-only.
"""

from __future__ import annotations

import asyncio
import html
import json

import sqlalchemy as sa
from tornado import web

from hub.register import register_document


class _RegisterBase(web.RequestHandler):
    def initialize(self, engine: sa.Engine):
        self.engine = engine

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
        e = html.escape
        permits = "".join(
            f"<tr><td>{e(p['id'])}</td><td>{e(p['title'])}</td><td>{e(p['purpose_category'])}</td>"
            f"<td>{e(p['organisation'])}</td><td>{e(', '.join(p['datasets']))}</td>"
            f"<td>{e(p['valid_from'])} – {e(p['valid_until'])}</td><td>{e(p['status'])}</td></tr>"
            for p in doc["permits"]) or '<tr><td colspan="7">No permits yet.</td></tr>'
        outputs = "".join(
            f"<tr><td>{e(o['date'])}</td><td>{e(o['permit_id'])}</td><td>{e(o['title'])}</td><td>{e(o['kind'])}</td></tr>"
            for o in doc["released_outputs"]) or '<tr><td colspan="4">No released outputs yet.</td></tr>'
        decisions = "".join(
            f"<tr><td>{e(d['decided_on'])}</td><td>{e(d['application_id'])}</td><td>{e(d['decision'].replace('_', ' '))}</td>"
            f"<td>{e(d['title'])}</td><td>{e(d['purpose_category'])}</td><td>{e(d['organisation'])}</td>"
            f"<td>{e(', '.join(d['datasets']))}</td><td>{e(d['reasons'])}</td><td>{e(', '.join(d['permits']))}</td></tr>"
            for d in doc["decisions"]) or '<tr><td colspan="9">No decisions yet.</td></tr>'
        anchors = "".join(
            f'<tr data-anchor-seq="{int(a["seq"])}" data-anchor-hash="{e(a["hash"])}"><td>{e(str(a["ts"]))}</td>'
            f'<td>{int(a["seq"])}</td><td><code>{e(a["hash"])}</code></td><td>{e(a["kind"])}</td>'
            f'<td>{e(a["key_id"])}</td></tr>'
            for a in doc.get("audit_anchors", [])) or '<tr><td colspan="5">No checkpoints yet.</td></tr>'
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
        self.finish(f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Data permit register</title></head><body>
<h1>Data permit register</h1>
<p>Permits granted for the secondary use of health data and the outputs released under them
(EHDS Art. 58). Generated {e(doc['generated_at'])}. <a href="register.json">JSON</a></p>
<h2>Permits</h2>
<table><thead><tr><th>Permit</th><th>Title</th><th>Purpose</th><th>Organisation</th><th>Datasets</th>
<th>Valid</th><th>Status</th></tr></thead><tbody>{permits}</tbody></table>
<h2>Decisions on applications</h2>
<table><thead><tr><th>Decided</th><th>Application</th><th>Decision</th><th>Title</th><th>Purpose</th>
<th>Organisation</th><th>Datasets</th><th>Reasons</th><th>Permits</th></tr></thead><tbody>{decisions}</tbody></table>
<h2>Released outputs</h2>
<table><thead><tr><th>Date</th><th>Permit</th><th>Title</th><th>Kind</th></tr></thead><tbody>{outputs}</tbody></table>
<h2 id="audit-anchors">Audit trail checkpoints</h2>
<p>The hash of the operator's audit trail at each signed checkpoint. Save this page or its JSON:
if the trail is ever rewritten, these hashes no longer match it (<code>spe audit verify
--against-register</code>, or the <a href="audit/verifier">browser verifier</a>).</p>
<table><thead><tr><th>Signed</th><th>Event</th><th>Hash</th><th>Kind</th><th>Key</th></tr></thead><tbody>{anchors}</tbody></table>
</body></html>""")


def register_handlers(prefix: str, engine: sa.Engine) -> list[tuple]:
    """Routes: `<prefix>/register` (HTML) and `<prefix>/register.json`. No authentication."""
    base = prefix.rstrip("/")
    return [
        (base + "/register", RegisterPageHandler, {"engine": engine}),
        (base + "/register.json", RegisterJsonHandler, {"engine": engine}),
    ]
