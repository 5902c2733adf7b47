"""The language switch over real HTTP (hub.ui.web.frame_handlers): it remembers the choice for the
whole site and goes back only within the site; the frame's stylesheet is served beside it."""

from __future__ import annotations

import requests

from hub.ui.web import frame_handlers
from tests.integration.tornado_thread import TornadoThread


def test_switch_sets_the_cookie_and_goes_back():
    with TornadoThread(frame_handlers("/services/egress/")) as srv:
        r = requests.get(srv.url + "/services/egress/lang", params={"lang": "fr", "next": "/hub/home?x=1"},
                         allow_redirects=False, timeout=10)
        assert r.status_code == 302 and r.headers["Location"] == "/hub/home?x=1"
        cookie = r.headers["Set-Cookie"]
        assert cookie.startswith("spe_lang=fr;") and "Path=/" in cookie and "SameSite=Lax" in cookie

        away = requests.get(srv.url + "/services/egress/lang", params={"lang": "en", "next": "//evil.example/"},
                            allow_redirects=False, timeout=10)
        assert away.status_code == 302 and away.headers["Location"] == "/hub/home"

        bad = requests.get(srv.url + "/services/egress/lang", params={"lang": "xx"}, allow_redirects=False, timeout=10)
        assert bad.status_code == 400 and "Set-Cookie" not in bad.headers

        css = requests.get(srv.url + "/services/egress/ui/spe.css", timeout=10)
        assert css.status_code == 200 and ".spe-skip" in css.text
        other = requests.get(srv.url + "/services/egress/ui/../web.py", timeout=10)
        assert other.status_code == 404
