"""Write a backup of an SPE home, and restore one into an empty home (the I/O of hub.backup).

Consistent while the services run: the registry is copied first (SQLite's online backup
API, or `pg_dump` for PostgreSQL), then the files. Everything the registry refers to is
written before the row that refers to it (content-addressed egress blobs, extract versions
switched atomically), so the files copied after it hold at least what it names.

Restore refuses, before writing anything: a target home that holds anything but empty
directories and `spe.log`; a manifest that is not SPE's; a file that is missing, altered,
truncated or not listed (the first one named). It then writes into a staging directory in
the target, verifies the audit chain there (with the restored signing key's checkpoints),
and only then moves the files into place. Must not import `egress`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

from hub import extensions
from hub.backup.manifest import (DATA, KEYS, MANIFEST, REGISTRY_PGDUMP, REGISTRY_SQLITE, Entry, check_entries,
                                 make_manifest, parse_manifest)
from hub.exceptions import Conflict, Failure, InvalidInput
from hub.settings import Settings

SQLITE_MAGIC = b"SQLite format 3\x00"
# the hub's own state worth keeping (logs, pid files, the socket and the generated supervisord.conf are not)
HUB_STATE = ("jupyterhub.sqlite", "cookie_secret", "demo-users.json", "service-tokens.json", "supervised-ports.json")
SITE_FILES = ("hdab.yaml", "fees.yaml")
ALLOWED_IN_EMPTY_HOME = {"spe.log"}  # what any `spe` command writes before it runs
STAGING = ".restore-staging"

Progress = Callable[[str], None]


def sha256_file(path: Path) -> tuple[int, str]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def sqlite_path(db_url: str) -> Path | None:
    """The file of a `sqlite:///…` URL, or None for another database."""
    if not db_url.startswith("sqlite:///"):
        return None
    return Path(db_url[len("sqlite:///"):])


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(16) == SQLITE_MAGIC
    except OSError:
        return False


def _sqlite_copy(src: Path, dst: Path) -> None:
    """A consistent copy of a live SQLite database (online backup API)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=60) as source, sqlite3.connect(dst) as target:
        source.backup(target)
    target.close()
    source.close()


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if _is_sqlite(src):
        _sqlite_copy(src, dst)
    else:
        shutil.copy2(src, dst)


def _files_under(root: Path) -> Iterable[Path]:
    if root.is_file():
        yield root
        return
    if not root.is_dir():
        return
    for dirpath, _dirs, files in os.walk(root):
        for name in sorted(files):
            yield Path(dirpath) / name


def backup_roots(settings: Settings) -> list[Path]:
    """The directories and files of the home that a backup holds (besides the registry and keys):
    hub's own, then what each registered extension names (`Extension.backup_paths`)."""
    roots = [settings.extracts_dir, settings.mirror_dir, *(settings.hub_dir / n for n in HUB_STATE),
             *(settings.home / n for n in SITE_FILES)]
    for ext in extensions.installed():
        if ext.backup_paths is not None:
            roots.extend(Path(p) for p in ext.backup_paths(settings))
    out = []
    for root in roots:
        resolved = root.resolve()
        if not resolved.is_relative_to(settings.home.resolve()):
            raise InvalidInput(f"backup path {root} is outside SPE_HOME {settings.home}")
        if resolved not in out:
            out.append(resolved)
    return out


def create(settings: Settings, dest: Path, progress: Progress = print) -> dict:
    """Write a backup of `settings.home` into the new directory `dest`; return the manifest."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise Conflict(f"{dest} is not empty: a backup goes into a new or empty directory")
    home = settings.home.resolve()
    if dest.resolve().is_relative_to(home):
        raise InvalidInput(f"{dest} is inside SPE_HOME; write backups elsewhere", field="dir")
    dest.mkdir(parents=True, exist_ok=True)
    entries: list[Entry] = []

    def add(relpath: str) -> None:
        size, digest = sha256_file(dest / relpath)
        entries.append(Entry(relpath, size, digest))

    # 1. the registry first: every file it names is written before it
    db_file = sqlite_path(settings.db_url)
    if db_file is not None:
        if not db_file.is_file():
            raise InvalidInput(f"no registry at {db_file}", field="db-url")
        progress(f"registry: SQLite online backup of {db_file}")
        _sqlite_copy(db_file, dest / REGISTRY_SQLITE)
        add(REGISTRY_SQLITE)
        registry = "sqlite"
    else:
        progress("registry: pg_dump")
        (dest / DATA).mkdir(exist_ok=True)
        _run(["pg_dump", "--format=custom", "--no-owner", f"--file={dest / REGISTRY_PGDUMP}",
              _libpq_url(settings.db_url)], "pg_dump")
        add(REGISTRY_PGDUMP)
        registry = "postgres"
    # 2. the files
    for root in backup_roots(settings):
        count = 0
        for path in _files_under(root):
            rel = f"{DATA}/{path.relative_to(home).as_posix()}"
            _copy(path, dest / rel)
            add(rel)
            count += 1
        if count:
            progress(f"{root.relative_to(home)}: {count} file(s)")
    # 3. the key store, apart: it is what makes pseudonyms and checkpoints trustworthy
    keys = list(_files_under(settings.keys_dir))
    for path in keys:
        rel = f"{KEYS}/{path.relative_to(settings.keys_dir).as_posix()}"
        _copy(path, dest / rel)
        os.chmod(dest / rel, 0o600)
        add(rel)
    if keys:
        os.chmod(dest / KEYS, 0o700)
        progress(f"keys: {len(keys)} file(s) in {dest / KEYS} (seal and store them apart from the rest)")
    from importlib.metadata import PackageNotFoundError, version

    try:
        spe_version = version("spe")
    except PackageNotFoundError:
        spe_version = "unknown"
    manifest = make_manifest(entries, created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                             registry=registry, spe_version=spe_version)
    import json

    raw = (json.dumps(manifest, indent=1) + "\n").encode()
    (dest / MANIFEST).write_bytes(raw)
    return {**manifest, "manifest_sha256": hashlib.sha256(raw).hexdigest()}


def _libpq_url(db_url: str) -> str:
    """SQLAlchemy's postgresql+driver:// URL as libpq reads it."""
    scheme, rest = db_url.split("://", 1)
    return "postgresql://" + rest if scheme.startswith("postgresql") else db_url


def _run(cmd: list[str], what: str) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    except FileNotFoundError:
        raise Failure(f"{what} is not installed (apt-get install postgresql-client)") from None
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise Failure(f"{what} failed: {lines[-1] if lines else proc.returncode}")


def _check_empty_home(home: Path) -> None:
    if not home.exists():
        return
    for dirpath, _dirs, files in os.walk(home):
        for name in files:
            path = Path(dirpath) / name
            if path.parent == home and name in ALLOWED_IN_EMPTY_HOME:
                continue
            raise Conflict(f"{home} is not empty ({path.relative_to(home)}): restore only into an empty SPE_HOME")


def check_backup(src: Path, manifest_sha256: str | None = None) -> tuple[dict, list[Entry]]:
    """Read and check a backup: the manifest (against `manifest_sha256` when given: the hash
    printed at creation, which catches a rewritten manifest), then every file's size and hash.
    Raises InvalidInput naming the first bad entry; writes nothing."""
    src = Path(src)
    try:
        raw = (src / MANIFEST).read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"{src} holds no {MANIFEST}: not an SPE backup", field="dir") from None
    if manifest_sha256 is not None and hashlib.sha256(raw).hexdigest() != manifest_sha256.strip().lower():
        raise InvalidInput(f"backup refused, nothing written: {MANIFEST} does not have the SHA-256 you gave "
                           "(rewritten or another backup)", field="manifest-sha256")
    text = raw.decode("utf-8", errors="replace")
    try:
        doc, entries = parse_manifest(text)
    except ValueError as err:
        raise InvalidInput(str(err), field="dir") from None
    found = {}
    for path in _files_under(src):
        rel = path.relative_to(src).as_posix()
        if rel != MANIFEST:
            found[rel] = sha256_file(path)
    problem = check_entries(entries, found)
    if problem:
        raise InvalidInput(f"backup refused, nothing written: {problem}", field="dir")
    return doc, entries


def restore(src: Path, settings: Settings, progress: Progress = print, manifest_sha256: str | None = None) -> dict:
    """Restore the backup `src` into the empty `settings.home` (and its registry); return the
    audit verification as a dict. Nothing is written unless the backup checks out."""
    home = settings.home
    _check_empty_home(home)
    doc, entries = check_backup(src, manifest_sha256)
    progress(f"backup of {doc['created_at']}: {len(entries)} file(s), every hash matches")
    db_file = sqlite_path(settings.db_url)
    if doc["registry"] == "sqlite" and db_file is None:
        raise InvalidInput("the backup holds a SQLite registry but SPE_DB_URL names another database; "
                           "restore into a SQLite home, or export from there", field="db-url")
    if doc["registry"] == "postgres" and db_file is not None:
        raise InvalidInput("the backup holds a PostgreSQL registry: set SPE_DB_URL to an empty PostgreSQL "
                           "database to restore it into", field="db-url")
    home.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING, dir=home))
    try:
        for e in entries:
            top, rest = e.path.split("/", 1)
            target = (staging / "keys" / rest) if top == KEYS else (staging / rest)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(src) / e.path, target)
            if top == KEYS:
                os.chmod(target, 0o600)
        if (staging / "keys").is_dir():
            os.chmod(staging / "keys", 0o700)
        result = _verify_restored(staging, settings, doc["registry"], db_file, progress)
        for child in sorted(staging.iterdir()):
            dest = home / child.name
            if child.name == "registry.db" and db_file is not None:
                dest = db_file
                dest.parent.mkdir(parents=True, exist_ok=True)
            elif child.name == "registry.pgdump":
                continue
            if dest.is_dir():  # only empty directories `spe` made before this command ran (checked above)
                if any(p.is_file() for p in dest.rglob("*")):
                    raise Conflict(f"{dest} filled up during the restore; nothing more moved")
                shutil.rmtree(dest)
            os.replace(child, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result


def _verify_restored(staging: Path, settings: Settings, registry: str, db_file: Path | None,
                     progress: Progress) -> dict:
    """Load the restored registry (SQLite in staging, or pg_restore into the target database) and
    verify the audit chain, signatures checked with the restored key when there is one."""
    from hub.audit.checkpoint import KEY_FILE, load_or_create_signer
    from hub.audit.verification import verify
    from hub.db import make_engine

    if registry == "sqlite":
        url = f"sqlite:///{staging / 'registry.db'}"
    else:
        _run(["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={_libpq_url(settings.db_url)}",
              str(staging / "registry.pgdump")], "pg_restore")
        url = settings.db_url
    engine = make_engine(url)
    verifier = None
    if (staging / "keys" / KEY_FILE).exists():
        verifier = load_or_create_signer(staging / "keys").verifier()
    result = verify(engine, verifier=verifier)
    engine.dispose()
    if not result.ok:
        raise Failure(f"restored audit trail does not verify, nothing kept: {result.describe()}")
    progress(f"audit trail verifies: {result.describe()}")
    return result.as_dict()
