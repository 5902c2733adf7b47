"""Demo authentication: generated per-user passwords, stored only as scrypt hashes, and login audit.

`make_demo_users(path, groups_by_user)` generates a fresh password per user, writes the hashes
(mode 0600) and returns the clear passwords once, for `make demo` to print. The
`SpeDemoAuthenticator` checks them in constant time, returns the user's SPE group so that
JupyterHub manages group membership (`manage_groups`), and records every failed login; the
`audit_login` post-auth hook records every successful login with any authenticator (OIDC too).
Production uses OIDC (docs/operator-oidc.md). Must not import `egress`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from pathlib import Path

from jupyterhub.auth import Authenticator
from traitlets import Unicode, default

from hub import audit
from hub.db import make_engine
from hub.exceptions import InvalidInput
from hub.notify.recipients import login_address, remember_login

GROUPS = ("researchers", "output-checkers", "operators", "auditors", "applicants", "hdab-assessors", "hdab-deciders",
          "data-holders")
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
MAX_USERNAME_CHARS = 64
MAX_PASSWORD_CHARS = 1024
_USERNAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")

# the demo cast (docs/researcher-workspace.md); carol is the member of the second demo permit
DEMO_USERS = {
    "alice": "researchers",
    "bob": "researchers",
    "carol": "researchers",
    "carla": "output-checkers",
    "dan": "output-checkers",
    "olga": "operators",
    "aud": "auditors",
    # the front office: an applicant, the HDAB's assessor and decider, the example dataset's data holder
    "paula": "applicants",
    "hugo": "hdab-assessors",
    "diane": "hdab-deciders",
    "holger": "data-holders",
}


def hash_password(password: str, salt: bytes | None = None) -> dict:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **SCRYPT)
    return {"alg": "scrypt", **SCRYPT, "salt": salt.hex(), "hash": digest.hex()}


def check_password(password: str, record: dict) -> bool:
    if record.get("alg") != "scrypt" or len(password) > MAX_PASSWORD_CHARS:
        return False
    digest = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(record["salt"]), dklen=32,
                            n=record["n"], r=record["r"], p=record["p"])
    return hmac.compare_digest(digest.hex(), record["hash"])


def demo_users_file(settings) -> Path:
    """Where `spe hub users` writes the demo users and the demo authenticator reads them."""
    return settings.hub_dir / "demo-users.json"


def make_demo_users(path: Path, groups_by_user: dict[str, str] | None = None) -> dict[str, str]:
    """Write fresh password hashes for these users; return {user: clear password} (shown once)."""
    groups_by_user = DEMO_USERS if groups_by_user is None else groups_by_user
    users, clear = {}, {}
    for name, group in groups_by_user.items():
        if not _USERNAME_RE.fullmatch(name):
            raise InvalidInput(f"user name {name!r} must be lower-case letters, digits, _ or -", field="username")
        if group not in GROUPS:
            raise InvalidInput(f"group {group!r} must be one of {', '.join(GROUPS)}", field="group")
        clear[name] = secrets.token_urlsafe(12)
        users[name] = {"group": group, **hash_password(clear[name])}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"users": users}, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return clear


def load_users(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())["users"]
    except FileNotFoundError:
        return {}


def _safe_name(raw) -> str:
    # a failed login's user name is hostile input: bound it before it reaches the audit trail
    return str(raw or "")[:MAX_USERNAME_CHARS]


class SpeDemoAuthenticator(Authenticator):
    """Username + generated password from `users_file`; every failure is an audit event."""

    users_file = Unicode(
        help="""JSON file of demo users (`{"users": {name: {group, alg, salt, hash, ...}}}`), written by
        `spe hub users`. Only scrypt hashes are stored; clear passwords are printed once.""",
    ).tag(config=True)

    audit_db_url = Unicode(
        help="""Registry database URL; failed logins are appended to its audit trail.""",
    ).tag(config=True)

    @default("allow_all")
    def _default_allow_all(self):
        # the users file is the allow-list: authenticate() admits nobody else
        return True

    async def authenticate(self, handler, data):
        username = self.normalize_username(_safe_name(data.get("username")))
        password = str(data.get("password") or "")
        record = load_users(Path(self.users_file)).get(username)
        if record is not None and check_password(password, record):
            return {"name": username, "groups": [record["group"]]}
        ip = handler.request.remote_ip if handler is not None else None
        with make_engine(self.audit_db_url).begin() as conn:
            audit.record(conn, actor=username or "(empty)", action="auth.login", outcome="failed",
                         detail={"ip": ip, "reason": "unknown user" if record is None else "wrong password"})
        return None


def make_audit_login_hook(db_url: str):
    """A `post_auth_hook` that records a successful login (any authenticator) and returns the model."""

    def audit_login(authenticator, handler, authentication):
        if authentication:
            ip = handler.request.remote_ip if handler is not None else None
            with make_engine(db_url).begin() as conn:
                audit.record(conn, actor=_safe_name(authentication.get("name")), action="auth.login",
                             detail={"ip": ip, "groups": list(authentication.get("groups") or [])[:10],
                                     "authenticator": type(authenticator).__name__})
                # the notifier's address book: current groups, and the IdP's e-mail claim (hub.notify)
                remember_login(conn, _safe_name(authentication.get("name")), list(authentication.get("groups") or []),
                               login_address(authentication))
        return authentication

    return audit_login
