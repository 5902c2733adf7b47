"""Pure parts of the citizens' side: the rate limit of "who used my data", the login hook's choices."""

from __future__ import annotations

import logging

import pytest

from hub.citizens.identity import make_citizen_login_hook
from hub.citizens.ratelimit import RateLimit


def test_rate_limit_is_per_key_and_slides():
    rl = RateLimit(2, 60.0)
    assert rl.allow("a", 0.0) and rl.allow("a", 1.0)
    assert not rl.allow("a", 2.0)
    assert rl.allow("b", 2.0)  # another citizen is not affected
    assert rl.allow("a", 60.5)  # the first look-up has left the window


class _Auth:
    log = logging.getLogger("test")


@pytest.fixture
def hook(settings, engine):
    return make_citizen_login_hook(settings.db_url, settings.keys_dir, inner=lambda a, h, auth: {**auth, "inner": 1})


def test_citizen_login_is_linked_and_the_claim_dropped(hook, engine):
    from hub.citizens.identity import id_hash_of

    auth = {"name": "cora", "groups": ["citizens"], "auth_state": {"oauth_user": {"national_id": "NL-123456"}}}
    out = hook(_Auth(), None, auth)
    assert out["inner"] == 1 and "national_id" not in out["auth_state"]["oauth_user"]
    h = id_hash_of(engine, "cora")
    assert len(h) == 64 and "NL-123456" not in h


@pytest.mark.parametrize("claims", [{}, {"national_id": ""}, {"national_id": "has spaces"}, {"national_id": ["x"]}])
def test_citizen_login_without_a_good_identifier_is_refused(hook, engine, claims):
    from hub.citizens.identity import id_hash_of
    from hub.exceptions import NotFound

    assert hook(_Auth(), None, {"name": "nina", "groups": ["citizens"], "auth_state": {"oauth_user": claims}}) is None
    with pytest.raises(NotFound):
        id_hash_of(engine, "nina")


def test_other_logins_pass_through_untouched(hook):
    auth = {"name": "rita", "groups": ["researchers"], "auth_state": {"oauth_user": {"national_id": "X-1234"}}}
    assert hook(_Auth(), None, auth)["inner"] == 1
