"""The one door to the SMTP server: `make_message` (pure) and `send` (smtplib).

Three modes (`SpeNotify.smtp_security`): `starttls` refuses a server that does not offer
STARTTLS (no silent fall-back to clear text), `tls` speaks TLS from the first byte, `plain`
sends in clear and refuses to log in (a password never crosses the wire unencrypted). The
server certificate and host name are verified against the system's or `smtp_ca_file`'s
authorities. Must not import `egress`.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, make_msgid
from pathlib import Path

from hub.exceptions import Failure, InvalidInput
from hub.notify.settings import SpeNotify


# Subjects are at most 300 characters: one unfolded line (RFC 5322 allows 998) reads the same in
# every client, where a folded one can show a leading blank.
_POLICY = SMTP_POLICY.clone(max_line_length=400)


def make_message(settings: SpeNotify, to: str, subject: str, body: str, message_key: str) -> EmailMessage:
    """One plain-text mail; `message_key` makes a stable Message-ID (a retried send is the same message)."""
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = settings.mail_from
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    domain = settings.mail_from.split("@", 1)[1]
    msg["Message-ID"] = make_msgid(idstring=message_key, domain=domain)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to SPE
    msg.set_content(body)
    return msg


def _tls_context(settings: SpeNotify) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=settings.smtp_ca_file or None)


def _password(settings: SpeNotify) -> str:
    try:
        return Path(settings.smtp_password_file).read_text().strip()
    except OSError as err:
        raise InvalidInput(f"cannot read {settings.smtp_password_file}: {err.strerror}",
                           field="SpeNotify.smtp_password_file") from None


def connect(settings: SpeNotify) -> smtplib.SMTP:
    """A connected, secured and (when configured) logged-in SMTP session."""
    if not settings.smtp_host:
        raise Failure("no SMTP server is configured (SpeNotify.smtp_host / SPE_SMTP_HOST)")
    if settings.smtp_security == "plain" and settings.smtp_username:
        raise InvalidInput("refusing to send the SMTP password without TLS: use starttls or tls",
                           field="SpeNotify.smtp_security")
    timeout = settings.smtp_timeout_seconds
    if settings.smtp_security == "tls":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port, timeout=timeout,
                                              context=_tls_context(settings))
    else:
        smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
    try:
        smtp.ehlo()
        if settings.smtp_security == "starttls":
            if not smtp.has_extn("starttls"):
                raise Failure(f"{settings.smtp_host}:{settings.smtp_port} does not offer STARTTLS "
                              "(set smtp_security to tls for port 465, or plain only for a local relay)")
            smtp.starttls(context=_tls_context(settings))
            smtp.ehlo()
        if settings.smtp_username:
            smtp.login(settings.smtp_username, _password(settings))
    except BaseException:
        smtp.close()
        raise
    return smtp


def send(smtp: smtplib.SMTP, msg: EmailMessage) -> None:
    """Send one message; raises on refusal (smtplib.SMTPException) or a broken connection (OSError)."""
    smtp.send_message(msg)
