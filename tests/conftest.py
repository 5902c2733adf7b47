"""Shared fixtures: an isolated SPE home with its own SQLite registry, and the Eunomia example."""

from __future__ import annotations

import shutil
import subprocess
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
