"""Citizens' routes: pages (status and opt-out, "who used my data") and a JSON API beside them.

Every request is a hub login (OAuth for browsers, a hub token for the API) whose account was
linked at login to the keyed hash of its national identifier (hub.citizens.identity); a citizen
only ever reaches their own entries. Refusals are their 4xx with one line; anything else a 500
without detail. Handlers only translate HTTP to hub.citizens.optout / usage / membership.
Must not import `egress`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

from jupyterhub.services.auth import HubOAuthenticated
from tornado import web

from hub import audit
from hub.citizens import optout as citizen_optout
from hub.citizens.identity import id_hash_of
from hub.citizens.membership import check_person
from hub.citizens.donations import FORMATS, donate, my_donations, withdraw_donation
from hub.citizens.usage import permits_that_used
from hub.permits.purposes import ALLOWED
from hub.exceptions import Forbidden, InvalidInput, Refused, SpeError

log = logging.getLogger("spe.citizens.web")
TEMPLATES = Path(__file__).parent / "templates"


class _Login(Exception):
    """A page needs a session: send the browser to the hub's login."""


class TooMany(Refused):
    http_status = 429


class CitizenHandler(HubOAuthenticated, web.RequestHandler):
    api = False

    def get_template_path(self):
        return str(TEMPLATES)

    def check_hub_user(self, model):
        if model.get("kind", "user") != "user":
            return None
        # the access scope of this service (the `citizens` group's): other hub users get a 403
        if not self.hub_auth.check_scopes(self.hub_scopes, model):
            raise Forbidden("these pages are for citizens signed in with their national eID")
        return model

    def check_xsrf_cookie(self):  # checked in prepare(), after authentication (token requests exempt)
        return

    async def prepare(self):
        try:
            model = await self.hub_auth.get_user(self, sync=False)
        except (web.HTTPError, Refused):
            raise
        except Exception:
            log.exception("hub authentication failed")
            raise web.HTTPError(503, "the hub cannot confirm who you are right now; try again") from None
        self._model = self.check_hub_user(model) if model else None
        if self._model and self.request.method not in ("GET", "HEAD") and not getattr(self, "_token_authenticated", False):
            self.hub_auth.check_xsrf_cookie(self)

    def get_current_user(self):
        return getattr(self, "_model", None)

    @property
    def engine(self):
        return self.settings["citizens_engine"]

    def username(self) -> str:
        if not self.current_user:
            if self.api:
                raise web.HTTPError(401, "authenticate with a hub token (Authorization: token …)")
            raise _Login()
        return self.current_user["name"]

    async def call(self, fn, *args, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.settings["citizens_executor"], lambda: fn(*args, **kwargs))

    async def me(self) -> tuple[str, str]:
        """(account, keyed hash of its national identifier); 404 when the login was not a citizen's."""
        name = self.username()
        return name, await self.call(id_hash_of, self.engine, name)

    def url(self, path: str = "") -> str:
        return self.settings["citizens_prefix"] + path.lstrip("/")

    def send_json(self, obj, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(obj, sort_keys=True, default=str))

    def page(self, template: str, **values) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Security-Policy",
                        "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
        self.render(template, prefix=self.settings["citizens_prefix"], user=(self.current_user or {}).get("name"),
                    message=self.get_argument("message", "")[:200], **values)

    def _handle_request_exception(self, e):
        if isinstance(e, _Login):
            if not self._finished:
                self.redirect(self.get_login_url())
            return
        if isinstance(e, Refused):
            return self._error(e.http_status, str(e))
        if isinstance(e, SpeError):
            log.error("citizens service failure: %s", e, exc_info=e)
            return self._error(500, "the service failed; the operators have the details")
        return super()._handle_request_exception(e)

    def _error(self, status: int, message: str) -> None:
        if self._finished:
            return
        self.clear()
        self.set_status(status)
        if self.api:
            self.finish(json.dumps({"error": message, "status": status}))
        else:
            self.render("error.html", prefix=self.settings["citizens_prefix"], user=None, message=message,
                        status=status)

    def write_error(self, status_code: int, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message else (
            "the service failed; the operators have the details" if status_code >= 500 else self._reason)
        if self.api:
            self.finish(json.dumps({"error": message, "status": status_code}))
        else:
            self.render("error.html", prefix=self.settings["citizens_prefix"], user=None, message=message,
                        status=status_code)


def _state(engine, id_hash: str) -> dict:
    from hub.citizens.findings import for_citizen

    return {"optout": citizen_optout.status(engine, id_hash), "extracts": check_person(engine, id_hash),
            "findings": for_citizen(engine, id_hash)}


def _usage(engine, id_hash: str, name: str) -> list[dict]:
    permits = permits_that_used(engine, id_hash)
    with engine.begin() as conn:
        audit.record(conn, actor=name, role="citizen", action="citizen.usage", detail={"permits": len(permits)})
    return permits


# --- pages ------------------------------------------------------------------------------------

class HomeHandler(CitizenHandler):
    async def get(self):
        name, h = await self.me()
        state = await self.call(_state, self.engine, h)
        self.page("home.html", state=state)


class OptOutFormHandler(CitizenHandler):
    async def post(self):
        name, h = await self.me()
        done = await self.call(citizen_optout.opt_out, self.engine, h, name, self.settings["citizens_delay_days"])
        self.redirect(self.url(f"?message=You+have+opted+out.+{done['permits_scheduled']}+permit(s)+will+be+"
                               f"re-provisioned+without+you+by+{done['due_at'][:10]}."))


class WithdrawFormHandler(CitizenHandler):
    async def post(self):
        name, h = await self.me()
        await self.call(citizen_optout.withdraw, self.engine, h, name)
        self.redirect(self.url("?message=Your+opt-out+is+withdrawn."))


class UsageHandler(CitizenHandler):
    async def get(self):
        name, h = await self.me()
        self.check_rate(name)
        permits = await self.call(_usage, self.engine, h, name)
        self.page("usage.html", permits=permits)

    def check_rate(self, name: str) -> None:
        if not self.settings["citizens_usage_limit"].allow(name, time.monotonic()):
            raise TooMany("too many look-ups; try again in a minute")


# --- API --------------------------------------------------------------------------------------

class MeApiHandler(CitizenHandler):
    api = True

    async def get(self):
        name, h = await self.me()
        self.send_json(await self.call(_state, self.engine, h))


class OptOutApiHandler(CitizenHandler):
    api = True

    async def post(self):
        name, h = await self.me()
        done = await self.call(citizen_optout.opt_out, self.engine, h, name, self.settings["citizens_delay_days"])
        self.send_json(done, status=201)

    async def delete(self):
        name, h = await self.me()
        await self.call(citizen_optout.withdraw, self.engine, h, name)
        self.send_json({"opted_out": False})


class UsageApiHandler(UsageHandler):
    api = True

    async def get(self):
        name, h = await self.me()
        self.check_rate(name)
        self.send_json({"permits": await self.call(_usage, self.engine, h, name)})


# --- donations ----------------------------------------------------------------------------------

class DonationsHandler(CitizenHandler):
    """The donations page: one's donations with their consents, the upload form, withdrawal."""

    async def get(self):
        name, h = await self.me()
        self.page("donations.html", donations=await self.call(my_donations, self.engine, h), purposes=ALLOWED,
                  formats=FORMATS)

    async def post(self):
        name, h = await self.me()
        files = self.request.files.get("file") or []
        if not files:
            raise InvalidInput("choose a file to donate", field="file")
        consent = {"purposes": self.get_body_arguments("purposes"), "expires": self.get_body_argument("expires", ""),
                   "recontact": self.get_body_argument("recontact", "") == "yes"}
        done = await self.call(donate, self.engine, h, name, self.get_body_argument("format", ""), files[0]["body"],
                               consent)
        self.redirect(self.url(f"donations?message=Thank+you.+Donation+{done['id']}+is+recorded+with+your+consent."))


class WithdrawDonationHandler(CitizenHandler):
    async def post(self, donation_id: str):
        name, h = await self.me()
        await self.call(withdraw_donation, self.engine, h, donation_id, name)
        self.redirect(self.url(f"donations?message=Consent+for+{donation_id}+withdrawn."))


class DonationsApiHandler(CitizenHandler):
    """POST {format: fhir|csv, content: "<the file's text>", consent: {purposes, expires, recontact}}."""
    api = True

    async def get(self):
        name, h = await self.me()
        self.send_json({"donations": await self.call(my_donations, self.engine, h)})

    async def post(self):
        name, h = await self.me()
        try:
            body = json.loads(self.request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise InvalidInput("the body is not JSON", field="(body)") from None
        if not isinstance(body, dict) or not isinstance(body.get("content"), str):
            raise InvalidInput("the body must be {format, content, consent}", field="content")
        done = await self.call(donate, self.engine, h, name, str(body.get("format", "")), body["content"].encode(),
                               body.get("consent"))
        self.send_json(done, status=201)


class DonationApiHandler(CitizenHandler):
    api = True

    async def delete(self, donation_id: str):
        name, h = await self.me()
        await self.call(withdraw_donation, self.engine, h, donation_id, name)
        self.send_json({"id": donation_id, "state": "withdrawn"})


def routes(prefix: str) -> list[tuple]:
    p = prefix
    return [
        (p + r"donations", DonationsHandler),
        (p + r"donations/(DON-[0-9A-F]{12})/withdraw", WithdrawDonationHandler),
        (p + r"api/donations", DonationsApiHandler),
        (p + r"api/donations/(DON-[0-9A-F]{12})", DonationApiHandler),
        (p + r"optout", OptOutFormHandler),
        (p + r"optout/withdraw", WithdrawFormHandler),
        (p + r"usage", UsageHandler),
        (p + r"api/me", MeApiHandler),
        (p + r"api/optout", OptOutApiHandler),
        (p + r"api/usage", UsageApiHandler),
        (p + r"?", HomeHandler),
    ]
