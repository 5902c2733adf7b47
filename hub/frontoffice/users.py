"""Who has an account: team members named in an application must be users of the hub.

Two directories, one door each: `HubUsers` asks the JupyterHub REST API (`GET /users/<name>`, the
portal's service token holds `read:users:name`), which knows everyone who has logged in once
(OIDC creates the account at the first login); `DemoUsers` reads the demo authenticator's users
file (`spe hub users`). A team member without an account yet is refused with a message that says
how to get one: log in once (production) or ask the operator (demo). Must not import `egress`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from hub.exceptions import Failure


class HubUsers:
    def __init__(self, api_url: str, token: str, timeout_seconds: float = 10):
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.timeout_seconds = timeout_seconds

    def exists(self, username: str) -> bool:
        url = f"{self.api_url}/users/{urllib.parse.quote(username, safe='')}"
        req = urllib.request.Request(url, headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_seconds) as resp:
                return resp.status == 200
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return False
            raise Failure(f"the hub answered {err.code} when asked about user {username!r}") from None
        except (urllib.error.URLError, OSError) as err:
            raise Failure(f"the hub cannot be asked about users right now: {err}") from None


class DemoUsers:
    def __init__(self, users_file: Path):
        self.users_file = Path(users_file)

    def exists(self, username: str) -> bool:
        try:
            return username in json.loads(self.users_file.read_text())["users"]
        except FileNotFoundError:
            return False


class AnyDirectory:
    """A user exists when one of the directories knows them (demo users and hub accounts)."""

    def __init__(self, *directories):
        self.directories = directories

    def exists(self, username: str) -> bool:
        return any(d.exists(username) for d in self.directories)


NO_ACCOUNT_HINT = ("every team member needs an account first: they log in once (their account is created at "
                   "their first login), then the application can name them")
