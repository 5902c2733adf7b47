"""A permit workspace, spawned through the hub REST API, driven by a kernel over the Jupyter API.

Proves from inside the container: /data is exactly this permit's extract and read-only, the
rest of the host and the outside world are unreachable (no route, firewall, no DNS), the
hub API answers, uid 1000 with no capabilities; and from outside: /files and nbconvert
downloads are closed.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess

import pytest

from tests.hubfixture import open_workspace
from tests.integration.kernel import Kernel

pytestmark = pytest.mark.docker

PERMIT, SERVER = "DEMO-2026-001", "demo-2026-001"


@pytest.fixture(scope="module")
def workspace(spe_hub):
    with open_workspace(spe_hub, "alice", SERVER) as (alice, kernel):
        yield alice, kernel


def run_json(kernel: Kernel, code: str):
    return json.loads(kernel.run(code).strip().splitlines()[-1])


def connect_code(targets: list[tuple[str, int]], timeout_seconds: float = 3) -> str:
    """Code that tries every target at once (a dropped packet costs `timeout_seconds`, not that times N)."""
    return f"""
import json, socket
from concurrent.futures import ThreadPoolExecutor
def attempt(target):
    host, port = target
    s = socket.socket(); s.settimeout({timeout_seconds})
    try:
        s.connect((host, port)); return f"{{host}}:{{port}}", "connected"
    except OSError as e:
        return f"{{host}}:{{port}}", type(e).__name__ + ": " + str(e)
    finally:
        s.close()
with ThreadPoolExecutor(max_workers=16) as pool:
    print(json.dumps(dict(pool.map(attempt, {targets!r}))))
"""


def test_data_holds_exactly_the_extract(spe_hub, workspace):
    _, kernel = workspace
    host_dir = spe_hub.settings.extracts_dir / PERMIT / "1"
    manifest = json.loads((host_dir / "manifest.json").read_text())
    seen = run_json(kernel, """
import hashlib, json, os
print(json.dumps({n: hashlib.sha256(open('/data/' + n, 'rb').read()).hexdigest() for n in sorted(os.listdir('/data'))}))
""")
    assert sorted(seen) == sorted(p.name for p in host_dir.iterdir())
    for table, meta in manifest["tables"].items():
        assert seen[meta["file"]] == meta["sha256"], table
    assert seen["manifest.json"] == hashlib.sha256((host_dir / "manifest.json").read_bytes()).hexdigest()


def test_data_and_root_are_read_only_work_is_writable(workspace):
    _, kernel = workspace
    result = run_json(kernel, """
import json
out = {}
for path in ['/data/new.csv', '/data/person.parquet', '/etc/evil', '/usr/local/x', '/home/jovyan/work/ok.txt', '/tmp/ok']:
    try:
        with open(path, 'a') as fh: fh.write('x')
        out[path] = 'written'
    except OSError as e:
        out[path] = e.errno
print(json.dumps(out))
""")
    import errno

    for path in ("/data/new.csv", "/data/person.parquet", "/etc/evil", "/usr/local/x"):
        assert result[path] in (errno.EROFS, errno.EACCES), (path, result[path])
    assert result["/home/jovyan/work/ok.txt"] == "written"
    assert result["/tmp/ok"] == "written"


def test_other_permit_extract_is_not_reachable(spe_hub, workspace):
    _, kernel = workspace
    other = spe_hub.settings.extracts_dir / "DEMO-2026-002"
    assert other.is_dir()  # it exists on the host ...
    result = run_json(kernel, f"""
import json, os
mounts = open('/proc/self/mountinfo').read()
print(json.dumps({{"exists": os.path.exists({str(other)!r}), "mounted": "DEMO-2026-002" in mounts,
                  "data_mounts": [l.split()[3] for l in mounts.splitlines() if l.split()[4] == '/data']}}))
""")
    assert result["exists"] is False  # ... but not in the workspace
    assert result["mounted"] is False
    assert result["data_mounts"] == [f"/{PERMIT}/1"] or all(PERMIT in m for m in result["data_mounts"])


def test_identity_uid_1000_no_capabilities(workspace):
    _, kernel = workspace
    result = run_json(kernel, """
import json, os
status = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "cap_eff": status['CapEff'].strip(),
                  "cap_prm": status['CapPrm'].strip(), "no_new_privs": status['NoNewPrivs'].strip(),
                  "env_permit": os.environ.get('SPE_PERMIT_ID'), "egress": os.environ.get('SPE_EGRESS_URL')}))
""")
    assert result["uid"] == 1000
    assert int(result["cap_eff"], 16) == 0
    assert int(result["cap_prm"], 16) == 0
    assert result["no_new_privs"] == "1"
    assert result["env_permit"] == PERMIT
    assert result["egress"].endswith("/services/egress/") and result["egress"].startswith("http://")


def _host_addresses() -> dict:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
    addrs = {}
    for line in out.splitlines():
        parts = line.split()
        addrs[parts[1]] = parts[3].split("/")[0]
    route = subprocess.run(["ip", "-4", "route", "show", "default"], capture_output=True, text=True).stdout.split()
    if "via" in route:
        addrs["default-gateway"] = route[route.index("via") + 1]
    return addrs


def test_only_the_hub_api_is_reachable(spe_hub, workspace, host_listener):
    _, kernel = workspace
    addrs = _host_addresses()
    # the listener really answers from the host, so a failure from the workspace is isolation
    with socket.create_connection((spe_hub.gateway_ip, host_listener), timeout=3):
        pass
    targets = [(spe_hub.gateway_ip, spe_hub.hub_port),  # allowed: the hub API
               (spe_hub.gateway_ip, host_listener),       # host port on the gateway address
               ("169.254.169.254", 80),                   # cloud metadata
               ("192.0.2.1", 80)]                         # TEST-NET-1 (also this host's default route here)
    for name, ip in addrs.items():
        if name not in ("lo", spe_hub.bridge):
            targets.append((ip, host_listener))           # docker0, eth0, default gateway ...
    if "default-gateway" in addrs:
        targets.append((addrs["default-gateway"], 80))
    result = run_json(kernel, connect_code(targets))
    assert result.pop(f"{spe_hub.gateway_ip}:{spe_hub.hub_port}") == "connected"
    assert result, "no forbidden targets were tried"
    for target, outcome in result.items():
        assert outcome != "connected", f"workspace reached {target}"
    # and the hub API answers a real HTTP request from inside
    status = kernel.run(f"""
import urllib.request
print(urllib.request.urlopen('http://{spe_hub.gateway_ip}:{spe_hub.hub_port}/hub/api/', timeout=5).status)
""").strip()
    assert status == "200"
    # and so does the egress service, on the gateway's egress port (SPE_EGRESS_URL)
    egress = kernel.run("""
import os, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(os.environ['SPE_EGRESS_URL'] + 'api/', timeout=10).status)
except urllib.error.HTTPError as e:
    print(e.code)
""").strip()
    assert egress.isdigit() and int(egress) < 500, egress


def test_outside_names_do_not_resolve(workspace):
    _, kernel = workspace
    result = run_json(kernel, """
import json, socket
from concurrent.futures import ThreadPoolExecutor
def resolve(name):
    try:
        return socket.getaddrinfo(name, 443)[0][4][0]
    except OSError as e:
        return 'failed: ' + type(e).__name__
names = ['pypi.org', 'example.com', 'deb.debian.org']
with ThreadPoolExecutor(len(names)) as pool:
    print(json.dumps(dict(zip(names, pool.map(resolve, names)))))
""")
    for name, outcome in result.items():
        assert outcome.startswith("failed"), f"{name} resolved to {outcome}"


def test_files_and_download_routes_are_closed(workspace):
    alice, kernel = workspace
    kernel.run("""
import json
open('/home/jovyan/work/result.csv', 'w').write('a,b\\n1,2\\n')
nb = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
json.dump(nb, open('/home/jovyan/work/analysis.ipynb', 'w'))
""")
    auth = {"Authorization": f"token {alice.token}"}
    base = alice.user_url("alice", SERVER)
    # the notebook itself still opens through the contents API
    assert alice.session.get(base + "api/contents/analysis.ipynb", headers=auth).status_code == 200
    for path in ("files/result.csv", "files/analysis.ipynb", "nbconvert/html/analysis.ipynb?download=true",
                 "nbconvert/script/analysis.ipynb?download=true"):
        resp = alice.session.get(base + path, headers=auth, allow_redirects=False)
        assert resp.status_code == 403, (path, resp.status_code)
    # /data is outside the notebook root: the contents API cannot name it
    for path in ("api/contents/..%2F..%2F..%2Fdata", "api/contents/%2Fdata%2Fperson.parquet"):
        resp = alice.session.get(base + path, headers=auth, allow_redirects=False)
        assert resp.status_code in (400, 403, 404), (path, resp.status_code)


def test_workspace_token_may_submit_for_its_user_only(spe_hub, workspace):
    """The egress service accepts a submission from a workspace token that carries submit for its user."""
    _, kernel = workspace
    scopes = run_json(kernel, """
import json, os, urllib.request
req = urllib.request.Request(os.environ['JUPYTERHUB_API_URL'] + '/user',
                             headers={'Authorization': 'token ' + os.environ['JUPYTERHUB_API_TOKEN']})
print(json.dumps(json.load(urllib.request.urlopen(req, timeout=10))['scopes']))
""")
    assert "custom:spe:submit!user=alice" in scopes
    assert not any(s.startswith("custom:spe:review") or s.startswith("admin") for s in scopes)
