"""The workspace client `spe.dp` against a real HTTP server that serves the DP gateway
(`run_query` / `budget`) over the documented endpoints. The server here is a minimal stand-in
for the egress service's web layer (the outer edge); everything behind it is real."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from egress.dp.service import budget, run_query
from hub.exceptions import Refused
from tests.conftest import REPO
from tests.integration.dp_fixtures import SCHEMA, make_extract, make_permit

sys.path.insert(0, str(REPO / "egress" / "client"))
from spe import dp as spe_dp  # noqa: E402

TOKEN = "workspace-token-123"


@pytest.fixture
def service(engine, tmp_path, monkeypatch):
    extract = make_extract(tmp_path / "extract")
    permit = make_permit(epsilon=1.0)
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def handle_api(self, call):
            if self.headers.get("Authorization") != f"token {TOKEN}":
                return self.reply(403, {"error": "invalid token"})
            try:
                self.reply(200, call())
            except Refused as err:
                self.reply(err.http_status, {"error": str(err), "field": getattr(err, "field", None)})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body))
            if self.path != "/api/dp/query":
                return self.reply(404, {"error": "no such endpoint"})
            self.handle_api(lambda: run_query(engine, extract, permit, "bob", body, schema=SCHEMA))

        def do_GET(self):
            if self.path != "/api/dp/budget":
                return self.reply(404, {"error": "no such endpoint"})
            self.handle_api(lambda: budget(engine, permit, "bob"))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("SPE_EGRESS_URL", f"http://127.0.0.1:{server.server_address[1]}/")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", TOKEN)
    yield seen
    server.shutdown()
    server.server_close()


def test_client_queries_and_budget(service):
    a = spe_dp.count("measurement", by=["unit"], where=[("measurement_date", ">=", "2020-02-01")], epsilon=0.25)
    assert [r["unit"] for r in a["rows"]] == ["mg", "g"]
    assert service[-1] == ("/api/dp/query", {"kind": "count", "table": "measurement", "epsilon": 0.25,
                                             "mechanism": "laplace", "by": ["unit"],
                                             "where": [{"column": "measurement_date", "op": ">=",
                                                        "value": "2020-02-01"}]})
    m = spe_dp.mean("measurement", "value_as_number", by="unit", epsilon=0.25)
    assert len(m["rows"]) == 2
    h = spe_dp.histogram("person", "race", epsilon=0.1)
    assert [r["race"] for r in h["rows"]] == ["white", "black", "asian"]
    median = spe_dp.quantile("person", "year_of_birth", 0.5, epsilon=0.1)
    assert 1900 <= median <= 2025
    s = spe_dp.sum("measurement", "value_as_number", where=[{"column": "unit", "op": "=", "value": "g"}],
                   epsilon=0.1, mechanism="gaussian", delta=1e-8)
    assert isinstance(s["value"], float)
    b = spe_dp.budget()
    assert b["epsilon_spent"] == pytest.approx(0.8) and b["epsilon_remaining"] == pytest.approx(0.2)


def test_refusals_raise_with_the_service_message(service):
    with pytest.raises(spe_dp.SpeRefused, match="no declared column 'shoe_size'") as err:
        spe_dp.count("person", by=["shoe_size"], epsilon=0.1)
    assert err.value.status == 400
    with pytest.raises(spe_dp.SpeRefused, match="budget exhausted") as err:
        spe_dp.count("person", epsilon=5)
    assert err.value.status == 409
    assert spe_dp.budget()["epsilon_spent"] == 0


def test_client_reads_its_configuration_at_call_time(service, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "wrong")
    with pytest.raises(spe_dp.SpeRefused, match="invalid token"):
        spe_dp.budget()
    monkeypatch.delenv("SPE_EGRESS_URL")
    with pytest.raises(spe_dp.SpeRefused, match="SPE_EGRESS_URL"):
        spe_dp.budget()
