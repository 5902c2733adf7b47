"""Citizens' routes: pages (status and opt-out, "who used my data") and a JSON API beside them.

Every request is a hub login (OAuth for browsers, a hub token for the API) whose account was
linked at login to the keyed hash of its national identifier (hub.citizens.identity); a citizen
only ever reaches their own entries. Refusals are their 4xx with one line; anything else a 500
without detail. Handlers only translate HTTP to hub.citizens.optout / usage / membership.
Must not import `egress`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from hub import audit
from hub.citizens import optout as citizen_optout
from hub.citizens.donations import FORMATS, donate, my_donations, withdraw_donation
from hub.citizens.identity import id_hash_of
from hub.citizens.membership import check_person
from hub.citizens.usage import permits_that_used
from hub.exceptions import InvalidInput, Refused
from hub.permits.purposes import ALLOWED
from hub.webservice import HubServiceHandler

TEMPLATES = Path(__file__).parent / "templates"


class TooMany(Refused):
    http_status = 429


class CitizenHandler(HubServiceHandler):
    prefix_setting, executor_setting = "citizens_prefix", "citizens_executor"
    templates = TEMPLATES
    # the access scope is the `citizens` group's
    forbidden_message = "these pages are for citizens signed in with their national eID"
    error_page_values = {"user": None}

    @property
    def engine(self):
        return self.settings["citizens_engine"]

    def username(self) -> str:
        return self.require_login()["name"]

    async def me(self) -> tuple[str, str]:
        """(account, keyed hash of its national identifier); 404 when the login was not a citizen's."""
        name = self.username()
        return name, await self.call(id_hash_of, self.engine, name)

    def page(self, template: str, **values) -> None:
        self.secure_page_headers()
        self.render(template, prefix=self.url(), user=(self.current_user or {}).get("name"),
                    message=self.get_argument("message", "")[:200], **values)


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
