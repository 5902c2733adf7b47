"""OIDC sign-in for real: a JupyterHub with SPE's configuration and `SpeOIDCAuthenticator`, a real
OpenID Connect provider (npm `oidc-provider`, tests/oidc_support.py), and the browser's authorization-code flow driven
over HTTP. The IdP's groups claim becomes SPE groups; an operator or output checker who signed
in with one factor is refused with a page that says why (and the refusal is audited); with a
one-time code they get in; a person in no SPE group is refused; a login fills the notifier's
address book from the e-mail claim."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from hub.audit.tables import audit_events
from hub.db import dispose_engines, make_engine
from hub.hubapp.process import free_loopback_port
from hub.notify.tables import notify_people
from tests.oidc_support import oidc_login, start_provider

REPO = Path(__file__).resolve().parents[3]
USERS = {
    "alice": {"email": "alice@uni.example.org", "groups": ["researchers", "staff"]},
    "olga": {"email": "olga@hdab.example.org", "groups": ["operators"], "otp": "246810"},
    "carla": {"email": "carla@hdab.example.org", "groups": ["output-checkers"], "otp": "135791"},
    "mallory": {"email": "mallory@example.org", "groups": ["staff"]},
    "rita": {"email": "rita@uni.example.org", "groups": ["researchers"]},
}

HUB_CONFIG = """
import sys
from pathlib import Path

from hub.hubapp.config import configure_hub, frontoffice_service
from hub.hubapp.options import SpeHub
from hub.settings import Settings

c = get_config()  # noqa: F821
settings = Settings(home=Path({home!r}), db_url={db_url!r})
env = {{"SPE_HOME": {home!r}, "SPE_DB_URL": {db_url!r}, "PYTHONPATH": {repo!r}}}
frontoffice = frontoffice_service("http://127.0.0.1:{fo_port}", command=[sys.executable, "-m", "hub.frontoffice.web"],
                                  environment=env, cwd={repo!r})
configure_hub(c, SpeHub(authenticator="oidc"), settings, [frontoffice])
c.JupyterHub.bind_url = "http://127.0.0.1:{public_port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_port}"
c.ConfigurableHTTPProxy.pid_file = {pid_file!r}
c.JupyterHub.db_url = "sqlite:///{tmp}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{tmp}/cookie_secret"
c.JupyterHub.services = [frontoffice, {{"name": "test-admin", "api_token": {admin_token!r}}}]
c.JupyterHub.load_roles = c.JupyterHub.load_roles + [
    {{"name": "test-admin", "services": ["test-admin"], "scopes": ["admin:users", "read:groups", "tokens"]}}]

# the site's OIDC configuration, as docs/operator-oidc.md writes it
c.JupyterHub.authenticator_class = "hub.hubapp.oidc.SpeOIDCAuthenticator"
c.SpeOIDCAuthenticator.client_id = {client_id!r}
c.SpeOIDCAuthenticator.client_secret = {client_secret!r}
c.SpeOIDCAuthenticator.oauth_callback_url = "http://127.0.0.1:{public_port}/hub/oauth_callback"
c.SpeOIDCAuthenticator.authorize_url = {authorize_url!r}
c.SpeOIDCAuthenticator.token_url = {token_url!r}
c.SpeOIDCAuthenticator.userdata_url = {userdata_url!r}
c.SpeOIDCAuthenticator.username_claim = "preferred_username"
c.SpeOIDCAuthenticator.login_service = "Test IdP"
c.SpeOIDCAuthenticator.enable_auth_state = True
c.SpeOIDCAuthenticator.auth_refresh_age = 1  # every request a second after the last refresh asks the IdP again
"""


@pytest.fixture(scope="module")
def oidc_hub(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("oidc-hub")
    home = tmp / "spe"
    home.mkdir()
    db_url = f"sqlite:///{home / 'registry.db'}"
    make_engine(db_url)  # the registry's tables, as `spe` would create them
    public_port, hub_port, proxy_port, fo_port = (free_loopback_port() for _ in range(4))
    client = {"client_id": "spe-hub", "client_secret": "test-client-secret-" + secrets.token_hex(8),
              "redirect_uris": [f"http://127.0.0.1:{public_port}/hub/oauth_callback"],
              "token_endpoint_auth_method": "client_secret_post"}
    idp = start_provider(tmp, [client], USERS)
    discovery = requests.get(f"{idp.issuer}/.well-known/openid-configuration", timeout=10).json()
    admin_token = secrets.token_hex(32)
    (tmp / "jupyterhub_config.py").write_text(HUB_CONFIG.format(
        home=str(home), db_url=db_url, repo=str(REPO), fo_port=fo_port, public_port=public_port, hub_port=hub_port, proxy_port=proxy_port,
        pid_file=str(tmp / "proxy.pid"), tmp=tmp, admin_token=admin_token, client_id=client["client_id"],
        client_secret=client["client_secret"], authorize_url=discovery["authorization_endpoint"],
        token_url=discovery["token_endpoint"], userdata_url=discovery["userinfo_endpoint"]))
    log_path = tmp / "jupyterhub.log"
    env = dict(os.environ, PYTHONPATH=str(REPO), CONFIGPROXY_AUTH_TOKEN=secrets.token_hex(16),
               JUPYTERHUB_CRYPT_KEY=secrets.token_hex(32))
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(tmp / "jupyterhub_config.py")],
                                   cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    hub_url = f"http://127.0.0.1:{public_port}/"
    api = f"http://127.0.0.1:{hub_port}/hub/api/"
    deadline = time.monotonic() + 120
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"jupyterhub exited:\n{log_path.read_text()[-6000:]}")
            try:
                if (requests.get(hub_url + "hub/login", timeout=2).status_code == 200 and requests.get(
                        hub_url + "services/frontoffice/catalogue", timeout=2).status_code == 200):
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"jupyterhub did not come up:\n{log_path.read_text()[-6000:]}")
            time.sleep(0.3)
        yield {"url": hub_url, "api": api, "token": admin_token, "db_url": db_url, "log": log_path, "idp": idp}
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        idp.stop()
        dispose_engines()


def sign_in(hub: dict, user: str, otp: str = "", s: requests.Session | None = None) -> requests.Response:
    """The browser's path: the hub sends us to the IdP, we sign in there, the IdP sends us back."""
    return oidc_login(s or requests.Session(), hub["url"] + "hub/oauth_login", user, otp=otp)


def hub_user(hub: dict, name: str) -> dict | None:
    r = requests.get(hub["api"] + f"users/{name}", headers={"Authorization": f"token {hub['token']}"}, timeout=30)
    return r.json() if r.status_code == 200 else None


def logins(hub: dict, name: str) -> list[tuple[str, dict]]:
    with make_engine(hub["db_url"]).connect() as conn:
        rows = conn.execute(sa.select(audit_events.c.outcome, audit_events.c.detail).where(
            audit_events.c.action == "auth.login", audit_events.c.actor == name).order_by(audit_events.c.seq)).all()
    return [(o, json.loads(d or "{}")) for o, d in rows]


def test_a_researcher_signs_in_with_groups_from_the_idp_and_the_mail_address_is_kept(oidc_hub):
    r = sign_in(oidc_hub, "alice")
    assert r.status_code == 200 and r.url.startswith(oidc_hub["url"] + "hub/"), (r.status_code, r.url)
    assert sorted(hub_user(oidc_hub, "alice")["groups"]) == ["researchers"]  # "staff" stays at the IdP
    [(outcome, detail)] = logins(oidc_hub, "alice")
    assert outcome == "ok" and detail["groups"] == ["researchers"]
    assert detail["authenticator"] == "SpeOIDCAuthenticator"
    with make_engine(oidc_hub["db_url"]).connect() as conn:
        entry = conn.execute(sa.select(notify_people).where(notify_people.c.username == "alice")).mappings().one()
    assert entry["address"] == "alice@uni.example.org" and json.loads(entry["groups_json"]) == ["researchers"]


@pytest.mark.parametrize("user", ["olga", "carla"])
def test_operators_and_checkers_with_one_factor_are_refused_and_get_in_with_a_second(oidc_hub, user):
    r = sign_in(oidc_hub, user)  # password only
    assert r.status_code == 403
    assert "must sign in with a second factor" in r.text
    assert hub_user(oidc_hub, user) is None or hub_user(oidc_hub, user)["groups"] == []
    outcome, detail = logins(oidc_hub, user)[-1]
    assert outcome == "refused" and detail["reason"] == "multi-factor required" and detail["amr"] == ["pwd"]

    r = sign_in(oidc_hub, user, otp=USERS[user]["otp"])
    assert r.status_code == 200 and r.url.startswith(oidc_hub["url"] + "hub/"), (r.status_code, r.url)
    assert hub_user(oidc_hub, user)["groups"] == USERS[user]["groups"]
    assert logins(oidc_hub, user)[-1][0] == "ok"


def test_a_person_in_no_spe_group_is_refused(oidc_hub):
    r = sign_in(oidc_hub, "mallory")
    assert r.status_code == 403
    assert hub_user(oidc_hub, "mallory") is None


def test_a_person_sets_their_own_mail_preferences_and_cannot_change_their_address(oidc_hub):
    s = requests.Session()
    assert sign_in(oidc_hub, "alice", s=s).status_code == 200
    page = s.get(oidc_hub["url"] + "services/frontoffice/notifications", timeout=60)
    assert page.status_code == 200 and "alice@uni.example.org" in page.text, page.text[:500]
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    saved = s.post(oidc_hub["url"] + "services/frontoffice/notifications",
                   data={"_xsrf": xsrf, "opt_out": "on", "address": "thief@evil.example"}, timeout=60)
    assert saved.status_code == 200 and "preferences saved" in saved.text
    with make_engine(oidc_hub["db_url"]).connect() as conn:
        entry = conn.execute(sa.select(notify_people).where(notify_people.c.username == "alice")).mappings().one()
        changes = conn.execute(sa.select(audit_events.c.actor, audit_events.c.detail)
                               .where(audit_events.c.action == "notify.preferences")).all()
    assert entry["opt_out"] and not entry["digest"] and entry["address"] == "alice@uni.example.org"
    assert changes[-1][0] == "alice" and json.loads(changes[-1][1]) == {"user": "alice", "opt_out": True, "digest": False}

    token = requests.post(oidc_hub["api"] + "users/alice/tokens", headers={"Authorization": f"token {oidc_hub['token']}"},
                          json={"scopes": ["access:services!service=frontoffice"], "expires_in": 600},
                          timeout=30).json()["token"]
    api = oidc_hub["url"] + "services/frontoffice/api/notifications"
    auth = {"Authorization": f"token {token}"}
    r = requests.put(api, json={"digest": "yes"}, headers=auth, timeout=30)
    assert r.status_code == 400 and r.json()["field"] == "digest"
    r = requests.put(api, json={"address": "thief@evil.example"}, headers=auth, timeout=30)
    assert r.status_code == 400 and "only opt_out and digest" in r.json()["error"]
    r = requests.put(api, json={"digest": True, "opt_out": False}, headers=auth, timeout=30)
    assert r.status_code == 200 and r.json() == {"address": "alice@uni.example.org", "opt_out": False, "digest": True,
                                                 "groups": ["researchers"]}
    assert requests.get(api, timeout=30).status_code == 401


def test_a_session_promoted_at_the_idp_without_a_second_factor_must_sign_in_again(oidc_hub):
    s = requests.Session()
    assert sign_in(oidc_hub, "rita", s=s).status_code == 200
    assert s.get(oidc_hub["url"] + "hub/home", timeout=60).url == oidc_hub["url"] + "hub/home"
    oidc_hub["idp"].update_account("rita", groups=["researchers", "operators"])  # promoted at the IdP meanwhile
    time.sleep(1.5)  # past auth_refresh_age: the next request refreshes from the IdP
    r = s.get(oidc_hub["url"] + "hub/home", timeout=60)
    assert "/hub/login" in r.url, r.url  # the session ended instead of gaining the operators' role
    assert hub_user(oidc_hub, "rita")["groups"] == ["researchers"]
    # signing in again (the IdP still knows her, with one factor) is refused with the reason
    r = s.get(oidc_hub["url"] + "hub/oauth_login", timeout=60)
    assert r.status_code == 403 and "must sign in with a second factor" in r.text
