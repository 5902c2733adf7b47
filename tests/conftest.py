"""Shared fixtures: an isolated SPE home with its own SQLite registry, and the Eunomia example."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from egress.extension import install as install_egress
from hub.db import dispose_engines, make_engine
from hub.settings import Settings

# The tests use hub and egress together, as the `spe` CLI and the egress service do: egress's
# tables, metric groups and register rows are registered with hub (hub.extensions) once.
install_egress()

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "permits"


@pytest.fixture
def settings(tmp_path) -> Settings:
    s = Settings(home=tmp_path / "spe", db_url=f"sqlite:///{tmp_path / 'spe' / 'registry.db'}", actor="tester")
    s.ensure_dirs()
    yield s
    dispose_engines()


@pytest.fixture
def engine(settings):
    return make_engine(settings.db_url)


@pytest.fixture
def eunomia(engine):
    from hub.datasets.example import DESCRIPTOR, eunomia_path
    from hub.datasets.registry import add_dataset

    ds, _ = add_dataset(engine, name="eunomia", kind="omop-duckdb", source=eunomia_path(),
                        descriptor_path=DESCRIPTOR, actor="tester")
    return ds


@pytest.fixture
def spe(settings, monkeypatch, capsys):
    """Run `spe ARGS...` in-process on the test's SPE home as operator olga: (exit code, stdout, stderr)."""
    from hub.cli import main

    monkeypatch.setenv("SPE_HOME", str(settings.home))
    monkeypatch.setenv("SPE_DB_URL", settings.db_url)
    monkeypatch.setenv("SPE_ACTOR", "olga")

    def run(*args):
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def host_listener():
    """A TCP service the test opens on every host address (0.0.0.0) on a random port."""
    import http.server
    import threading

    server = http.server.HTTPServer(("0.0.0.0", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def stop_process(proc: subprocess.Popen, timeout_seconds: float = 20) -> None:
    """Terminate a server a test started; kill it if it does not stop in time."""
    proc.terminate()
    try:
        proc.wait(timeout_seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def copy_example(name: str, dest: Path) -> Path:
    target = dest / name
    shutil.copy(EXAMPLES / name, target)
    return target


# A real hub for the workspace tests (integration and e2e share one per session).
from tests.hubfixture import spe_hub  # noqa: E402,F401

# Fixtures that reach a Docker engine, and top-level packages whose import means one of the
# tiers: a test using them must carry the marker, so `-m "not docker and not browser"` is the pure tier.
DOCKER_FIXTURES = {"spe_hub"}
TIER_PACKAGES = {"docker": "docker", "playwright": "browser"}


def _tiers_of_module(module) -> set[str]:
    tiers = set()
    for value in vars(module).values():
        top = (getattr(value, "__module__", None) or getattr(value, "__name__", None) or "").split(".")[0]
        if top in TIER_PACKAGES and (isinstance(value, type(sys)) or callable(value)):
            tiers.add(TIER_PACKAGES[top])
    return tiers


def pytest_collection_modifyitems(config, items):
    """Keep the map of tiers true: refuse to run a test that needs Docker or Chromium unmarked."""
    unmarked = []
    for item in items:
        needs = _tiers_of_module(item.module) if getattr(item, "module", None) else set()
        if DOCKER_FIXTURES & set(getattr(item, "fixturenames", ())):
            needs.add("docker")
        missing = sorted(t for t in needs if item.get_closest_marker(t) is None)
        if missing:
            unmarked.append(f"{item.nodeid}: needs {', '.join(missing)} but lacks @pytest.mark.{missing[0]}")
    if unmarked:
        raise pytest.UsageError("unmarked tier tests (see tests/conftest.py):\n" + "\n".join(unmarked))
