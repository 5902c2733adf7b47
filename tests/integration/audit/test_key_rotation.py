"""Key rotation: the old key signs the head a last time and is destroyed, its public key is kept;
`spe audit verify` checks every checkpoint with the key it names, packs anchor on the new key,
purge still works, and a checkpoint forged with an unknown key is still refused."""

from __future__ import annotations

import json

from hub.audit.checkpoint import KEY_FILE, RETIRED_FILE, checkpoint_message
from hub.cli import main
from hub.db import make_engine

from .helpers import append, rows, tamper


def test_rotation_keeps_old_checkpoints_verifiable(tmp_path, capsys):
    home = tmp_path / "home"
    home.mkdir()
    engine = make_engine(f"sqlite:///{home / 'registry.db'}")
    cli = ["--home", str(home)]
    append(engine, 3)
    assert main([*cli, "audit", "checkpoint"]) == 0
    old_pem = (home / "keys" / KEY_FILE).read_bytes()
    capsys.readouterr()
    assert main([*cli, "audit", "rotate-key"]) == 0
    assert "retired" in capsys.readouterr().out
    assert (home / "keys" / KEY_FILE).read_bytes() != old_pem  # the old private key is gone
    assert len((home / "keys" / RETIRED_FILE).read_text().splitlines()) == 1
    rotated = [r for r in rows(engine) if r["action"] == "audit.rotate_key"]
    detail = json.loads(rotated[0]["detail"])
    assert detail["old_key_id"] != detail["new_key_id"]
    append(engine, 2, start=3)
    assert main([*cli, "audit", "checkpoint"]) == 0
    capsys.readouterr()
    assert main([*cli, "audit", "verify"]) == 0
    assert "signatures checked" in capsys.readouterr().out

    pub = tmp_path / "operator.pub"
    assert main([*cli, "audit", "public-key", "--all"]) == 0
    pub.write_text(capsys.readouterr().out)
    assert len(pub.read_text().splitlines()) == 2
    assert main([*cli, "audit", "verify", "--public-key", str(pub)]) == 0
    pack = tmp_path / "pack.jsonl"
    assert main([*cli, "audit", "export", "--permit", "P-1", "-o", str(pack)]) == 0
    assert {json.loads(line)["key_id"] for line in pack.read_text().splitlines()
            if json.loads(line)["type"] == "checkpoint"} == {detail["new_key_id"]}
    capsys.readouterr()
    assert main([*cli, "audit", "verify-pack", str(pack), "--public-key", str(pub)]) == 0
    assert "evidence pack verified" in capsys.readouterr().out

    # a checkpoint that names a key nobody knows is still a forgery
    tamper(engine, "UPDATE audit_checkpoints SET key_id = 'feedfeedfeedfeed' WHERE id = 1")
    assert main([*cli, "audit", "verify"]) == 4
    assert "(bad_signature)" in capsys.readouterr().out
    assert checkpoint_message(1, "a" * 64, "t", "rotate").endswith(b"rotate")


def test_purge_after_rotation(tmp_path, capsys):
    from datetime import datetime, timedelta, timezone

    from hub.audit.store import utc_now_iso

    home = tmp_path / "home"
    home.mkdir()
    engine = make_engine(f"sqlite:///{home / 'registry.db'}")
    cli = ["--home", str(home)]
    append(engine, 3, ts=utc_now_iso(datetime.now(timezone.utc) - timedelta(days=800)))
    assert main([*cli, "audit", "checkpoint"]) == 0
    assert main([*cli, "audit", "rotate-key"]) == 0
    capsys.readouterr()
    assert main([*cli, "audit", "purge", "--retention-days", "365"]) == 0
    assert "purged 3 events" in capsys.readouterr().out
    assert main([*cli, "audit", "verify"]) == 0
