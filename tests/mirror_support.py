"""A running package mirror process (`python -m hub.mirror.serve`) over a directory, for tests."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import requests

from hub.hubapp.process import free_loopback_port
from tests.conftest import REPO, stop_process


class MirrorProcess:
    def __init__(self, root: Path, log: Path):
        self.root = root
        self.port = free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "hub.mirror.serve", "--root", str(root), "--port",
                                          str(self.port)], cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(self.url + "health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the mirror did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)

    def index(self, token: str) -> str:
        return f"{self.url}{token}/simple/"

    def stop(self) -> None:
        if self.proc.poll() is None:
            stop_process(self.proc)
