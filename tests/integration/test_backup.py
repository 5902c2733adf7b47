"""`spe backup create|restore` on a real home: registry (SQLite online backup), audit trail with a
signed checkpoint, a provisioned extract, egress's blob store (through egress's own BlobStore),
the site's hdab.yaml; restore into a fresh home verifies the audit trail and gives back the same
permits and files. A non-empty target, an altered, a truncated, a missing and an unlisted file
are refused with the entry named and nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from egress.store import BlobStore
from hub.backup.archive import sha256_file
from hub.cli import main
from tests.conftest import EXAMPLES

DEFAULT_HDAB = Path(__file__).resolve().parents[2] / "hub" / "frontoffice" / "defaults" / "hdab.yaml"


@pytest.fixture
def backed_up(spe, settings, tmp_path):
    assert spe("dataset", "add-example")[0] == 0
    assert spe("permit", "apply", str(EXAMPLES / "demo-gibleed.yaml"))[0] == 0
    assert spe("permit", "provision", "DEMO-2026-001")[0] == 0
    assert spe("audit", "checkpoint")[0] == 0  # creates the signing key: the restore checks the signature
    shutil.copy(DEFAULT_HDAB, settings.home / "hdab.yaml")
    blob = BlobStore(settings.store_dir).put(b"a released table\n")
    dest = tmp_path / "backup"
    code, out, err = spe("backup", "create", str(dest))
    assert code == 0, err
    return {"dir": dest, "blob": blob, "out": out}


def restore_into(home: Path, backup: Path, capsys) -> tuple[int, str, str]:
    code = main(["--home", str(home), "--db-url", f"sqlite:///{home / 'registry.db'}", "--actor", "olga",
                 "backup", "restore", str(backup)])
    out = capsys.readouterr()
    return code, out.out, out.err


def run_in(home: Path, capsys, *args) -> tuple[int, str, str]:
    code = main(["--home", str(home), "--db-url", f"sqlite:///{home / 'registry.db'}", "--actor", "olga", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def files_of(home: Path, sub: str) -> dict:
    root = home / sub
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in root.rglob("*") if p.is_file()}


def test_backup_lists_every_part_with_its_hash(backed_up, settings):
    manifest = json.loads((backed_up["dir"] / "manifest.json").read_text())
    paths = {f["path"] for f in manifest["files"]}
    assert manifest["registry"] == "sqlite" and "data/registry.db" in paths
    assert "data/hdab.yaml" in paths
    assert any(p.startswith("data/extracts/DEMO-2026-001/") and p.endswith(".parquet") for p in paths)
    assert any(p.startswith("data/egress-store/") for p in paths)  # named by egress's backup hook
    assert any(p.startswith("sealed-keys/") for p in paths) and not any(p.startswith("data/keys/") for p in paths)
    for f in manifest["files"]:
        assert sha256_file(backed_up["dir"] / f["path"]) == (f["bytes"], f["sha256"])


def test_restore_into_a_fresh_home_verifies_and_gives_everything_back(backed_up, settings, tmp_path, capsys):
    new = tmp_path / "restored"
    code, out, err = restore_into(new, backed_up["dir"], capsys)
    assert code == 0, err
    assert "audit trail verifies" in out
    code, out, _ = run_in(new, capsys, "audit", "verify")
    assert code == 0 and "intact" in out
    code, out, _ = run_in(new, capsys, "permit", "show", "DEMO-2026-001")
    assert code == 0 and json.loads(out)["status"] == "active"
    assert files_of(new, "extracts") == files_of(settings.home, "extracts")
    assert files_of(new, "keys") == files_of(settings.home, "keys")
    assert BlobStore(new / "egress-store").get(backed_up["blob"]) == b"a released table\n"
    assert (new / "hdab.yaml").read_bytes() == (settings.home / "hdab.yaml").read_bytes()
    assert not list(new.glob(".restore-staging*"))


def test_restore_refuses_a_home_that_is_not_empty(backed_up, tmp_path, capsys):
    new = tmp_path / "busy"
    new.mkdir()
    (new / "registry.db").write_text("someone's registry")
    code, _, err = restore_into(new, backed_up["dir"], capsys)
    assert code == 2 and "is not empty (registry.db)" in err
    assert (new / "registry.db").read_text() == "someone's registry"


@pytest.mark.parametrize("damage, named", [
    ("alter", "SHA-256 differs"), ("truncate", "truncated or altered"), ("remove", "missing"),
    ("add", "not in the manifest"),
])
def test_restore_refuses_a_damaged_backup_naming_the_entry(backed_up, tmp_path, capsys, damage, named):
    manifest = json.loads((backed_up["dir"] / "manifest.json").read_text())
    victim = next(f["path"] for f in manifest["files"] if f["path"].endswith(".parquet"))
    path = backed_up["dir"] / victim
    if damage == "alter":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:-10])
    elif damage == "remove":
        path.unlink()
    else:
        victim = "data/extracts/smuggled.txt"
        (backed_up["dir"] / victim).write_text("not from the backup")
    new = tmp_path / "target"
    code, _, err = restore_into(new, backed_up["dir"], capsys)
    assert code == 2, err
    assert victim in err and named in err and "nothing written" in err
    assert not (new / "registry.db").exists() and not any(p.is_file() and p.name != "spe.log" for p in new.rglob("*"))


def test_manifest_hash_given_at_restore_is_checked(backed_up, tmp_path, capsys):
    sha = backed_up["out"].split("manifest SHA-256: ")[1].split()[0]
    new = tmp_path / "checked"
    code = main(["--home", str(new), "--db-url", f"sqlite:///{new / 'registry.db'}", "backup", "restore",
                 str(backed_up["dir"]), "--manifest-sha256", "0" * 64])
    assert code == 2 and "does not have the SHA-256" in capsys.readouterr().err
    assert not (new / "registry.db").exists()
    code = main(["--home", str(new), "--db-url", f"sqlite:///{new / 'registry.db'}", "backup", "restore",
                 str(backed_up["dir"]), "--manifest-sha256", sha])
    assert code == 0, capsys.readouterr().err


def test_not_a_backup_is_refused(tmp_path, capsys):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "manifest.json").write_text("{not json")
    code, _, err = restore_into(tmp_path / "t", tmp_path / "junk", capsys)
    assert code == 2 and "manifest.json is not JSON" in err


def test_backup_into_a_non_empty_directory_is_refused(backed_up, spe):
    code, _, err = spe("backup", "create", str(backed_up["dir"]))
    assert code == 2 and "is not empty" in err
