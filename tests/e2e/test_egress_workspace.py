"""Egress from a REAL workspace (Docker, PermitSpawner, the workspace image with the `spe`
client): a researcher submits from a notebook kernel with the server's own token, the check
flags a small cell, she resubmits a suppressed version, two output checkers approve and one
releases, and she downloads the file outside the workspace. Needs Docker (CI runs it)."""

from __future__ import annotations

import hashlib
import json

import pytest
import requests

from tests.hubfixture import spe_hub  # noqa: F401
from tests.integration.kernel import Kernel

pytestmark = pytest.mark.docker
SERVER = "demo-2026-001"  # JupyterHub server names are lower case; the permit is DEMO-2026-001
SQL = ("SELECT gender_concept_id, year_of_birth, count(*) AS n FROM person "
       "GROUP BY gender_concept_id, year_of_birth ORDER BY 1, 2")

SUBMIT = f'''
import json, duckdb, spe
sql = {SQL!r}
df = duckdb.sql(sql.replace("FROM person", "FROM '/data/person.parquet'")).df()
req = spe.submit(df, description="persons by sex and birth band", provenance_sql=sql, name="t1.parquet")
small = int((df["n"] < 10).sum())
flagged = sum(1 for c in req["versions"][-1]["files"][0]["check"]["cells"])
print(json.dumps({{"id": req["id"], "status": req["versions"][-1]["check_status"], "small": small,
                  "flagged": flagged}}))
'''

RESUBMIT = '''
df.loc[df["n"] < 10, "n"] = None
req = spe.resubmit(req["id"], df, description="cells under 10 suppressed", provenance_sql=sql, name="t1.parquet")
print(json.dumps({"state": req["state"], "version": req["version"], "status": req["versions"][-1]["check_status"]}))
'''


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_egress_from_a_real_workspace(spe_hub):
    alice = spe_hub.client("alice")
    alice.spawn("alice", SERVER)
    kernel = Kernel(alice.user_url("alice", SERVER), alice.token)
    try:
        first = _last_json(kernel.run(SUBMIT))
        assert first["status"] == "fail" and first["flagged"] == first["small"] > 0
        second = _last_json(kernel.run(RESUBMIT))
        assert second == {"state": "checked", "version": 2, "status": "pass"}
    finally:
        kernel.close()
    rid = first["id"]
    egress = f"{spe_hub.url}/services/egress/"
    for checker in ("carla", "dan"):
        token = spe_hub.client(checker).token
        r = requests.post(f"{egress}api/requests/{rid}/reviews", headers={"Authorization": f"token {token}"},
                          json={"version": 2, "decision": "approve", "comment": "ok"}, timeout=60)
        assert r.status_code == 200, r.text
    r = requests.post(f"{egress}api/requests/{rid}/release",
                      headers={"Authorization": f"token {spe_hub.client('carla').token}"}, timeout=60)
    assert r.json()["state"] == "released", r.text
    # outside the workspace, through the hub's public proxy, with alice's own token
    auth = {"Authorization": f"token {alice.token}"}
    listed = [f for f in requests.get(f"{egress}api/releases", headers=auth, timeout=60).json()["files"]
              if f["request_id"] == rid]
    r = requests.get(f"{egress}api/requests/{rid}/files/t1.parquet", headers=auth, timeout=60)
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == listed[0]["sha256"]
