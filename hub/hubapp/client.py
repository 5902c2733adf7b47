"""A small client of a running SPE hub: log in like a browser, get an API token, spawn and stop.

Used by `spe hub status`, the benchmark and the tests (one door to the hub's HTTP API).
Must not import `egress`.
"""

from __future__ import annotations

import time
import urllib.parse
from dataclasses import dataclass

import requests


class HubError(Exception):
    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(f"{status}: {message}")


@dataclass
class HubClient:
    base_url: str  # public proxy URL, e.g. http://127.0.0.1:8000
    timeout_seconds: float = 30

    def __post_init__(self):
        self.base_url = self.base_url.rstrip("/")
        self.session = requests.Session()
        self.token: str | None = None
        self.username: str | None = None

    # --- browser-like login -----------------------------------------------------------------
    def login(self, username: str, password: str) -> bool:
        """Log in through the login form (so the hub audits it); True on success."""
        page = self.session.get(f"{self.base_url}/hub/login", timeout=self.timeout_seconds)
        xsrf = self.session.cookies.get("_xsrf", path="/hub/") or self.session.cookies.get("_xsrf")
        resp = self.session.post(f"{self.base_url}/hub/login?next=", data={
            "username": username, "password": password, "_xsrf": xsrf}, allow_redirects=False,
            timeout=self.timeout_seconds)
        del page
        ok = resp.status_code in (302, 303) and "login" not in resp.headers.get("Location", "login")
        if ok:
            self.username = username
        return ok

    def create_token(self, note: str = "spe client", expires_in_seconds: int = 3600) -> str:
        """An API token of the logged-in user, made through the REST API with the login cookie."""
        xsrf = self.session.cookies.get("_xsrf", path="/hub/") or self.session.cookies.get("_xsrf")
        resp = self.session.post(f"{self.base_url}/hub/api/users/{self.username}/tokens",
                                 json={"note": note, "expires_in": expires_in_seconds},
                                 headers={"X-XSRFToken": xsrf or ""}, timeout=self.timeout_seconds)
        self._check(resp)
        self.token = resp.json()["token"]
        return self.token

    # --- REST API with the token --------------------------------------------------------------
    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        return requests.request(method, f"{self.base_url}/hub/api{path}", headers=headers,
                                timeout=kwargs.pop("timeout", self.timeout_seconds), **kwargs)

    @staticmethod
    def _check(resp: requests.Response) -> requests.Response:
        if resp.status_code >= 400:
            try:
                message = resp.json().get("message", resp.text)
            except ValueError:
                message = resp.text[:300]
            raise HubError(resp.status_code, message)
        return resp

    def server(self, user: str, server: str) -> dict | None:
        resp = self._check(self.api("GET", f"/users/{_q(user)}"))
        return (resp.json().get("servers") or {}).get(server)

    def start_server(self, user: str, server: str, options: dict | None = None) -> requests.Response:
        # explicit user_options: an empty body makes JupyterHub reuse the options of the last
        # attempt (even a refused one) instead of none
        return self.api("POST", f"/users/{_q(user)}/servers/{_q(server)}", json={"user_options": options or {}})

    def wait_ready(self, user: str, server: str, timeout_seconds: float = 120, poll_seconds: float = 0.05) -> dict:
        deadline = time.monotonic() + timeout_seconds
        while True:
            info = self.server(user, server)
            if info and info.get("ready"):
                return info
            if info is None or (not info.get("pending") and not info.get("ready")):
                raise HubError(500, f"server {user}/{server} is not starting (state: {info})")
            if time.monotonic() > deadline:
                raise HubError(504, f"server {user}/{server} not ready after {timeout_seconds} s")
            time.sleep(poll_seconds)

    def spawn(self, user: str, server: str, options: dict | None = None, timeout_seconds: float = 120) -> dict:
        resp = self._check(self.start_server(user, server, options))
        if resp.status_code == 201:
            return self.server(user, server) or {}
        return self.wait_ready(user, server, timeout_seconds)

    def stop_server(self, user: str, server: str, timeout_seconds: float = 60) -> None:
        self._check(self.api("DELETE", f"/users/{_q(user)}/servers/{_q(server)}"))
        deadline = time.monotonic() + timeout_seconds
        while self.server(user, server) is not None and time.monotonic() < deadline:
            time.sleep(0.2)

    def user_url(self, user: str, server: str, path: str = "") -> str:
        return f"{self.base_url}/user/{_q(user)}/{_q(server)}/{path.lstrip('/')}"


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")
