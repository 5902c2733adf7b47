"""The browser as an egress channel, attacked from inside a real permit workspace through the real hub
(JupyterHub, configurable-http-proxy, the session recorder, DockerSpawner):

* the extract copied into the work folder, as `x.parquet` and renamed `x.csv`, cannot be read
  back through the contents API (base64, text, or the server's choice): refused by its bytes,
  with a message that points to egress review; the notebook, text files and the listing work;
* a cell printing or displaying 20 MB reaches the client cut (the server's IOPub rate limit
  for stream output, the recorder's per-message limit for the rest, with a notice), and the
  audit trail has the truncation with its size and SHA-256;
* the workspace image carries no setuid/setgid file (`find / -perm /6000`).
"""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa

from hub.audit.tables import audit_events
from hub.db import make_engine
from hub.sessionlog.meterdb import meter_rows
from tests.hubfixture import open_workspace

pytestmark = pytest.mark.docker

PERMIT, SERVER = "DEMO-2026-001", "demo-2026-001"


@pytest.fixture(scope="module")
def workspace(spe_hub):
    with open_workspace(spe_hub, "alice", SERVER) as (alice, kernel):
        yield alice, kernel


def _events(spe_hub, action: str) -> list[dict]:
    with make_engine(spe_hub.settings.db_url).connect() as conn:
        rows = conn.execute(sa.select(audit_events).where(audit_events.c.action == action)
                            .order_by(audit_events.c.seq)).mappings().all()
    return [{**r, "detail": json.loads(r["detail"])} for r in rows]


def test_the_extract_copied_into_work_cannot_be_read_through_the_contents_api(spe_hub, workspace):
    alice, kernel = workspace
    copied = json.loads(kernel.run("""
import glob, json, shutil
src = sorted(glob.glob('/data/*.parquet'))[0]
shutil.copy(src, 'x.parquet'); shutil.copy(src, 'x.csv')
open('notes.md', 'w').write('# notes\\n')
print(json.dumps({"src": src, "size": __import__('os').path.getsize('x.csv')}))
""").strip().splitlines()[-1])
    assert copied["size"] > 0
    auth = {"Authorization": f"token {alice.token}"}
    base = alice.user_url("alice", SERVER)
    for path in ("x.parquet", "x.csv"):
        for query in ("content=1&format=base64", "content=1&format=text", "content=1", ""):
            resp = alice.session.get(f"{base}api/contents/{path}?{query}", headers=auth, allow_redirects=False)
            assert resp.status_code in (400, 403), (path, query, resp.status_code)
            body = resp.json()
            assert "content" not in body and "PAR1" not in resp.text, (path, query)
            if resp.status_code == 403:
                assert "egress review" in body["message"], body
    refused = {(e["detail"]["path"], e["detail"]["kind"]) for e in _events(spe_hub, "session.contents_refused")
               if e["actor"] == "alice" and e["permit_id"] == PERMIT}
    assert {("x.parquet", "parquet"), ("x.csv", "parquet")} <= refused
    # what a researcher needs keeps working: text files, the listing, metadata
    resp = alice.session.get(f"{base}api/contents/notes.md?content=1&format=text", headers=auth)
    assert resp.status_code == 200 and resp.json()["content"] == "# notes\n"
    listing = alice.session.get(f"{base}api/contents", headers=auth).json()
    assert {"x.parquet", "x.csv", "notes.md"} <= {m["name"] for m in listing["content"]}
    meta = alice.session.get(f"{base}api/contents/x.csv?content=0", headers=auth).json()
    assert meta["size"] == copied["size"] and meta["content"] is None


def test_a_cell_printing_20_mb_reaches_the_browser_cut_and_recorded(spe_hub, workspace):
    _, kernel = workspace
    # printed: the Jupyter server's own IOPub rate limit (1 MB/s of stream output) drops it already
    out = kernel.run("print('x' * 20_000_000)")
    assert len(out) < 2 * 1024 * 1024
    # displayed (not rate-limited by the server): the recorder cuts it to 1 MiB with a notice
    out = kernel.run("from IPython.display import display; display({'text/plain': 'x' * 20_000_000}, raw=True)")
    assert "[SPE] Output truncated" in out and len(out) < 2 * 1024 * 1024
    deadline = time.monotonic() + 60  # the recorder writes the event after passing the message on
    while not (truncated := [e for e in _events(spe_hub, "session.output_truncated") if e["actor"] == "alice"]):
        assert time.monotonic() < deadline, "no session.output_truncated event"
        time.sleep(0.2)
    assert truncated[-1]["detail"]["size_bytes"] > 20_000_000
    assert len(truncated[-1]["detail"]["sha256"]) == 64 and truncated[-1]["permit_id"] == PERMIT
    rows = meter_rows(make_engine(spe_hub.settings.db_url), permit_id=PERMIT, user="alice")
    assert rows and rows[0]["budget_bytes"] == 25 * 1024 * 1024
    # the researcher's own meter page, served by the recorder for whoever the workspace lets in
    alice = spe_hub.client("alice")
    mine = alice.session.get(alice.user_url("alice", SERVER, "spe/meter?format=json"),
                             headers={"Authorization": f"token {alice.token}"})
    assert mine.status_code == 200 and mine.json()["used_bytes"] >= 1024 * 1024, mine.text
    bob = spe_hub.client("bob")
    other = bob.session.get(alice.user_url("alice", SERVER, "spe/meter?format=json"),
                            headers={"Authorization": f"token {bob.token}"}, allow_redirects=False)
    assert other.status_code in (302, 403) and "used_bytes" not in other.text


def test_no_setuid_or_setgid_files_in_the_workspace(workspace):
    _, kernel = workspace
    found = kernel.run("""
import subprocess
r = subprocess.run(['find', '/', '-xdev', '-perm', '/6000', '-type', 'f'], capture_output=True, text=True)
print(repr(r.stdout))
""").strip().splitlines()[-1]
    assert found == "''", found
