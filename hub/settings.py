"""Where SPE keeps its state, built once at an entry point from flags and environment.

Nothing below the entry points reads `os.environ`; they receive a `Settings`.
"""

from __future__ import annotations

import getpass
import logging
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str
    actor: str = "operator"

    @property
    def extracts_dir(self) -> Path:
        return self.home / "extracts"

    @property
    def keys_dir(self) -> Path:
        """Operator key store: per-permit pseudonym secrets, audit signing key. Never mounted in a workspace."""
        return self.home / "keys"

    @property
    def store_dir(self) -> Path:
        """Content-addressed store of egress submissions, outside every workspace."""
        return self.home / "egress-store"

    @property
    def imports_dir(self) -> Path:
        """Approved imports, `<permit>/<file>`: each permit's directory is mounted read-only at
        /imports in its workspaces (written only by the egress service's import workflow)."""
        return self.home / "imports"

    @property
    def mirror_dir(self) -> Path:
        """The package mirror's indexes: `shared/` and one directory per permit index token
        (hub.mirror), served read-only by the mirror process."""
        return self.home / "mirror"

    @property
    def hub_dir(self) -> Path:
        """JupyterHub's own state on a single host: its database, cookie secret, pid files, log, demo users."""
        return self.home / "hub"

    @property
    def log_file(self) -> Path:
        return self.home / "spe.log"

    @classmethod
    def from_env(cls, home: str | None = None, db_url: str | None = None, actor: str | None = None,
                 env: dict | None = None) -> "Settings":
        env = os.environ if env is None else env
        home_path = Path(home or env.get("SPE_HOME") or ".spe").resolve()
        url = db_url or env.get("SPE_DB_URL") or f"sqlite:///{home_path / 'registry.db'}"
        who = actor or env.get("SPE_ACTOR") or env.get("USER") or _login_name()
        return cls(home=home_path, db_url=url, actor=who)

    def ensure_dirs(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.extracts_dir.mkdir(exist_ok=True)
        self.keys_dir.mkdir(mode=0o700, exist_ok=True)
        self.store_dir.mkdir(exist_ok=True)

    def configure_logging(self, verbose: bool = False) -> None:
        self.ensure_dirs()
        root = logging.getLogger("spe")
        root.setLevel(logging.DEBUG)
        if not root.handlers:
            fh = logging.FileHandler(self.log_file)
            fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
            root.addHandler(fh)
            sh = logging.StreamHandler()
            sh.setLevel(logging.DEBUG if verbose else logging.WARNING)
            sh.setFormatter(logging.Formatter("%(message)s"))
            root.addHandler(sh)


def _login_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in a container
        return "operator"
