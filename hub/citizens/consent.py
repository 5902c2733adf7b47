"""A donation's consent (HEALTH-X dataLOFT): the EHDS Art. 53(1) purposes allowed, an expiry, and
whether the person may be re-contacted. Hostile input: one clear line naming the field. Pure."""

from __future__ import annotations

from datetime import date

from hub.exceptions import InvalidInput
from hub.permits.purposes import ALLOWED

MAX_YEARS = 10


def parse_consent(raw, today: date) -> dict:
    if not isinstance(raw, dict):
        raise InvalidInput("a donation needs a consent (purposes, expires, recontact)", field="consent")
    unknown = sorted(set(raw) - {"purposes", "expires", "recontact"})
    if unknown:
        raise InvalidInput(f"unknown consent field(s): {', '.join(unknown)}", field="consent")
    purposes = raw.get("purposes")
    if not isinstance(purposes, list) or not purposes:
        raise InvalidInput("a consent needs at least one purpose (EHDS Art. 53(1) categories: "
                           f"{', '.join(ALLOWED)})", field="consent.purposes")
    bad = [p for p in purposes if p not in ALLOWED]
    if bad:
        raise InvalidInput(f"unknown purpose {str(bad[0])[:40]!r}; allowed: {', '.join(ALLOWED)}",
                           field="consent.purposes")
    try:
        expires = date.fromisoformat(str(raw.get("expires", "")))
    except ValueError:
        raise InvalidInput("the consent's expiry must be a date (YYYY-MM-DD)", field="consent.expires") from None
    if expires <= today:
        raise InvalidInput("the consent's expiry must be in the future", field="consent.expires")
    if expires.year - today.year > MAX_YEARS:
        raise InvalidInput(f"a consent may last at most {MAX_YEARS} years", field="consent.expires")
    recontact = raw.get("recontact", False)
    if not isinstance(recontact, bool):
        raise InvalidInput("recontact must be true or false", field="consent.recontact")
    return {"purposes": sorted(set(purposes)), "expires": expires.isoformat(), "recontact": recontact}
