"""The inflow airlock from inside a REAL workspace (Docker, the SPE hub, the workspace image):
a file a checker approved is under /imports, read-only, and a rejected one is not; `pip install`
of a wheel approved for the permit works (from an operator's `spe mirror add` and from a package
import request fetched from PyPI), an unapproved one or another permit's fails; and the mirror
is the only host port a workspace gains (the hub's and egress's aside)."""

from __future__ import annotations

import errno
import json

import pytest
import requests

from hub.cli import main as spe
from tests.hubfixture import open_workspace, spe_hub  # noqa: F401
from tests.integration.kernel import Kernel
from tests.wheels import make_wheel

pytestmark = pytest.mark.docker
PERMIT, SERVER, OTHER = "DEMO-2026-001", "demo-2026-001", "DEMO-2026-002"


@pytest.fixture(scope="module")
def workspace(spe_hub):
    with open_workspace(spe_hub, "alice", SERVER) as (alice, kernel):
        yield alice, kernel


def run_json(kernel: Kernel, code: str):
    return json.loads(kernel.run(code).strip().splitlines()[-1])


def egress(spe_hub, user: str, method: str, path: str, **kw) -> requests.Response:
    return requests.request(method, f"{spe_hub.url}/services/egress/{path}", timeout=300,
                            headers={"Authorization": f"token {spe_hub.client(user).token}"}, **kw)


def ask_file(spe_hub, name: str, data: bytes) -> dict:
    r = egress(spe_hub, "alice", "POST", "api/imports", data={"permit": PERMIT, "justification": "reference codes"},
               files=[("file", (name, data, "text/csv"))])
    assert r.status_code == 201, r.text
    return r.json()


def decide(spe_hub, checker: str, import_id: str, decision: str, comment: str = "reviewed") -> dict:
    r = egress(spe_hub, checker, "POST", f"api/imports/{import_id}/decision",
               json={"decision": decision, "comment": comment})
    assert r.status_code == 200, r.text
    return r.json()


def test_an_approved_file_is_under_imports_read_only_and_a_rejected_one_is_not(spe_hub, workspace):
    _, kernel = workspace
    approved = ask_file(spe_hub, "icd10-diabetes.csv", b"code,label\nE10,type 1\nE11,type 2\n")
    rejected = ask_file(spe_hub, "patients.csv", b"name,dob\nJane Doe,1970-01-01\nJohn Roe,1980-02-02\n")
    assert decide(spe_hub, "carla", approved["id"], "approve")["state"] == "approved"
    assert decide(spe_hub, "dan", rejected["id"], "reject", "identifiable people")["state"] == "rejected"
    seen = run_json(kernel, """
import json, os
out = {"listing": sorted(os.listdir('/imports')), "content": open('/imports/icd10-diabetes.csv').read(),
       "env": os.environ.get('SPE_IMPORTS_DIR'), "writes": {}}
for path in ['/imports/icd10-diabetes.csv', '/imports/new.csv']:
    try:
        with open(path, 'a') as fh: fh.write('x')
        out["writes"][path] = 'written'
    except OSError as e:
        out["writes"][path] = e.errno
try:
    os.remove('/imports/icd10-diabetes.csv'); out["removed"] = True
except OSError as e:
    out["removed"] = e.errno
mounts = [l.split() for l in open('/proc/self/mountinfo').read().splitlines()]
out["mount_options"] = [m[5] for m in mounts if m[4] == '/imports']
print(json.dumps(out))
""")
    assert "icd10-diabetes.csv" in seen["listing"] and "patients.csv" not in seen["listing"]
    assert seen["content"] == "code,label\nE10,type 1\nE11,type 2\n" and seen["env"] == "/imports"
    for path, outcome in seen["writes"].items():
        assert outcome in (errno.EROFS, errno.EACCES), (path, outcome)
    assert seen["removed"] in (errno.EROFS, errno.EACCES)
    assert seen["mount_options"] and all(o.split(",")[0] == "ro" for o in seen["mount_options"])


PIP = """
import importlib, json, subprocess, sys
def pip(req):
    done = subprocess.run([sys.executable, '-m', 'pip', 'install', req], capture_output=True, text=True, timeout=240)
    return {"rc": done.returncode, "tail": (done.stdout + done.stderr)[-600:]}
"""


def test_pip_installs_what_was_approved_for_this_permit_and_nothing_else(spe_hub, workspace, tmp_path):
    _, kernel = workspace
    ours = make_wheel(tmp_path, "inflow-tiny", "1.0", "VALUE = 'approved for DEMO-2026-001'\n")
    theirs = make_wheel(tmp_path, "inflow-other", "1.0", "VALUE = 'approved for DEMO-2026-002 only'\n")
    home = ["--home", str(spe_hub.home), "--actor", "olga"]
    assert spe([*home, "mirror", "add", str(ours), "--permit", PERMIT]) == 0
    assert spe([*home, "mirror", "add", str(theirs), "--permit", OTHER]) == 0
    # a package import request: the egress service fetches the wheel from PyPI (operator side)
    r = egress(spe_hub, "alice", "POST", "api/imports", json={
        "permit": PERMIT, "justification": "pretty tables", "package": {"name": "tabulate", "version": "0.9.0"}})
    assert r.status_code == 201, r.text
    assert decide(spe_hub, "carla", r.json()["id"], "approve")["published"] == "pip install tabulate==0.9.0"
    result = run_json(kernel, PIP + """
out = {r: pip(r) for r in ['inflow-tiny==1.0', 'tabulate==0.9.0', 'inflow-other==1.0', 'humanize==4.9.0']}
importlib.invalidate_caches()
import inflow_tiny, tabulate
out['value'] = inflow_tiny.VALUE
out['table'] = tabulate.tabulate([[1, 2]])
out['where'] = inflow_tiny.__file__
print(json.dumps(out))
""")
    assert result["inflow-tiny==1.0"]["rc"] == 0, result["inflow-tiny==1.0"]["tail"]
    assert result["tabulate==0.9.0"]["rc"] == 0, result["tabulate==0.9.0"]["tail"]
    assert result["value"] == "approved for DEMO-2026-001" and "1  2" in result["table"]
    assert result["where"].startswith("/home/jovyan/work/.local/")  # the work volume, never the image
    for refused in ("inflow-other==1.0", "humanize==4.9.0"):  # another permit's wheel; never approved
        assert result[refused]["rc"] != 0 and "No matching distribution" in result[refused]["tail"], result[refused]


def test_the_mirror_is_the_only_host_port_added_and_it_is_read_only(spe_hub, workspace, host_listener):
    _, kernel = workspace
    gw = spe_hub.gateway_ip
    targets = [(gw, spe_hub.hub_port), (gw, spe_hub.egress_port), (gw, spe_hub.mirror_port), (gw, host_listener)]
    result = run_json(kernel, f"""
import json, os, socket, urllib.request, urllib.error
out = {{}}
for host, port in {targets!r}:
    s = socket.socket(); s.settimeout(3)
    try:
        s.connect((host, port)); out[str(port)] = "connected"
    except OSError as e:
        out[str(port)] = type(e).__name__
    finally:
        s.close()
index = os.environ['PIP_INDEX_URL']
req = urllib.request.Request(index.replace('/simple/', '/'), data=b'x', method='POST')
try:
    urllib.request.urlopen(req, timeout=10); out['post'] = 200
except urllib.error.HTTPError as e:
    out['post'] = e.code
guess = index.rsplit('/', 3)[0] + '/' + 'f' * 32 + '/simple/'
out['guess_lists_ours'] = 'inflow-tiny' in urllib.request.urlopen(guess, timeout=10).read().decode()
out['index'] = index
print(json.dumps(out))
""")
    assert result[str(spe_hub.hub_port)] == result[str(spe_hub.egress_port)] == "connected"
    assert result[str(spe_hub.mirror_port)] == "connected"
    assert result[str(host_listener)] != "connected"  # every other host port stays closed
    assert result["index"].startswith(f"http://{gw}:{spe_hub.mirror_port}/")
    assert result["post"] == 405  # nothing can be uploaded to the mirror
    assert result["guess_lists_ours"] is False  # another token does not see this permit's wheels
