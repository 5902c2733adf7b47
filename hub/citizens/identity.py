"""A citizen's identity: the national identifier their login carries (an OIDC claim) becomes, at
login, a keyed hash (HMAC-SHA-256 with the opt-out key: the same hash as the opt-out register and
the per-extract person hashes), linked to the hub account; the identifier itself is dropped from
the login's state and never stored.

`make_citizen_login_hook` wraps the hub's `post_auth_hook`: a login in the `citizens` group must
carry a well-formed identifier (else the login is refused and audited); other logins pass through.
Must not import `egress`.
"""

from __future__ import annotations

import sqlalchemy as sa

from hub import audit
from hub.audit.store import utc_now_iso
from hub.exceptions import InvalidInput, NotFound
from hub.optout import ID_PATTERN, optout_hash
from hub.provision.keys import KeyStore

from hub.citizens.tables import citizen_links

CITIZENS_GROUP = "citizens"
DEFAULT_CLAIM = "national_id"


def check_national_id(raw) -> str:
    """The identifier, stripped, or InvalidInput naming the problem (never echoing the value)."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput("the login carries no national identifier", field="national_id")
    value = raw.strip()
    if not ID_PATTERN.match(value):
        raise InvalidInput("the login's national identifier is malformed (3-64 letters, digits or '-')",
                           field="national_id")
    return value


def citizen_hash(keys: KeyStore, national_id: str) -> str:
    return optout_hash(keys.optout_key(), check_national_id(national_id))


def link(engine: sa.Engine, username: str, id_hash: str) -> None:
    """Record (or refresh) the account -> hash link; audited with the account name only."""
    now = utc_now_iso()
    with engine.begin() as conn:
        row = conn.execute(sa.select(citizen_links.c.id_hash).where(citizen_links.c.username == username)).first()
        if row is None:
            conn.execute(citizen_links.insert().values(username=username, id_hash=id_hash, linked_at=now))
        elif row.id_hash != id_hash:
            conn.execute(citizen_links.update().where(citizen_links.c.username == username)
                         .values(id_hash=id_hash, linked_at=now))
        else:
            return
        audit.record(conn, actor=username, role="citizen", action="citizen.link",
                     detail={"changed": row is not None})


def id_hash_of(engine: sa.Engine, username: str) -> str:
    with engine.connect() as conn:
        value = conn.execute(sa.select(citizen_links.c.id_hash).where(citizen_links.c.username == username)).scalar()
    if value is None:
        raise NotFound("this account is not linked to a national identifier: log in with your national eID")
    return value


def _claims(authentication: dict, user_key: str = "oauth_user") -> dict:
    state = authentication.get("auth_state") or {}
    return state.get(user_key) or state


def make_citizen_login_hook(db_url: str, keys_dir, inner=None, claim: str = DEFAULT_CLAIM):
    """A `post_auth_hook`: for a citizen's login, hash the `claim` from the IdP's user info
    (auth_state["oauth_user"]), link it, remove the clear value from the auth state; then `inner`."""
    from hub.db import make_engine

    def hook(authenticator, handler, authentication):
        if authentication and CITIZENS_GROUP in (authentication.get("groups") or ()):
            claims = _claims(authentication)
            engine = make_engine(db_url)
            try:
                id_hash = citizen_hash(KeyStore(keys_dir), claims.get(claim))
            except InvalidInput as err:
                with engine.begin() as conn:
                    audit.record(conn, actor=str(authentication.get("name"))[:64], action="auth.login",
                                 outcome="failed", detail={"reason": str(err)})
                authenticator.log.warning("citizen login refused: %s", err)
                return None
            finally:
                claims.pop(claim, None)  # never kept, even encrypted in the hub's auth state
            link(engine, authentication["name"], id_hash)
        return inner(authenticator, handler, authentication) if inner else authentication

    return hook
