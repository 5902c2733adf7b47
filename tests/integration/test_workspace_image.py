"""The workspace image on a real Docker engine, run the way the PermitSpawner runs it.

One container per module: uid 1000, all capabilities dropped, no-new-privileges, read-only
root with a tmpfs /tmp, no network, a temporary extract mounted read-only at /data and a fresh
volume at /home/jovyan/work. A plain `jupyter lab` server with a token is driven from inside
the container (`docker exec` + Python: with --network none there is no port to publish): the
REST API for routes and contents, a kernel over its websocket for code execution.
Container logs are attached to every failing assertion.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import textwrap
import time
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tools.images import ensure_images, workspace_tag

pytestmark = pytest.mark.docker

TOKEN = secrets.token_hex(16)
PORT = 8888
PERSONS = 37

# Runs inside the container: one HTTP request to the server, printed as JSON.
HTTP_SNIPPET = """
import json, sys, urllib.request, urllib.error
method, path, body = sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None
req = urllib.request.Request(
    "http://127.0.0.1:%(port)d" + path, method=method, data=body.encode() if body else None,
    headers={"Authorization": "token %(token)s", "Content-Type": "application/json"})
try:
    with urllib.request.urlopen(req, timeout=30) as resp:
        status, data = resp.status, resp.read()
except urllib.error.HTTPError as err:
    status, data = err.code, err.read()
print(json.dumps({"status": status, "body": data.decode("utf-8", "replace")}))
""" % {"port": PORT, "token": TOKEN}

# Runs inside the container: start a kernel, execute code over the websocket, print its stdout.
KERNEL_SNIPPET = """
import json, sys, uuid, urllib.request
from tornado import ioloop, websocket
base, token, code = "127.0.0.1:%(port)d", "%(token)s", sys.stdin.read()
req = urllib.request.Request("http://" + base + "/api/kernels", method="POST", data=b"{}",
                             headers={"Authorization": "token " + token})
kernel = json.load(urllib.request.urlopen(req, timeout=60))

async def run():
    ws = await websocket.websocket_connect(
        "ws://%%s/api/kernels/%%s/channels?token=%%s" %% (base, kernel["id"], token))
    msg_id = uuid.uuid4().hex
    ws.write_message(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "t",
                   "session": uuid.uuid4().hex, "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False}}))
    out, errors = [], []
    while True:
        raw = await ws.read_message()
        if raw is None:
            raise SystemExit("websocket closed before the kernel went idle")
        msg = json.loads(raw)
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if kind == "stream":
            out.append(msg["content"]["text"])
        elif kind == "error":
            errors.append("\\n".join(msg["content"]["traceback"]))
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            break
    print(json.dumps({"stdout": "".join(out), "errors": errors}))

ioloop.IOLoop.current().run_sync(run, timeout=180)
""" % {"port": PORT, "token": TOKEN}


def _docker(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], input=stdin, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} failed: {result.stderr.strip()}")
    return result


class Workspace:
    """A running workspace container and the ways the tests talk to it."""

    def __init__(self, name: str):
        self.name = name

    def logs(self) -> str:
        result = _docker("logs", "--tail", "80", self.name, check=False)
        return f"\n--- logs of {self.name} ---\n{result.stdout}{result.stderr}"

    def exec(self, *command: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return _docker("exec", "-i", self.name, *command, stdin=stdin, check=False)

    def http(self, method: str, path: str, body: dict | None = None) -> tuple[int, str]:
        args = ["python", "-c", HTTP_SNIPPET, method, path]
        if body is not None:
            args.append(json.dumps(body))
        result = self.exec(*args)
        assert result.returncode == 0, f"HTTP helper failed: {result.stderr}{self.logs()}"
        reply = json.loads(result.stdout)
        return reply["status"], reply["body"]

    def run_in_kernel(self, code: str) -> str:
        result = self.exec("python", "-c", KERNEL_SNIPPET, stdin=textwrap.dedent(code))
        assert result.returncode == 0, f"kernel driver failed: {result.stderr}{self.logs()}"
        reply = json.loads(result.stdout)
        assert reply["errors"] == [], f"kernel raised: {reply['errors']}{self.logs()}"
        return reply["stdout"]


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    return ensure_images(verbose=True)


@pytest.fixture(scope="module")
def workspace(images, tmp_path_factory):
    prefix = f"spe-test-img-{uuid.uuid4().hex[:8]}"
    data = tmp_path_factory.mktemp("extract")
    table = pa.table({"person_id": [f"p{i:03d}" for i in range(PERSONS)], "year_of_birth": list(range(1950, 1950 + PERSONS))})
    pq.write_table(table, data / "person.parquet")
    (data / "manifest.json").write_text(json.dumps({"tables": {"person": {"rows": PERSONS}}}))
    for path in [data, *data.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    tag = workspace_tag(images)
    volume = f"{prefix}-work"
    _docker("volume", "create", volume)
    # A new named volume takes the owner (1000) of the image's /home/jovyan/work on first mount.
    _docker(
        "run", "-d", "--name", prefix,
        "--user", "1000", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--read-only", "--tmpfs", "/tmp", "--network", "none", "--pids-limit", "256",
        "-v", f"{data}:/data:ro", "-v", f"{volume}:/home/jovyan/work",
        tag,
        "jupyter", "lab", f"--IdentityProvider.token={TOKEN}", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={PORT}",
    )
    ws = Workspace(prefix)
    try:
        deadline = time.monotonic() + 120
        while True:
            probe = ws.exec("python", "-c", HTTP_SNIPPET, "GET", "/api/status")
            if probe.returncode == 0 and json.loads(probe.stdout)["status"] == 200:
                break
            state = _docker("inspect", "-f", "{{.State.Running}}", prefix, check=False).stdout.strip()
            if state != "true" or time.monotonic() > deadline:
                pytest.fail(f"workspace server did not come up (running={state}){ws.logs()}")
            time.sleep(0.5)
        yield ws
    finally:
        _docker("rm", "-f", "-v", prefix, check=False)
        _docker("volume", "rm", "-f", volume, check=False)


NOTEBOOK = {
    "type": "notebook",
    "content": {
        "cells": [{"cell_type": "code", "source": "1 + 1", "metadata": {}, "outputs": [], "execution_count": None}],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    },
}


def test_image_carries_its_input_hash_and_is_reused(images):
    tag = workspace_tag(images)
    label = _docker("image", "inspect", "-f", '{{ index .Config.Labels "spe.input-hash" }}', tag).stdout.strip()
    assert tag == f"spe/workspace:{label}"
    assert images["spe/workspace:latest"] == images[tag]
    # unchanged inputs: same images, nothing rebuilt
    assert ensure_images() == images


def test_process_is_uid_1000_without_capabilities(workspace):
    assert workspace.exec("id", "-u").stdout.strip() == "1000"
    status = workspace.exec("cat", "/proc/1/status").stdout
    cap_eff = [line.split()[1] for line in status.splitlines() if line.startswith("CapEff")]
    assert cap_eff == ["0000000000000000"], workspace.logs()


def test_files_handler_is_closed(workspace):
    assert workspace.http("PUT", "/api/contents/closed.ipynb", NOTEBOOK)[0] == 201, workspace.logs()
    for path in ("/files/closed.ipynb", "/files/closed.ipynb?download=1", "/view/closed.ipynb"):
        status, body = workspace.http("GET", path)
        assert status == 403, f"{path}: {status} {body[:200]}{workspace.logs()}"
        assert "egress review" in body


def test_nbconvert_download_is_closed(workspace):
    assert workspace.http("PUT", "/api/contents/export.ipynb", NOTEBOOK)[0] == 201, workspace.logs()
    for method, path in (
        ("GET", "/nbconvert/html/export.ipynb?download=true"),
        ("GET", "/nbconvert/script/export.ipynb"),
        ("POST", "/nbconvert/html"),
    ):
        status, body = workspace.http(method, path)
        assert status == 403, f"{method} {path}: {status} {body[:200]}{workspace.logs()}"


def test_contents_api_lists_and_saves_notebooks_in_work(workspace):
    status, _ = workspace.http("PUT", "/api/contents/analysis.ipynb", NOTEBOOK)
    assert status == 201, workspace.logs()
    status, body = workspace.http("GET", "/api/contents/analysis.ipynb")
    assert status == 200
    assert json.loads(body)["content"]["cells"][0]["source"] == "1 + 1"
    status, body = workspace.http("GET", "/api/contents")
    assert status == 200
    assert "analysis.ipynb" in {item["name"] for item in json.loads(body)["content"]}
    # saved on the work volume, as uid 1000
    listing = workspace.exec("stat", "-c", "%u %n", "/home/jovyan/work/analysis.ipynb")
    assert listing.stdout.split() == ["1000", "/home/jovyan/work/analysis.ipynb"], listing.stderr


def test_contents_api_cannot_reach_data(workspace):
    for path in ("/api/contents/..%2F..%2F..%2Fdata", "/api/contents/../../../data/person.parquet", "/api/contents/%2Fdata"):
        status, body = workspace.http("GET", path)
        assert status in (403, 404), f"{path}: {status} {body[:200]}"
        assert "person_id" not in body
    # a symlink planted from a kernel does not lead the contents API out of the root either
    workspace.run_in_kernel("import os; os.symlink('/data', '/home/jovyan/work/extract-link')")
    for path in ("/api/contents/extract-link", "/api/contents/extract-link/manifest.json"):
        status, body = workspace.http("GET", path)
        assert status == 404, f"{path}: {status} {body[:200]}{workspace.logs()}"
    status, body = workspace.http("GET", "/api/contents")
    assert status == 200, workspace.logs()
    assert "extract-link" not in {item["name"] for item in json.loads(body)["content"]}


def test_kernel_reads_data_but_cannot_write_it(workspace):
    out = workspace.run_in_kernel(
        """
        import os, duckdb
        print("rows", duckdb.sql("select count(distinct person_id) from '/data/person.parquet'").fetchall()[0][0])
        for target in ("/data/leak.csv", "/opt/spe/etc/jupyter/jupyter_server_config.py", "/etc/passwd"):
            try:
                open(target, "a").close()
                print("wrote", target)
            except OSError as err:
                print("refused", target, err.errno)
        open("/home/jovyan/work/result.txt", "w").write("ok")
        print("uid", os.getuid())
        print([l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0])
        """
    )
    lines = out.splitlines()
    assert f"rows {PERSONS}" in lines, out
    assert not any(line.startswith("wrote") for line in lines), out
    assert "refused /data/leak.csv 30" in lines, out  # EROFS: the mount is read-only
    assert "uid 1000" in lines, out
    assert "0000000000000000" in lines, out


def test_libraries_import_in_a_kernel(workspace):
    out = workspace.run_in_kernel(
        """
        from importlib.metadata import version
        import duckdb, pyarrow, opendp, pandas, matplotlib, statsmodels, spe, jupyterhub
        import matplotlib.pyplot as plt
        plt.plot([1, 2]); plt.savefig("/tmp/plot.png")
        print("ok", version("opendp").split(".")[:2], jupyterhub.__version__.split(".")[0])
        """
    )
    assert out.strip() == "ok ['0', '16'] 6", out


def test_hub_single_user_server_matches_the_hub(images):
    from importlib.metadata import version

    tag = workspace_tag(images)
    result = _docker("run", "--rm", "--network", "none", tag, "jupyterhub-singleuser", "--version")
    assert result.stdout.strip() == version("jupyterhub"), result.stderr


def test_server_imports_nothing_that_builds_a_grammar_at_start(images):
    """rfc3987-syntax (via jsonschema's format-nongpl extra) builds a Lark grammar on import:
    0.75 s of every workspace start. The image removes it; jupyter-events still validates."""
    tag = workspace_tag(images)
    script = ("import importlib.util, jupyter_events.logger, jupyterhub.singleuser, sys; "
              "print(importlib.util.find_spec('rfc3987_syntax') is None, 'rfc3987_syntax' in sys.modules)")
    result = _docker("run", "--rm", "--network", "none", tag, "python", "-c", script)
    assert result.stdout.split() == ["True", "False"], result.stdout + result.stderr


def test_lab_download_commands_are_disabled(workspace):
    status, body = workspace.http("GET", "/lab")
    assert status == 200, workspace.logs()
    start = body.index('id="jupyter-config-data"')
    config = json.loads(body[body.index(">", start) + 1 : body.index("</script>", start)])
    disabled = set(config["disabledExtensions"])
    assert {
        "@jupyterlab/docmanager-extension:download",
        "@jupyterlab/filebrowser-extension:download",
        "@jupyterlab/filebrowser-extension:open-browser-tab",
        "@jupyterlab/notebook-extension:export",
    } <= disabled, disabled
