"""Import requests through the egress service behind a real JupyterHub (token introspection,
groups, custom scopes) over a real registry: a checker's approval publishes a file read-only
under the permit's imports directory or a wheel into the permit's index of the package mirror,
a rejection publishes nothing, every step is audited, and hostile input is refused with a clear
4xx while nothing is stored. Package requests are fetched on the operator side from an upstream
index (a mirror process over wheels made here: no internet)."""

from __future__ import annotations

import hashlib
import io
import json
import stat

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from hub.audit import verify
from hub.audit.tables import audit_events
from hub.db import make_engine
from tests.integration.egress_hub import (CHECKER_SCOPES, PERMIT, RESEARCHER_SCOPES, Client, start_hub,
                                          stop_hub)
from tests.mirror_support import MirrorProcess
from tests.wheels import make_wheel

MAX_IMPORT_BYTES = 64 * 1024
CSV = b"code,label\nE11,type 2 diabetes\nI10,hypertension\n"


@pytest.fixture(scope="module")
def inflow(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inflow-hub")
    upstream_dir = tmp / "upstream"
    (upstream_dir / "shared").mkdir(parents=True)
    make_wheel(upstream_dir / "shared", "tiny-tool", "1.0", requires=("numpy>=1",))
    upstream = MirrorProcess(upstream_dir, tmp / "upstream.log")
    hub = start_hub(tmp, egress_args=(f"--EgressApp.mirror_index_url={upstream.index('0' * 32)}",
                                      f"--EgressApp.import_max_bytes={MAX_IMPORT_BYTES}"))
    try:
        yield hub
    finally:
        stop_hub(hub)
        upstream.stop()
        from hub.db import dispose_engines

        dispose_engines()


@pytest.fixture(scope="module")
def people(inflow):
    hub = inflow
    return {
        "alice": Client(hub, hub.user_token("alice", RESEARCHER_SCOPES)),
        "bob": Client(hub, hub.user_token("bob", RESEARCHER_SCOPES)),
        "alice_ws": Client(hub, hub.workspace_token("alice")),
        "mallory": Client(hub, hub.user_token("mallory", RESEARCHER_SCOPES)),
        "erin": Client(hub, hub.user_token("erin", CHECKER_SCOPES)),
        "carol": Client(hub, hub.user_token("carol", CHECKER_SCOPES)),
        "olga": Client(hub, hub.user_token("olga", ["custom:spe:operate"])),
    }


def ask_file(client: Client, name: str, data: bytes, permit: str = PERMIT, justification: str = "ICD-10 code list"):
    return client.post("api/imports", data={"permit": permit, "justification": justification},
                       files=[("file", (name, data, "application/octet-stream"))])


def ask_package(client: Client, name: str, version: str, permit: str = PERMIT):
    return client.post("api/imports", json={"permit": permit, "justification": "needed for the tables",
                                            "package": {"name": name, "version": version}})


def audit_of(hub, object_id: str) -> list[tuple[str, str]]:
    with make_engine(hub.db_url).connect() as conn:
        return [(r.action, r.outcome) for r in conn.execute(
            sa.select(audit_events.c.action, audit_events.c.outcome).where(audit_events.c.object_id == object_id)
            .order_by(audit_events.c.seq))]


def detail_of(hub, object_id: str, action: str) -> dict:
    with make_engine(hub.db_url).connect() as conn:
        return json.loads(conn.execute(sa.select(audit_events.c.detail).where(
            audit_events.c.object_id == object_id, audit_events.c.action == action)).scalar_one())


def stored(hub) -> dict:
    """Everything an import could leave behind: rows, blobs, published files."""
    from egress.imports.tables import import_requests

    with make_engine(hub.db_url).connect() as conn:
        rows = conn.execute(sa.select(import_requests.c.id)).all()
    home = hub.home
    return {"rows": sorted(r.id for r in rows),
            "blobs": sorted(p.name for p in (home / "egress-store").rglob("*") if p.is_file()),
            "published": sorted(str(p.relative_to(home)) for d in ("imports", "mirror")
                                for p in (home / d).rglob("*") if p.is_file())}


def test_an_approved_file_is_published_read_only_and_can_be_revoked(inflow, people):
    r = ask_file(people["alice"], "codes.csv", CSV)
    assert r.status_code == 201, r.text
    item = r.json()
    assert (item["state"], item["kind"], item["detected_type"], item["size_bytes"]) == (
        "submitted", "file", "csv", len(CSV))
    assert item["sha256"] == hashlib.sha256(CSV).hexdigest() and item["published"] is None
    # the checker sees the type by its bytes, the size, the hash and the first lines before deciding
    seen = people["carol"].get(f"api/imports/{item['id']}").json()
    assert seen["type"]["label"].startswith("comma-separated") and "E11,type 2 diabetes" in seen["preview"]["text"]
    assert seen["can"] == {"approve": True, "reject": True, "withdraw": False, "revoke": False}
    queue = people["carol"].get("api/imports", params={"queue": "1"}).json()["imports"]
    assert item["id"] in [q["id"] for q in queue]
    target = inflow.home / "imports" / PERMIT / "codes.csv"
    assert not target.exists()
    r = people["carol"].post(f"api/imports/{item['id']}/decision", json={"decision": "approve", "comment": "a code list"})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "approved" and r.json()["published"] == "/imports/codes.csv"
    assert target.read_bytes() == CSV and stat.S_IMODE(target.stat().st_mode) == 0o444
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o755  # uid 1000 in the workspace reads it
    assert audit_of(inflow, item["id"]) == [("import.create", "ok"), ("import.approve", "ok")]
    assert detail_of(inflow, item["id"], "import.create")["sha256"] == item["sha256"]
    assert detail_of(inflow, item["id"], "import.approve")["published"] == "/imports/codes.csv"
    # the same name cannot be asked for again while it is published
    assert ask_file(people["bob"], "codes.csv", b"other,content\n1,2\n").status_code == 409
    # revoked: gone from the workspaces, on the record
    r = people["olga"].post(f"api/imports/{item['id']}/revoke", json={"comment": "sent in error"})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "revoked" and not target.exists()
    assert audit_of(inflow, item["id"])[-1] == ("import.revoke", "ok")
    assert verify(make_engine(inflow.db_url)).ok


def test_a_rejected_file_is_never_published(inflow, people):
    item = ask_file(people["alice"], "names.txt", b"Jane Doe, 1970-01-01\n").json()
    r = people["carol"].post(f"api/imports/{item['id']}/decision", json={"decision": "reject", "comment": ""})
    assert r.status_code == 400 and r.json()["field"] == "comment"  # a rejection gives the author a reason
    r = people["carol"].post(f"api/imports/{item['id']}/decision",
                             json={"decision": "reject", "comment": "personal data: not allowed in"})
    assert r.status_code == 200 and r.json()["state"] == "rejected"
    assert not (inflow.home / "imports" / PERMIT / "names.txt").exists()
    r = people["carol"].post(f"api/imports/{item['id']}/decision", json={"decision": "approve"})
    assert r.status_code == 409  # final


def test_only_independent_checkers_decide_and_only_the_author_withdraws(inflow, people):
    item = ask_file(people["alice"], "lookup.json", b'{"E11": "diabetes"}').json()
    url = f"api/imports/{item['id']}"
    for who, status in (("erin", 403), ("alice", 403), ("bob", 403), ("olga", 403)):
        r = people[who].post(url + "/decision", json={"decision": "approve"})
        assert r.status_code == status, (who, r.text)
    assert "member of this permit" in people["erin"].post(url + "/decision", json={"decision": "approve"}).json()["error"]
    assert people["mallory"].get(url).status_code == 403  # not a member, not a checker
    assert people["bob"].post(url + "/withdraw").status_code == 403
    r = people["alice"].post(url + "/withdraw")
    assert r.status_code == 200 and r.json()["state"] == "withdrawn"
    assert people["carol"].post(url + "/decision", json={"decision": "approve"}).status_code == 409
    refused = [a for a in audit_of(inflow, item["id"]) if a[1] == "refused"]
    assert ("import.approve", "refused") in refused and ("import.withdraw", "refused") in refused


def _parquet() -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"person_id": [1, 2]}), buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("who, name, data, permit, status, message", [
    ("alice", "../../etc/cron.d/evil", CSV, PERMIT, 400, "no directory part"),
    ("alice", "..csv", CSV, PERMIT, 400, ".."),
    ("alice", ".bashrc", b"echo hi\n", PERMIT, 400, "hidden"),
    ("alice", "empty.csv", b"", PERMIT, 400, "empty"),
    ("alice", "big.txt", b"x" * (MAX_IMPORT_BYTES + 1), PERMIT, 400, f"at most {MAX_IMPORT_BYTES} bytes"),
    ("alice", "huge.txt", b"x" * (MAX_IMPORT_BYTES * 8), PERMIT, 413, "larger than the limit"),
    ("alice", "person.csv", _parquet(), PERMIT, 400, "Parquet"),
    ("alice", "codes2.csv", CSV, "NO-SUCH-PERMIT", 404, "no permit"),
    ("mallory", "codes2.csv", CSV, PERMIT, 403, "not a member"),
    ("alice_ws", "codes2.csv", CSV, PERMIT, 403, "custom:spe:import"),  # a workspace imports nothing
])
def test_hostile_uploads_are_refused_and_nothing_is_stored(inflow, people, who, name, data, permit, status, message):
    before = stored(inflow)
    r = ask_file(people[who], name, data, permit=permit)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]
    assert stored(inflow) == before


def test_a_package_is_fetched_operator_side_and_approval_adds_it_to_the_permits_index(inflow, people):
    from hub.mirror.store import PackageMirror

    r = ask_package(people["alice"], "Tiny_Tool", "1.0")
    assert r.status_code == 201, r.text
    item = r.json()
    assert (item["kind"], item["project"], item["version"], item["name"]) == (
        "package", "tiny-tool", "1.0", "tiny_tool-1.0-py3-none-any.whl")
    seen = people["carol"].get(f"api/imports/{item['id']}").json()
    assert seen["wheel"]["requires_dist"] == ["numpy>=1"] and seen["wheel"]["summary"] == "test package tiny-tool"
    assert seen["source"].endswith("/simple/")
    mirror = PackageMirror(make_engine(inflow.db_url), inflow.home / "mirror")
    assert mirror.list(PERMIT) == []
    assert ask_package(people["bob"], "tiny-tool", "1.0").status_code == 409  # asked already
    r = people["carol"].post(f"api/imports/{item['id']}/decision", json={"decision": "approve"})
    assert r.status_code == 200, r.text
    assert r.json()["published"] == "pip install tiny-tool==1.0"
    (row,) = mirror.list(PERMIT)
    assert row["present"] and row["sha256"] == item["sha256"] and row["origin"] == f"import {item['id']}"
    assert audit_of(inflow, item["id"]) == [("import.create", "ok"), ("import.approve", "ok")]
    assert audit_of(inflow, row["filename"]) == [("mirror.add", "ok")]
    r = people["carol"].post(f"api/imports/{item['id']}/revoke", json={"comment": "licence not compatible"})
    assert r.status_code == 200 and mirror.list(PERMIT) == []


@pytest.mark.parametrize("name, version, status, message", [
    ("no-such-tool", "1.0", 400, "cannot be fetched"),
    ("tiny-tool", "1.0; rm -rf /", 400, "not a version"),
    ("../tiny", "1.0", 400, "not a package name"),
    ("", "1.0", 400, "package name is required"),
])
def test_bad_package_requests_are_refused_and_nothing_is_stored(inflow, people, name, version, status, message):
    before = stored(inflow)
    r = ask_package(people["alice"], name, version)
    assert r.status_code == status and message in r.json()["error"], r.text
    assert stored(inflow) == before


def test_the_pages_show_the_form_the_queue_and_the_decision(inflow, people):
    page = people["alice"].get("imports")
    assert page.status_code == 200 and 'id="file-form"' in page.text and PERMIT in page.text
    r = people["alice"].post("imports/new", data={"permit": PERMIT, "kind": "file", "justification": "a list"},
                             files=[("file", ("regions.csv", b"code,region\n1,north\n", "text/csv"))],
                             allow_redirects=False)
    assert r.status_code == 302, r.text
    import_id = r.headers["Location"].split("/imports/")[1].split("?")[0]
    assert import_id in people["carol"].get("imports/queue").text
    page = people["carol"].get(f"imports/{import_id}")
    assert "comma-separated values" in page.text and 'id="approve"' in page.text and "code,region" in page.text
    assert 'id="approve"' not in people["erin"].get(f"imports/{import_id}").text  # a member checker: no button
    r = people["alice"].post("imports/new", data={"permit": PERMIT, "kind": "file", "justification": "x"},
                             files=[("file", ("../x.csv", b"a,b\n1,2\n", "text/csv"))], allow_redirects=False)
    assert r.status_code == 400 and "no directory part" in r.text and "<html" in r.text  # a page, not JSON
