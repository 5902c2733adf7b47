"""The package mirror for real: `spe mirror add/list/remove` on a real registry and directory, the
mirror process (pypiserver) serving each permit's index under its token, and pip fetching from it.
No index on the internet: wheels are made here, and the operator side downloads from a second
mirror process standing in for the upstream index."""

from __future__ import annotations

import json
import stat
import subprocess
import sys

import pytest
import requests
import sqlalchemy as sa

from hub.audit.tables import audit_events
from hub.identity import local_operator
from hub.mirror.store import PackageMirror
from hub.mirror.tables import mirror_wheels
from tests.conftest import EXAMPLES
from tests.mirror_support import MirrorProcess
from tests.wheels import make_wheel

P1, P2 = "DEMO-2026-001", "DEMO-2026-002"


@pytest.fixture(autouse=True)
def permits(spe):
    """The two demo permits, applied through the CLI."""
    for args in (("dataset", "add-example"), ("permit", "apply", str(EXAMPLES / "demo-gibleed.yaml")),
                 ("permit", "apply", str(EXAMPLES / "demo-second.yaml"))):
        assert spe(*args)[0] == 0


@pytest.fixture
def wheels(tmp_path):
    d = tmp_path / "wheels"
    d.mkdir()
    return {name: make_wheel(d, name, "1.0", f"NAME = {name!r}\n") for name in ("alpha-pkg", "beta-pkg", "gamma-pkg")}


@pytest.fixture
def mirror(settings):
    proc = MirrorProcess(settings.mirror_dir, settings.home / "mirror.log")
    yield proc
    proc.stop()


def events(engine, action):
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(audit_events).where(audit_events.c.action == action)
                                              .order_by(audit_events.c.seq)).mappings()]


def pip_download(index_url: str, requirement: str, dest) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "--isolated", "download", "--no-deps", "--only-binary=:all:",
                           "--index-url", index_url, "--dest", str(dest), requirement],
                          capture_output=True, text=True, timeout=120)


def test_operator_adds_lists_and_removes_a_wheel_audited(spe, settings, engine, wheels):
    code, out, err = spe("mirror", "add", str(wheels["alpha-pkg"]), "--permit", P1)
    assert code == 0, err
    token = PackageMirror(engine, settings.mirror_dir).token(P1)
    served = settings.mirror_dir / token / wheels["alpha-pkg"].name
    assert served.read_bytes() == wheels["alpha-pkg"].read_bytes()
    assert stat.S_IMODE(served.stat().st_mode) == 0o444  # nobody writes a published wheel
    assert not list((settings.mirror_dir / ".staging").iterdir())  # nothing left half-published
    code, out, _ = spe("mirror", "list", "--permit", P1, "--json")
    (row,) = json.loads(out)
    assert (row["index"], row["project"], row["version"], row["present"], row["added_by"]) == (
        P1, "alpha-pkg", "1.0", True, local_operator().actor)  # the Unix account, not $SPE_ACTOR (hub.identity)
    (added,) = events(engine, "mirror.add")
    assert added["permit_id"] == P1 and json.loads(added["detail"])["sha256"] == row["sha256"]
    code, out, err = spe("mirror", "remove", "alpha-pkg==1.0", "--permit", P1, "--reason", "not needed")
    assert code == 0, err
    assert not served.exists() and json.loads(spe("mirror", "list", "--json")[1]) == []
    (removed,) = events(engine, "mirror.remove")
    assert json.loads(removed["detail"])["files"] == {row["filename"]: row["sha256"]}


def test_bad_mirror_commands_are_one_line_and_store_nothing(spe, settings, engine, wheels, tmp_path):
    assert spe("mirror", "add", str(wheels["alpha-pkg"]), "--all")[0] == 0
    before = sorted(p.relative_to(settings.mirror_dir) for p in settings.mirror_dir.rglob("*"))
    with engine.connect() as conn:
        rows_before = conn.execute(sa.select(mirror_wheels)).all()
    impostor = tmp_path / "delta_pkg-1.0-py3-none-any.whl"
    impostor.write_bytes(wheels["beta-pkg"].read_bytes())  # beta's bytes under another release's name
    for args, message in [
        (("add", str(wheels["beta-pkg"]), "--permit", "NO-SUCH-PERMIT"), "no permit 'NO-SUCH-PERMIT'"),
        (("add", "six>=1.0", "--all"), "NAME==VERSION"),
        (("add", str(tmp_path / "missing-1.0-py3-none-any.whl"), "--all"), "no such wheel file"),
        (("add", str(impostor), "--all"), "METADATA names"),
        (("add", str(wheels["alpha-pkg"]), "--all"), "already in the shared index"),
        (("remove", "gamma-pkg==1.0", "--all"), "gamma-pkg==1.0 is not in the shared index"),
    ]:
        code, out, err = spe("mirror", *args)
        assert code == 2, (args, out, err)
        assert err.startswith("spe: error:") and message in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.relative_to(settings.mirror_dir) for p in settings.mirror_dir.rglob("*")) == before
    with engine.connect() as conn:
        assert conn.execute(sa.select(mirror_wheels)).all() == rows_before
    assert len(events(engine, "cli.mirror.add")) == 5  # each refusal is on the record


def test_each_permit_sees_its_own_index_and_the_shared_one(spe, settings, engine, wheels, mirror, tmp_path):
    assert spe("mirror", "add", str(wheels["alpha-pkg"]), "--permit", P1)[0] == 0
    assert spe("mirror", "add", str(wheels["beta-pkg"]), "--permit", P2)[0] == 0
    assert spe("mirror", "add", str(wheels["gamma-pkg"]), "--all")[0] == 0
    store = PackageMirror(engine, settings.mirror_dir)
    t1, t2 = store.token(P1), store.token(P2)
    assert t1 != t2
    listing = requests.get(mirror.index(t1), timeout=10).text
    assert "alpha-pkg" in listing and "gamma-pkg" in listing and "beta-pkg" not in listing
    for requirement, ok in (("alpha-pkg==1.0", True), ("gamma-pkg==1.0", True), ("beta-pkg==1.0", False)):
        done = pip_download(mirror.index(t1), requirement, tmp_path / "dl")
        assert (done.returncode == 0) is ok, (requirement, done.stderr[-500:])
    # a guessed token sees the shared index only; the fallback to PyPI is off (a 404, no redirect)
    guess = "f" * 32
    assert "alpha-pkg" not in requests.get(mirror.index(guess), timeout=10).text
    r = requests.get(mirror.index(t1) + "six/", timeout=10, allow_redirects=False)
    assert r.status_code == 404
    # read-only, and nothing outside the indexes
    for method, path in (("POST", f"{t1}/"), ("PUT", f"{t1}/packages/x.whl"), ("DELETE", f"{t1}/packages/x")):
        assert requests.request(method, mirror.url + path, timeout=10).status_code == 405
    for path in (".staging/", f"{t1}/../shared/", "shared/simple/", f"{t1}/packages/../../registry.db", "registry.db"):
        assert requests.get(mirror.url + path, timeout=10).status_code == 404, path
    # a wheel placed a moment ago is served at once (the directory is read at each request)
    assert spe("mirror", "add", str(wheels["beta-pkg"]), "--permit", P1)[0] == 0
    assert pip_download(mirror.index(t1), "beta-pkg==1.0", tmp_path / "dl2").returncode == 0


def test_the_operator_side_downloads_from_the_configured_index(spe, settings, engine, wheels, tmp_path):
    upstream_dir = tmp_path / "upstream"
    (upstream_dir / "shared").mkdir(parents=True)
    (upstream_dir / "shared" / wheels["alpha-pkg"].name).write_bytes(wheels["alpha-pkg"].read_bytes())
    upstream = MirrorProcess(upstream_dir, tmp_path / "upstream.log")
    try:
        index = upstream.index("0" * 32)
        code, out, err = spe("mirror", "add", "alpha-pkg==1.0", "--permit", P1, "--index-url", index)
        assert code == 0, err
        assert f"downloading alpha-pkg==1.0 from {index}" in out
        (row,) = PackageMirror(engine, settings.mirror_dir).list(P1)
        assert row["source"] == index and row["present"]
        code, _, err = spe("mirror", "add", "no-such-pkg==1.0", "--permit", P1, "--index-url", index)
        assert code == 2 and "no-such-pkg==1.0 cannot be fetched" in err and "No matching distribution" in err
        assert len(PackageMirror(engine, settings.mirror_dir).list()) == 1  # nothing else stored
    finally:
        upstream.stop()
