"""The egress service through its HTTP API, behind a real JupyterHub (token introspection,
groups, custom scopes), over a real registry and the Eunomia extract: the review workflow,
two-person rule, blinding, optimistic locking, downloads, and bad input refused with a clear
4xx while nothing stored changes."""

from __future__ import annotations

import hashlib
import io
import json
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from hub.audit import verify
from hub.db import make_engine
from tests.integration.egress_hub import (COUNT_SQL, MAX_REQUEST_BYTES, PERMIT, CHECKER_SCOPES, RESEARCHER_SCOPES,
                                          Client, count_table, hub, parquet_bytes, suppressed)  # noqa: F401

TABLE = "by_sex_year.parquet"


def upload(client: Client, files: list[tuple[str, bytes]], *, sql: str | None = COUNT_SQL,
           description: str = "persons by sex and year of birth", kind: str = "frequency", path="api/requests"):
    data = {"description": description, "kind": kind}
    if sql:
        data["provenance_sql"] = sql
    return client.post(path, data=data, files=[("file", (n, b, "application/octet-stream")) for n, b in files])


@pytest.fixture(scope="module")
def people(hub):
    return {
        "alice_ws": Client(hub, hub.workspace_token("alice")),
        "alice": Client(hub, hub.user_token("alice", RESEARCHER_SCOPES)),
        "bob": Client(hub, hub.user_token("bob", RESEARCHER_SCOPES)),
        "mallory_ws": Client(hub, hub.workspace_token("mallory")),
        "mallory": Client(hub, hub.user_token("mallory", RESEARCHER_SCOPES)),
        "erin_ws": Client(hub, hub.workspace_token("erin")),
        "erin": Client(hub, hub.user_token("erin", CHECKER_SCOPES)),
        "carol": Client(hub, hub.user_token("carol", CHECKER_SCOPES)),
        "dave": Client(hub, hub.user_token("dave", CHECKER_SCOPES)),
    }


def audit_actions(hub, request_id: str) -> list[tuple[str, str]]:
    from hub.audit.tables import audit_events

    with make_engine(hub.db_url).connect() as conn:
        rows = conn.execute(sa.select(audit_events.c.action, audit_events.c.outcome)
                            .where(sa.or_(audit_events.c.object_id == request_id,
                                              audit_events.c.object_id.like(request_id + "/%"))).order_by(audit_events.c.seq)).all()
    return [(r.action, r.outcome) for r in rows]


def stored_state(hub) -> dict:
    from egress.tables import egress_files, egress_requests, egress_reviews

    with make_engine(hub.db_url).connect() as conn:
        return {
            "requests": sorted(tuple(r) for r in conn.execute(sa.select(
                egress_requests.c.id, egress_requests.c.state, egress_requests.c.version,
                egress_requests.c.row_version))),
            "files": conn.execute(sa.select(sa.func.count()).select_from(egress_files)).scalar(),
            "reviews": conn.execute(sa.select(sa.func.count()).select_from(egress_reviews)).scalar(),
        }


def test_flagged_then_suppressed_then_two_approvals_then_member_download(hub, people):
    table = count_table(hub.extract_dir)
    small = {i for i, n in enumerate(table.column("n").to_pylist()) if n < 10}
    assert small, "the Eunomia extract has small cells by sex and year of birth"

    r = upload(people["alice_ws"], [(TABLE, parquet_bytes(table))])
    assert r.status_code == 201, r.text
    req = r.json()
    rid = req["id"]
    v1 = req["versions"][-1]
    assert req["state"] == "checked" and v1["check_status"] == "fail" and v1["verified"] is True
    check = v1["files"][0]["check"]
    flagged = {c["row"] for c in check["cells"] if any(f["rule"] == "threshold" for f in c["findings"])}
    assert flagged == small

    # a checker may not approve a failing version (fail closed); the author sees it is flagged
    r = people["carol"].post(f"api/requests/{rid}/reviews", json={"version": 1, "decision": "approve"})
    assert r.status_code == 400 and "automated checks fail" in r.json()["error"]
    mine = people["alice"].get("api/requests").json()["requests"]
    assert [(m["id"], m["check_status"]) for m in mine if m["id"] == rid] == [(rid, "fail")]
    # outside the workspace (a session token) the author sees the state, never the unreleased
    # content: the request page must not be a way out that skips the review
    outside = people["alice"].get(f"api/requests/{rid}?previews=1").json()
    assert outside["content_visible"] is False
    f_out = outside["versions"][-1]["files"][0]
    assert f_out["check"]["cells"] == [] and f_out["check"]["cells_flagged"] == len(small)
    assert "preview" not in f_out and f_out["provenance_sql"] is None
    assert "persons by sex" not in outside["versions"][-1]["description"]
    assert all("persons by sex" not in m["description"] for m in mine)
    inside = people["alice_ws"].get(f"api/requests/{rid}?previews=1").json()
    assert inside["content_visible"] is True and len(inside["versions"][-1]["files"][0]["preview"]["rows"]) == table.num_rows
    assert people["carol"].get(f"api/requests/{rid}").json()["content_visible"] is True

    # the author resubmits a suppressed version (from the workspace)
    r = upload(people["alice_ws"], [(TABLE, parquet_bytes(suppressed(table)))],
               description="cells under 10 suppressed", path=f"api/requests/{rid}/versions")
    assert r.status_code == 201, r.text
    req = r.json()
    assert (req["state"], req["version"], req["versions"][-1]["check_status"]) == ("checked", 2, "pass")
    assert req["versions"][-1]["files"][0]["check"]["provenance"]["match"]["suppressed_cells"] == len(small)

    # a stale decision (on version 1) is refused and changes nothing
    r = people["carol"].post(f"api/requests/{rid}/reviews", json={"version": 1, "decision": "approve"})
    assert r.status_code == 409 and "version 2" in r.json()["error"]

    # a checker who is a member of the permit may not review it
    r = people["erin"].post(f"api/requests/{rid}/reviews", json={"version": 2, "decision": "approve"})
    assert r.status_code == 403 and "member" in r.json()["error"]
    # the author has no review scope, and is the author anyway
    assert people["alice"].post(f"api/requests/{rid}/reviews", json={"version": 2, "decision": "approve"}
                                ).status_code == 403

    r = people["carol"].post(f"api/requests/{rid}/reviews", json={"version": 2, "decision": "approve",
                                                                    "comment": "suppression fine"})
    assert r.status_code == 200 and r.json()["state"] == "in_review"
    # blinded: dave and alice do not see carol's review yet; carol sees her own
    assert people["dave"].get(f"api/requests/{rid}").json()["versions"][-1]["reviews"] == []
    assert people["alice"].get(f"api/requests/{rid}").json()["versions"][-1]["reviews"] == []
    assert [x["reviewer"] for x in people["carol"].get(f"api/requests/{rid}").json()["versions"][-1]["reviews"]] == ["carol"]
    # the same checker cannot count twice
    r = people["carol"].post(f"api/requests/{rid}/reviews", json={"version": 2, "decision": "approve"})
    assert r.status_code == 409

    # not yet downloadable
    assert people["alice"].get(f"api/requests/{rid}/files/{TABLE}").status_code == 409

    r = people["dave"].post(f"api/requests/{rid}/reviews", json={"version": 2, "decision": "approve"})
    assert r.status_code == 200 and r.json()["state"] == "approved"
    assert sorted(x["reviewer"] for x in r.json()["versions"][-1]["reviews"]) == ["carol", "dave"]

    assert people["erin"].post(f"api/requests/{rid}/release").status_code == 403  # member
    r = people["carol"].post(f"api/requests/{rid}/release")
    assert r.status_code == 200 and r.json()["state"] == "released"

    # download outside the workspace: members only, checksum given, each download audited
    r = people["alice"].get(f"api/requests/{rid}/files/{TABLE}")
    assert r.status_code == 200
    assert r.headers["X-Content-SHA256"] == hashlib.sha256(r.content).hexdigest()
    got = pq.read_table(io.BytesIO(r.content))
    assert got.column("n").null_count == len(small)
    assert people["bob"].get(f"api/requests/{rid}/files/{TABLE}").status_code == 200
    assert people["mallory"].get(f"api/requests/{rid}/files/{TABLE}").status_code == 403
    assert people["carol"].get(f"api/requests/{rid}/files/{TABLE}").status_code == 403  # no download scope
    assert people["alice"].get(f"api/requests/{rid}").json()["content_visible"] is True  # released
    released = people["alice"].get("api/releases").json()["files"]
    assert any(f["request_id"] == rid and f["sha256"] == r.headers["X-Content-SHA256"] for f in released)

    actions = audit_actions(hub, rid)
    assert actions == [
        ("egress.create", "ok"), ("egress.submit", "ok"), ("egress.check", "ok"),
        ("egress.resubmit", "ok"), ("egress.check", "ok"),
        ("egress.review", "refused"), ("egress.review", "refused"),  # erin (a member), alice (the author)
        ("egress.review", "ok"), ("egress.download", "refused"),  # not released yet
        ("egress.review", "ok"), ("egress.approve", "ok"), ("egress.release", "refused"),  # erin
        ("egress.release", "ok"),
        ("egress.download", "ok"), ("egress.download", "ok"), ("egress.download", "refused"),
        ("egress.download", "refused"),
    ]
    assert verify(make_engine(hub.db_url)).ok


def test_a_differencing_pair_is_flagged_against_an_earlier_release(hub, people):
    """After a release, a table whose cells differ from it by 0 < d < 10 is flagged."""
    table = suppressed(count_table(hub.extract_dir))
    base = upload(people["bob"], [("release_a.parquet", parquet_bytes(table))], sql=None)
    # bob's session token names no workspace: outputs only leave from the permit's workspace
    assert base.status_code == 403 and "workspace" in base.json()["error"]
    bob_ws = Client(hub, hub.workspace_token("bob"))
    # three persons fewer in one cell than in the release of the first test: 0 < d = 3 < 10
    sql = COUNT_SQL.replace("FROM person", "FROM person WHERE person_id NOT IN (SELECT person_id FROM person "
                            "WHERE year_of_birth = 1950 AND gender_concept_id = 8507 ORDER BY person_id LIMIT 3)")
    import duckdb

    con = duckdb.connect()
    shifted = con.sql(sql.replace("FROM person", f"FROM read_parquet('{hub.extract_dir / 'person.parquet'}')")
                      ).to_arrow_table()
    con.close()
    r = upload(bob_ws, [("release_b.parquet", parquet_bytes(suppressed(shifted)))], sql=sql)
    assert r.status_code == 201, r.text
    cells = r.json()["versions"][-1]["files"][0]["check"]["cells"]
    rules = {f["rule"] for c in cells for f in c["findings"]}
    # released earlier (first test) holds the 1950/8507 count; this one drops persons from it
    assert "differencing" in rules, cells
    assert r.json()["versions"][-1]["check_status"] == "fail"
    # a pending request is compared too (issue 15): withdrawn, it no longer counts
    assert bob_ws.post(f"api/requests/{r.json()['id']}/withdraw").json()["state"] == "withdrawn"


def test_concurrent_reviews_lose_nothing(hub, people):
    table = suppressed(count_table(hub.extract_dir))
    r = upload(people["alice_ws"], [("concurrent.parquet", parquet_bytes(table))])
    rid = r.json()["id"]
    results = {}

    def review(who):
        results[who] = people[who].post(f"api/requests/{rid}/reviews",
                                        json={"version": 1, "decision": "return", "comment": f"{who}: round to 5"})

    threads = [threading.Thread(target=review, args=(w,)) for w in ("carol", "dave")]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert {w: r.status_code for w, r in results.items()} == {"carol": 200, "dave": 200}
    final = people["alice"].get(f"api/requests/{rid}").json()
    assert final["state"] == "returned"
    assert sorted(x["comment"] for x in final["versions"][-1]["reviews"]) == ["carol: round to 5", "dave: round to 5"]

    # a double review by one checker at the same moment: exactly one counts
    r = upload(people["alice_ws"], [("double.parquet", parquet_bytes(table))])
    rid2 = r.json()["id"]
    codes = []

    def twice():
        # (a return: this table has no provenance, so the permit's require_provenance refuses approval)
        codes.append(people["carol"].post(f"api/requests/{rid2}/reviews",
                                          json={"version": 1, "decision": "return", "comment": "round"}).status_code)

    threads = [threading.Thread(target=twice) for _ in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(codes) == [200, 409, 409]
    got = people["carol"].get(f"api/requests/{rid2}").json()
    assert got["state"] == "in_review" and got["versions"][-1]["reviews_in"] == 1

    # the author withdraws; a checker then cannot review it
    assert people["alice"].post(f"api/requests/{rid2}/withdraw").json()["state"] == "withdrawn"
    assert people["dave"].post(f"api/requests/{rid2}/reviews", json={"version": 1, "decision": "approve"}
                               ).status_code == 409


def _zip_bomb() -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.csv", b"0" * 5_000_000)
    return buffer.getvalue()


def _parquet_bomb() -> bytes:
    """900 000 rows of one 200-character string: a few KB on disk, 180 MB decoded."""
    import numpy as np

    column = pa.DictionaryArray.from_arrays(pa.array(np.zeros(900_000, dtype=np.int32)), pa.array(["x" * 200]))
    buffer = io.BytesIO()
    pq.write_table(pa.table({"label": column, "n": pa.array(np.full(900_000, 20, dtype=np.int64))}), buffer)
    return buffer.getvalue()


BAD_UPLOADS = [
    ("parquet bomb", [("t.parquet", _parquet_bomb())], None, 400, "decodes to more than"),
    ("malformed csv", [("t.csv", b"a,b\n1,2\n3,4,5\n")], None, 400, "malformed CSV"),
    ("malformed parquet", [("t.parquet", b"PAR1 this is not parquet PAR1")], None, 400, "malformed Parquet"),
    ("zip bomb named csv", [("t.csv", _zip_bomb())], None, 400, "compressed"),
    ("path traversal", [("../../etc/passwd.csv", b"a,n\nx,20\n")], None, 400, "directory"),
    ("not allowed type", [("t.exe", b"MZ")], None, 400, "not allowed"),
    ("oversized file", [("big.csv", b"a,n\n" + b"x,20\n" * (17 * 1024 * 1024 // 5))], None, 400, "larger than the limit"),
    ("formula injection", [("t.csv", b"label,n\n=SUM(A1:A9),20\nb,30\n")], None, 400, "formula"),
    ("person key column", [("t.csv", b"person_id,n\nabc,20\ndef,30\n")], None, 400, "person key"),
    ("sql that writes", [("t.csv", b"gender_concept_id,n\n8507,100\n")],
     "COPY (SELECT 1) TO '/tmp/x.csv'", 400, "SELECT"),
    ("sql that reads outside", [("t.csv", b"a\n1\n")], "SELECT * FROM read_csv('/etc/passwd')", 400, "outside the extract"),
    ("two statements", [("t.csv", b"a\n1\n")], "SELECT 1; DROP TABLE person", 400, "one statement"),
    ("tampered table", [("t.csv", b"gender_concept_id,n\n8507,1001\n8532,1500\n")],
     "SELECT gender_concept_id, count(*) AS n FROM person GROUP BY 1", 422, "not the result"),
    ("figure without its table", [("fig.png", b"\x89PNG\r\n\x1a\n0000")], None, 400, "underlying table"),
]


@pytest.mark.parametrize("files,sql,status,needle", [b[1:] for b in BAD_UPLOADS], ids=[b[0] for b in BAD_UPLOADS])
def test_bad_input_is_refused_with_a_reason_and_nothing_changes(hub, people, files, sql, status, needle):
    before = stored_state(hub)
    r = upload(people["alice_ws"], files, sql=sql, kind="figure" if files[0][0].endswith(".png") else "frequency")
    assert r.status_code == status, r.text
    body = r.json()
    assert needle.lower() in body["error"].lower(), body
    assert stored_state(hub) == before
    assert verify(make_engine(hub.db_url)).ok


def test_an_upload_over_the_service_limit_is_refused_while_it_is_read(hub, people):
    before = stored_state(hub)
    body = b"x" * (MAX_REQUEST_BYTES + 1024)
    r = people["alice_ws"].post("api/requests", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "larger than the limit" in r.json()["error"]
    assert stored_state(hub) == before


def test_json_base64_upload_and_malformed_json(hub, people):
    import base64

    table = suppressed(count_table(hub.extract_dir))
    doc = {"description": "json upload", "kind": "frequency", "provenance_sql": COUNT_SQL,
           "files": [{"name": "j.parquet", "content_base64": base64.b64encode(parquet_bytes(table)).decode()}]}
    r = people["alice_ws"].post("api/requests", data=json.dumps(doc), headers={"Content-Type": "application/json"})
    assert r.status_code == 201 and r.json()["versions"][-1]["check_status"] == "pass", r.text
    for bad, needle in [(b"{not json", "not JSON"), (json.dumps({"files": []}).encode(), "non-empty"),
                        (json.dumps({"description": "x", "files": [{"name": "a.csv", "content_base64": "@@"}]}).encode(),
                         "base64")]:
        r = people["alice_ws"].post("api/requests", data=bad, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and needle in r.json()["error"], r.text


def test_who_may_submit_and_see(hub, people):
    table = suppressed(count_table(hub.extract_dir))
    # a non-member's workspace token for the permit (a server they could not spawn) is refused
    r = upload(people["mallory_ws"], [(TABLE, parquet_bytes(table))])
    assert r.status_code == 403 and "not a member" in r.json()["error"]
    # no token, a bad token
    import requests

    assert requests.get(hub.egress_url + "api/requests", timeout=30).status_code == 401
    assert requests.get(hub.egress_url + "api/requests", headers={"Authorization": "token nope"},
                        timeout=30).status_code == 401
    # a researcher has no checker queue; a checker's queue never holds requests of their own permits
    assert people["alice"].get("api/requests?queue=1").status_code == 403
    queue = people["erin"].get("api/requests?queue=1").json()["requests"]
    assert all(q["permit_id"] != PERMIT for q in queue)
    own = upload(people["alice_ws"], [("seen.parquet", parquet_bytes(table))]).json()
    assert own["id"] in {q["id"] for q in people["carol"].get("api/requests?queue=1").json()["requests"]}
    assert people["mallory"].get(f"api/requests/{own['id']}").status_code == 403
    assert people["alice"].get("api/requests/r-0000000000000000").status_code == 404


def test_review_of_ones_own_request_is_refused(hub, people):
    table = suppressed(count_table(hub.extract_dir))
    r = upload(people["erin_ws"], [("erin.parquet", parquet_bytes(table))])
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    r = people["erin"].post(f"api/requests/{rid}/reviews", json={"version": 1, "decision": "approve"})
    assert r.status_code == 403 and "your own request" in r.json()["error"]
    assert people["erin"].get(f"api/requests/{rid}").json()["versions"][-1]["reviews_in"] == 0


def test_dp_answers_are_held_for_review_unless_the_permit_auto_releases(hub, people):
    """Keep last in this module: it changes the permit (dp.auto_release) through the registry."""
    import yaml

    from hub.permits.store import PermitStore

    spec = {"kind": "count", "table": "person", "by": ["gender_concept_id"], "epsilon": 0.25}
    assert people["alice"].post("api/dp/query", json=spec).status_code == 403  # not from a workspace
    assert people["mallory_ws"].post("api/dp/query", json=spec).status_code == 403  # not a member
    before = people["alice_ws"].get("api/dp/budget").json()
    r = people["alice_ws"].post("api/dp/query", json=spec)
    assert r.status_code == 202, r.text
    held = r.json()
    assert held["release"] == "review" and "rows" not in held and "value" not in held
    req = people["carol"].get(f"api/requests/{held['request_id']}").json()
    assert req["state"] == "checked" and req["versions"][-1]["kind"] == "text"
    assert req["versions"][-1]["files"][0]["name"].startswith("dp-count-")
    after = people["alice_ws"].get("api/dp/budget").json()
    assert after["epsilon_spent"] > before["epsilon_spent"]
    olga = Client(hub, hub.user_token("olga", ["custom:spe:operate"]))
    rows = olga.get(f"api/dp/budget?permit={PERMIT}").json()["budgets"]
    assert [r["epsilon_spent"] for r in rows] == [after["epsilon_spent"]]
    assert people["mallory"].get(f"api/dp/budget?permit={PERMIT}").status_code == 403  # not a member

    store = PermitStore(make_engine(hub.db_url))
    doc = dict(store.get(PERMIT).document)
    doc["dp"] = dict(doc.get("dp", {}), auto_release=True)
    store.apply(yaml.safe_load(yaml.safe_dump(doc)), "tester")
    r = people["alice_ws"].post("api/dp/query", json=spec)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["release"] == "auto"
    assert sorted(row["gender_concept_id"] for row in answer["rows"]) == [8507, 8532]
    bad = people["alice_ws"].post("api/dp/query", json={"kind": "count", "table": "person", "epsilon": -1})
    assert bad.status_code == 400


def test_a_figure_travels_with_its_table_and_checkers_see_both(hub, people):
    import pyarrow.csv as pacsv

    table = suppressed(count_table(hub.extract_dir))
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer)
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
    r = upload(people["alice_ws"], [("births.png", png), ("births.csv", buffer.getvalue())], sql=None,
               kind="figure", description="figure 2 and its numbers")
    assert r.status_code == 201, r.text
    files = {f["name"]: f for f in r.json()["versions"][-1]["files"]}
    assert files["births.png"]["check"]["status"] == "review"
    assert files["births.csv"]["check"]["verified"] is False  # no provenance: unverified
    seen = people["carol"].get(f"api/requests/{r.json()['id']}?previews=1").json()["versions"][-1]["files"]
    previews = {f["name"]: f["preview"] for f in seen}
    assert base64_decode(previews["births.png"]["png_base64"]) == png
    assert previews["births.csv"]["total_rows"] == table.num_rows


def base64_decode(text: str) -> bytes:
    import base64

    return base64.b64decode(text)


MARGINS_SQL = ("SELECT CASE WHEN GROUPING(gender_concept_id) = 1 THEN 'All' "
               "ELSE CAST(gender_concept_id AS VARCHAR) END AS sex, "
               "CASE WHEN GROUPING(decade) = 1 THEN 'All' ELSE CAST(decade AS VARCHAR) END AS decade, "
               "count(*) AS n FROM (SELECT gender_concept_id, floor(year_of_birth / 10) * 10 AS decade FROM person) "
               "GROUP BY CUBE (gender_concept_id, decade)")


def test_margins_written_in_sql_get_evidence_and_a_suggested_suppression_applied_in_one_call(hub, people):
    """A CUBE table over a CTE-like subquery is verified; its failing cells come with a
    suggested pattern (primary and complementary cells); one POST applies it as a new version
    that passes; the resubmission's audit event records the pattern."""
    import duckdb

    con = duckdb.connect()
    table = con.sql(MARGINS_SQL.replace("FROM person", f"FROM read_parquet('{hub.extract_dir / 'person.parquet'}')")
                    ).to_arrow_table()
    con.close()
    r = upload(people["alice_ws"], [("by_sex_decade.parquet", parquet_bytes(table))], sql=MARGINS_SQL)
    assert r.status_code == 201, r.text
    req = r.json()
    rid, v1 = req["id"], req["versions"][-1]
    check = v1["files"][0]["check"]
    assert v1["verified"] is True and v1["check_status"] == "fail", check
    suggestion = check["suppression"]
    assert suggestion["verified"] and {c["reason"] for c in suggestion["cells"]} == {"primary", "secondary"}
    failing = {c["row"] for c in check["cells"] if any(f["status"] == "fail" for f in c["findings"])}
    assert failing <= {c["row"] for c in suggestion["cells"]}
    assert people["carol"].post(f"api/requests/{rid}/suppression").status_code == 403  # the author's act
    r = people["alice_ws"].post(f"api/requests/{rid}/suppression")
    assert r.status_code == 201, r.text
    req = r.json()
    v2 = req["versions"][-1]
    assert (req["version"], v2["check_status"], v2["verified"]) == (2, "pass", True), v2["files"][0]["check"]
    assert v2["files"][0]["check"]["provenance"]["match"]["suppressed_cells"] == len(suggestion["cells"])
    assert ("egress.resubmit", "ok") in audit_actions(hub, rid)
    from hub.audit.tables import audit_events

    with make_engine(hub.db_url).connect() as conn:
        detail = conn.execute(sa.select(audit_events.c.detail).where(
            audit_events.c.object_id == rid, audit_events.c.action == "egress.resubmit",
            audit_events.c.outcome == "ok")).scalar_one()
    applied = (json.loads(detail) if isinstance(detail, str) else detail)["suppression_applied"]
    assert sorted(map(tuple, applied["by_sex_decade.parquet"])) == sorted(
        (c["row"], c["column"]) for c in suggestion["cells"])
    r = people["alice_ws"].post(f"api/requests/{rid}/suppression")
    assert r.status_code == 409  # version 2 passes: nothing more to apply


def test_a_table_without_verified_evidence_cannot_be_approved(hub, people):
    table = suppressed(count_table(hub.extract_dir))
    r = upload(people["alice_ws"], [(TABLE, parquet_bytes(table))], sql=None, description="no SQL this time")
    assert r.status_code == 201, r.text
    req = r.json()
    rid = req["id"]
    assert req["versions"][-1]["verified"] is False
    seen = people["carol"].get(f"api/requests/{rid}").json()
    assert seen["approval_blocked"] and "no provenance SQL submitted" in seen["approval_blocked"][0]
    assert seen["can"]["approve"] is False and seen["can"]["review"] is True
    r = people["carol"].post(f"api/requests/{rid}/reviews", json={"version": 1, "decision": "approve"})
    assert r.status_code == 400 and "requires provenance" in r.json()["error"]
    people["alice_ws"].post(f"api/requests/{rid}/withdraw")
