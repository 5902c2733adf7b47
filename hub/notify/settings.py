"""The notifier's settings as traitlets: `SpeNotify` (SMTP server, sender, links, retries).

Set like the hub's own settings: `c.SpeNotify.smtp_host = "mail.example.org"` in the site's
config file (SPE_HUB_EXTRA_CONFIG), or the SPE_SMTP_* variables of `ENVIRONMENT`; the file
wins. `notify_settings_from(environ, site)` is called only at entry points (`spe notify`).
The SMTP password is never a setting value: it is read from `smtp_password_file` at send time.
Must not import `egress`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from traitlets import Float, Integer, TraitError, Unicode, validate
from traitlets.config import Config, Configurable

from hub.exceptions import InvalidInput

SECURITY_MODES = ("starttls", "tls", "plain")
MAX_ATTEMPTS_LIMIT = 100

ENVIRONMENT = {
    "SPE_SMTP_HOST": "smtp_host",
    "SPE_SMTP_PORT": "smtp_port",
    "SPE_SMTP_SECURITY": "smtp_security",
    "SPE_SMTP_USERNAME": "smtp_username",
    "SPE_SMTP_PASSWORD_FILE": "smtp_password_file",
    "SPE_SMTP_CA_FILE": "smtp_ca_file",
    "SPE_MAIL_FROM": "mail_from",
    "SPE_PUBLIC_URL": "public_url",
}
_VARIABLE = {trait: var for var, trait in ENVIRONMENT.items()}


def _refuse(proposal, rule: str) -> TraitError:
    name = proposal["trait"].name
    var = f" ({_VARIABLE[name]})" if name in _VARIABLE else ""
    return TraitError(f"SpeNotify.{name}{var} = {proposal['value']!r}: {rule}")


class SpeNotify(Configurable):
    """How SPE sends notification mail."""

    smtp_host = Unicode("", help="""
        SMTP server that relays SPE's mail (default empty: no mail is sent; notices still wait in
        the outbox and go out once a server is set).""").tag(config=True)
    smtp_port = Integer(587, help="SMTP port (default 587, submission with STARTTLS; 465 for `tls`).").tag(config=True)
    smtp_security = Unicode("starttls", help="""
        `starttls` (default): plain connection upgraded with STARTTLS, refused if the server does
        not offer it. `tls`: TLS from the first byte (port 465). `plain`: no encryption, only for
        a relay on the same host or a trusted network; the login is then refused, a password is
        never sent in clear.""").tag(config=True)
    smtp_username = Unicode("", help="SMTP login name (default empty: no login).").tag(config=True)
    smtp_password_file = Unicode("", help="""
        File holding the SMTP password (one line; mode 0600). Read at send time so that the
        password is in no config file, environment or process list.""").tag(config=True)
    smtp_ca_file = Unicode("", help="""
        PEM file of the certificate authorities to trust for the SMTP server (default empty: the
        system's). The server certificate and host name are always verified.""").tag(config=True)
    smtp_timeout_seconds = Float(30, help="Seconds to wait for the SMTP server (default 30).").tag(config=True)
    mail_from = Unicode("spe@localhost", help="""
        Sender address (`From:`) of SPE's mail (default spe@localhost).""").tag(config=True)
    public_url = Unicode("http://127.0.0.1:8000/", help="""
        The hub's public URL as people reach it; every mail links to a page under it (default
        http://127.0.0.1:8000/). Mails carry links and ids only, never data.""").tag(config=True)
    max_attempts = Integer(10, help=f"""
        Sends tried per mail before it is marked `failed` (default 10, 1..{MAX_ATTEMPTS_LIMIT});
        a failed mail stays in the outbox and `spe notify retry` queues it again.""").tag(config=True)
    retry_base_seconds = Integer(60, help="""
        Wait after the first failed send; doubled after each further failure, at most one day
        (default 60).""").tag(config=True)
    permit_ending_days = Integer(14, help="""
        Days before a permit's end date at which its members and the operators are told (default 14,
        0..90).""").tag(config=True)
    first_backlog_hours = Integer(24, help="""
        On its very first round the notifier mails about the audit events of the last this many
        hours only (default 24), so that turning it on does not mail a deployment's history.""").tag(config=True)
    period_seconds = Float(30, help="Seconds between two rounds of `spe notify run` (default 30).").tag(config=True)

    @validate("smtp_security")
    def _check_security(self, proposal):
        if proposal["value"] not in SECURITY_MODES:
            raise _refuse(proposal, f"must be one of {', '.join(SECURITY_MODES)}")
        return proposal["value"]

    @validate("permit_ending_days")
    def _check_ending(self, proposal):
        if not 0 <= proposal["value"] <= 90:
            raise _refuse(proposal, "must be 0..90 days")
        return proposal["value"]

    @validate("smtp_port")
    def _check_port(self, proposal):
        if not 1 <= proposal["value"] <= 65535:
            raise _refuse(proposal, "must be a TCP port, 1..65535")
        return proposal["value"]

    @validate("max_attempts")
    def _check_attempts(self, proposal):
        if not 1 <= proposal["value"] <= MAX_ATTEMPTS_LIMIT:
            raise _refuse(proposal, f"must be 1..{MAX_ATTEMPTS_LIMIT}")
        return proposal["value"]

    @validate("retry_base_seconds")
    def _check_retry(self, proposal):
        if not 1 <= proposal["value"] <= 86400:
            raise _refuse(proposal, "must be 1..86400 seconds")
        return proposal["value"]

    @validate("mail_from")
    def _check_from(self, proposal):
        value = proposal["value"]
        if value.count("@") != 1 or any(ch.isspace() or ch in "<>," for ch in value):
            raise _refuse(proposal, "must be one plain address such as spe@hdab.example.org")
        return value

    @validate("public_url")
    def _check_url(self, proposal):
        value = proposal["value"]
        if not value.startswith(("http://", "https://")):
            raise _refuse(proposal, "must start with https:// (or http:// on a test host)")
        return value if value.endswith("/") else value + "/"


def notify_settings_from(environ: Mapping[str, str], *configs: Config) -> SpeNotify:
    """`SpeNotify` from the SPE_SMTP_* variables of `environ`, then each config's `SpeNotify`
    section (a later one wins). A bad value raises InvalidInput naming the setting and the fix."""
    traits = SpeNotify.class_traits(config=True)
    from_env = {}
    for var, name in ENVIRONMENT.items():
        raw = environ.get(var)
        if raw in (None, ""):
            continue
        try:
            from_env[name] = traits[name].from_string(raw)
        except ValueError:
            raise InvalidInput(f"must be a whole number, not {raw!r}", field=var) from None
    merged = Config({"SpeNotify": from_env})
    for config in configs:
        if "SpeNotify" in config:
            merged.merge(Config({"SpeNotify": copy.deepcopy(config["SpeNotify"])}))
    try:
        return SpeNotify(config=merged)
    except TraitError as err:
        raise InvalidInput(str(err)) from None


def notifier_environment(environ: Mapping[str, str], *configs: Config) -> dict[str, str] | None:
    """The SPE_SMTP_* environment of the notifier the hub runs as one of its services (`spe notify
    run`), from variables and configs; None when no SMTP server is set: mail stays off, nothing
    queues. A bad setting raises InvalidInput, so the hub does not start with broken mail."""
    notify = notify_settings_from(environ, *configs)
    if not notify.smtp_host:
        return None
    return {var: str(getattr(notify, name)) for var, name in ENVIRONMENT.items() if getattr(notify, name) != ""}
