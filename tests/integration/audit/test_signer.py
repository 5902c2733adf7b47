"""The audit signer process holds the checkpoint key: a process of another account (standing for
the hub's) cannot open the key but gets checkpoints signed through the socket, and only
checkpoint messages; `spe audit` signs and verifies through it without a key in the SPE home."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from hub.audit.checkpoint import KEY_FILE, checkpoint_message
from hub.audit.signer import SOCKET_NAME, _SocketKey, answer, remote_signer
from hub.cli import main
from hub.db import make_engine

from .helpers import append

NOBODY = 65534


@pytest.fixture
def signer_proc(tmp_path):
    home = Path(tempfile.mkdtemp(prefix="spe-signer-home-"))
    os.chmod(home, 0o755)  # the other account reaches the socket, nothing else in here
    keys = tmp_path / "signer-keys"
    log = tmp_path / "signer.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "hub.audit.signer", "--keys", str(keys), "--socket",
                                 str(home / SOCKET_NAME), "--mode", "666"], stderr=err)
    try:
        deadline = time.monotonic() + 120
        while not (home / SOCKET_NAME).exists():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the signer did not start"
            time.sleep(0.1)
        yield home, keys
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(home, ignore_errors=True)


def _as_nobody(fn) -> dict:
    """Run `fn` in a child process that dropped to the unprivileged account; its dict result."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            out = fn()
        except BaseException as err:  # report, never raise in the child
            out = {"error": f"{type(err).__name__}: {err}"}
        os.write(write, json.dumps(out).encode())
        os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 65536):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    return json.loads(data)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another account (the suite runs as root)")
def test_another_account_cannot_open_the_key_but_gets_checkpoints_signed(signer_proc):
    home, keys = signer_proc
    sock = home / SOCKET_NAME
    message = checkpoint_message(7, "ab" * 32, "2026-01-01T00:00:00.000000Z", "periodic")

    def hub_side():
        out = {}
        try:
            open(keys / KEY_FILE, "rb").close()
            out["key"] = "opened"
        except PermissionError:
            out["key"] = "denied"
        signer = remote_signer(sock)
        out["key_id"] = signer.key_id
        out["verified"] = signer.verifier().check(message, signer.sign(message))
        try:
            _SocketKey(sock).ask({"op": "sign", "message": "transfer 1000 EUR"})
            out["arbitrary"] = "signed"
        except RuntimeError as err:
            out["arbitrary"] = str(err)
        return out

    got = _as_nobody(hub_side)
    assert got.get("key") == "denied", got
    assert got["verified"] is True
    assert "only spe-audit-checkpoint/1 messages are signed" in got["arbitrary"]
    assert got["key_id"] == remote_signer(sock).key_id


def test_spe_audit_signs_through_the_signer(signer_proc, capsys):
    home, keys = signer_proc
    engine = make_engine(f"sqlite:///{home / 'registry.db'}")
    append(engine, 3)
    assert main(["--home", str(home), "audit", "checkpoint"]) == 0
    assert not (home / "keys" / KEY_FILE).exists()  # no key beside the data
    capsys.readouterr()
    assert main(["--home", str(home), "audit", "verify"]) == 0
    assert "signatures checked" in capsys.readouterr().out
    assert main(["--home", str(home), "audit", "public-key"]) == 0
    assert remote_signer(home / SOCKET_NAME).key_id in capsys.readouterr().out
    assert main(["--home", str(home), "audit", "rotate-key"]) == 2
    assert "held by the audit signer process" in capsys.readouterr().err


def test_the_signer_answers_only_its_two_questions():
    from hub.audit.checkpoint import load_or_create_signer

    signer = load_or_create_signer(Path(tempfile.mkdtemp()))
    assert answer(signer, {"op": "public_key"})["key_id"] == signer.key_id
    assert "error" in answer(signer, {"op": "sign", "message": "spe-audit-checkpoint/1\n1\nxyz\nt\nperiodic"})
    assert "error" in answer(signer, {"op": "delete"}) and "error" in answer(signer, ["op"])
    ok = answer(signer, {"op": "sign", "message": checkpoint_message(1, "cd" * 32, "2026-01-01T00:00:00Z", "export")
                         .decode()})
    assert signer.verifier().check(checkpoint_message(1, "cd" * 32, "2026-01-01T00:00:00Z", "export"), ok["signature"])
