"""Permit ids that a health data access body may issue but JupyterHub cannot use as server names
(dots, underscores, upper case, the schema's maximum of 63 characters) work end to end on the real
hub: the permit is applied and provisioned, a member opens its workspace under the name the hub
gives it, and from a kernel inside submits an output, sees her request's content, and runs a DP
query (answered at once, or held for review as an egress request of the same permit).

Every step looks the permit up from the workspace's server name (`hub.permits.access`); a lookup
that disagrees with the spawner (for example comparing the server name with the lower-cased id)
loses the permit and refuses the member. One shared hub, two workspaces started together.
"""

from __future__ import annotations

import json

import pytest
import yaml

from hub.naming import server_name_for
from tests.hubfixture import EXPIRING_PERMIT, _provision, spe_hub  # noqa: F401
from tests.integration.kernel import Kernel

pytestmark = pytest.mark.docker

# dots, underscores and upper case; short enough to become a readable server name
DOTTED = "Awk.Case_2026.1"
# the longest id the permit schema allows, with every awkward character; its server name is
# JupyterHub's hashed slug (server names are at most 30 characters)
LONGEST = ("HDAB.Long_Permit-2026." + "Xy_z." * 13)[:63]
# permit id -> (member who opens it, her role, DP answers released at once)
CASES = {DOTTED: ("bob", "researcher", True), LONGEST: ("carol", "data_manager", False)}

SQL = "SELECT gender_concept_id, count(*) AS n FROM person GROUP BY gender_concept_id ORDER BY 1"
INSIDE = f'''
import json, duckdb, os, spe, spe.dp
df = duckdb.sql({SQL!r}.replace("FROM person", "FROM '/data/person.parquet'")).df()
req = spe.submit(df, description="persons by sex", provenance_sql={SQL!r}, name="by_sex.parquet")
mine = [r for r in spe.requests() if r["id"] == req["id"]]
seen = spe.request(req["id"])
dp = spe.dp.count("person", epsilon=0.5)
held = spe.request(dp["request_id"])["permit_id"] if dp.get("release") == "review" else None
print(json.dumps({{"permit_env": os.environ["SPE_PERMIT_ID"], "request": req["permit_id"], "state": req["state"],
                  "listed_description": mine[0]["description"], "content_visible": seen["content_visible"],
                  "dp": dp, "held_under": held}}))
'''


@pytest.fixture(scope="module")
def awkward_permits(spe_hub, tmp_path_factory):
    assert len(LONGEST) == 63 and len(server_name_for(LONGEST)) <= 30
    folder = tmp_path_factory.mktemp("awkward")
    for i, (pid, (member, role, auto)) in enumerate(CASES.items()):
        doc = yaml.safe_load(EXPIRING_PERMIT)  # one small table (person), valid until 2030
        doc.update(id=pid, title=f"Awkward permit id {pid}", dp={"epsilon": 2.0, "auto_release": auto},
                   members=[{"username": "alice", "role": "principal_investigator"},
                            {"username": member, "role": role}])
        path = folder / f"permit-{i}.yaml"
        path.write_text(yaml.safe_dump(doc))
        _provision(spe_hub.home, "permit", "apply", str(path))
        _provision(spe_hub.home, "permit", "provision", pid)
    return CASES


def test_awkward_permit_ids_spawn_submit_and_query_from_the_workspace(spe_hub, awkward_permits):
    started = []
    try:
        for pid, (member, _, _) in awkward_permits.items():  # both start together, then both are awaited
            client = spe_hub.client(member)
            resp = client.start_server(member, server_name_for(pid))
            assert resp.status_code in (201, 202), f"{pid}: {resp.status_code} {resp.text}\n{spe_hub.log_tail()}"
            started.append((client, member, server_name_for(pid)))
        for client, member, server in started:
            client.wait_ready(member, server)
        for pid, (member, _, auto) in awkward_permits.items():
            client = spe_hub.client(member)
            kernel = Kernel(client.user_url(member, server_name_for(pid)), client.token)
            try:
                out = json.loads(kernel.run(INSIDE).strip().splitlines()[-1])
            finally:
                kernel.close()
            assert out["permit_env"] == pid
            assert (out["request"], out["state"]) == (pid, "checked")
            # inside its own workspace the author sees her request's content
            assert out["content_visible"] is True and out["listed_description"] == "persons by sex"
            if auto:
                assert out["dp"]["release"] == "auto" and isinstance(out["dp"]["value"], int)
            else:  # held for review: an egress request of the same permit, without the values
                assert out["dp"]["release"] == "review" and "value" not in out["dp"]
                assert out["held_under"] == pid
    finally:
        for client, member, server in started:
            client.stop_server(member, server)
