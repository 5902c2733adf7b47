"""Audit test fixtures: the same tests against SQLite and a throwaway PostgreSQL 15 cluster.

The cluster is created with Debian's initdb/pg_ctl in a temp dir, as user `postgres` when the
tests run as root (PostgreSQL refuses to run as root), on a free port, fsync off; each test
gets its own database.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from hub.db import dispose_engines, make_engine
from hub.hubapp.process import free_loopback_port as free_port  # noqa: E402

PG_BIN = Path(os.environ.get("SPE_PG_BIN", "/usr/lib/postgresql/15/bin"))




def _as_pg(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def pg_server():
    root = Path(tempfile.mkdtemp(prefix="spe-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    os.chmod(root, 0o700)
    port = free_port()
    subprocess.run(_as_pg([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                           "--no-sync", "-E", "UTF8"]), check=True, capture_output=True)
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
    started = subprocess.run(_as_pg([str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"),
                                     "-w", "-t", "60", "start"]), capture_output=True, text=True)
    if started.returncode != 0:
        log = (root / "log").read_text() if (root / "log").exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {started.stderr}\n{log}")
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_pg([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _create_pg_db(base_url: str) -> str:
    import psycopg2

    name = "t_" + uuid.uuid4().hex[:12]
    port = base_url.rsplit(":", 1)[1]
    conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    return f"{base_url}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'registry.db'}"
    else:
        url = _create_pg_db(request.getfixturevalue("pg_server"))
    yield url
    dispose_engines()


@pytest.fixture
def audit_engine(db_url):
    return make_engine(db_url)
