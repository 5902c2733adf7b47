"""OIDC sign-in for production: `SpeOIDCAuthenticator`, OAuthenticator's generic OIDC login with
SPE's rules on top.

- Groups: the IdP's `groups` claim (userinfo) becomes the person's JupyterHub groups, limited
  to SPE's groups (hub.hubapp.auth.GROUPS): another IdP group never becomes a hub group; a
  person in none of SPE's groups cannot sign in.
- Multi-factor: a person in one of `mfa_groups` (output checkers, operators, HDAB deciders by
  default) is signed in only when the ID token says the IdP used more than one factor (`amr`
  holds `mfa` or a second-factor method of RFC 8176, or `acr` is one of `mfa_acr_values`).
  Otherwise the login is refused with a page saying so and audited (`auth.login`, outcome
  refused). The ID token is read without checking its signature: the hub received it from the
  IdP's token endpoint directly, over TLS (OIDC Core 3.1.3.7, point 6).

Needs `oauthenticator` (`pip install 'spe[oidc]'`); docs/operator-oidc.md. Must not import `egress`.
"""

from __future__ import annotations

import jwt
from oauthenticator.generic import GenericOAuthenticator
from tornado import web
from traitlets import Set, Unicode, default

from hub import audit
from hub.db import make_engine
from hub.hubapp.auth import GROUPS

# RFC 8176 methods that are a factor beyond a password ("pwd", "kba" and "pin" are not)
SECOND_FACTORS = {"mfa", "otp", "hwk", "swk", "sms", "tel", "fpt", "face", "iris", "retina", "vbm", "sc"}
MFA_GROUPS = {"output-checkers", "operators", "hdab-deciders"}


def id_token_claims(auth_state: dict) -> dict:
    """The claims of the ID token in auth_state (obtained over the back channel), or {}."""
    token = (auth_state or {}).get("id_token")
    if not token:
        return {}
    try:
        return jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}


def used_mfa(claims: dict, amr_values: set[str], acr_values: set[str]) -> bool:
    """Did the IdP authenticate with more than one factor, by the `amr`/`acr` claims (pure)?"""
    amr = claims.get("amr") or []
    if isinstance(amr, str):
        amr = [amr]
    if any(str(m) in amr_values for m in amr):
        return True
    return bool(acr_values) and str(claims.get("acr") or "") in acr_values


class SpeOIDCAuthenticator(GenericOAuthenticator):
    """GenericOAuthenticator with SPE's groups and multi-factor rule (see the module docstring)."""

    mfa_groups = Set(set(MFA_GROUPS), help=f"""
        SPE groups whose members must sign in with more than one factor (default
        {', '.join(sorted(MFA_GROUPS))}: they release outputs, run the service, decide permits).
        A member signed in with one factor is refused.""").tag(config=True)

    mfa_amr_values = Set(set(SECOND_FACTORS), help="""
        `amr` values (RFC 8176) of the ID token that count as multi-factor (default: mfa and the
        second-factor methods otp, hwk, swk, sms, tel, fpt, face, iris, retina, vbm, sc).""").tag(config=True)

    mfa_acr_values = Set(set(), help="""
        `acr` values of the ID token that count as multi-factor (default none; e.g. Keycloak's
        level of assurance for its OTP flow). Ask for them with `extra_authorize_params`.""").tag(config=True)

    audit_db_url = Unicode(help="Registry database URL; refused logins are appended to its audit trail.").tag(
        config=True)

    @default("manage_groups")
    def _default_manage_groups(self):
        return True

    @default("auth_state_groups_key")
    def _default_groups_key(self):
        return "oauth_user.groups"

    @default("allowed_groups")
    def _default_allowed_groups(self):
        return set(GROUPS)

    @default("scope")
    def _default_scope(self):
        return ["openid", "profile", "email", "groups"]

    async def get_user_groups(self, auth_state: dict):
        groups = await super().get_user_groups(auth_state)
        return {g for g in groups if g in GROUPS}  # the IdP's other groups stay at the IdP

    def _mfa_missing(self, auth_model: dict) -> tuple[set[str], dict]:
        """(the groups that need a second factor this login lacks, the ID token's claims)."""
        needs = set(auth_model.get("groups") or []) & self.mfa_groups
        claims = id_token_claims(auth_model.get("auth_state") or {})
        if needs and used_mfa(claims, self.mfa_amr_values, self.mfa_acr_values):
            needs = set()
        return needs, claims

    async def check_allowed(self, username, auth_model):
        if not await super().check_allowed(username, auth_model):
            return False
        if auth_model is None:
            return True
        needs, claims = self._mfa_missing(auth_model)
        if not needs:
            return True
        reason = (f"{', '.join(sorted(needs))} must sign in with a second factor (one-time code or security "
                  "key); this sign-in used one factor only. Sign out at your identity provider and sign in "
                  "again with your second factor.")
        self._audit_refusal(username, reason, claims)
        raise web.HTTPError(403, reason)

    async def refresh_user(self, user, handler=None, **kwargs):
        """A refresh (auth_refresh_age, refresh_pre_spawn) that brings a group needing a second
        factor to a session signed in with one (promoted at the IdP meanwhile) ends the session:
        the person signs in again, and the login above decides."""
        refreshed = await super().refresh_user(user, handler, **kwargs)
        if isinstance(refreshed, dict):
            needs, _ = self._mfa_missing(refreshed)
            if needs:
                self.log.warning("refresh of %s brings %s without a second factor: new login required",
                                 user.name, ", ".join(sorted(needs)))
                return False
        return refreshed

    def _audit_refusal(self, username: str, reason: str, claims: dict) -> None:
        if not self.audit_db_url:
            return
        with make_engine(self.audit_db_url).begin() as conn:
            audit.record(conn, actor=str(username)[:64], action="auth.login", outcome="refused",
                         detail={"reason": "multi-factor required", "message": reason[:300],
                                 "amr": [str(m)[:20] for m in (claims.get("amr") or [])][:10],
                                 "acr": str(claims.get("acr") or "")[:100], "authenticator": type(self).__name__})
