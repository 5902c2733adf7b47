"""A real SMTP server for tests (aiosmtpd, on a free loopback port): plain, STARTTLS or implicit
TLS with a throw-away certificate authority, optional login, and a switch that makes it refuse
mail with a temporary error. Messages are kept as parsed `email.message.Message`s."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hub.hubapp.process import free_loopback_port


@dataclass
class Inbox:
    messages: list = field(default_factory=list)
    refuse: bool = False  # answer 451 (try again later) to every message

    async def handle_DATA(self, server, session, envelope):
        if self.refuse:
            return "451 4.3.0 mailbox busy, try again later"
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        self.messages.append({"to": list(envelope.rcpt_tos), "from": envelope.mail_from, "msg": msg,
                              "tls": server.transport.get_extra_info("ssl_object") is not None, "login": session.auth_data})
        return "250 OK"

    def to(self, address: str) -> list:
        return [m["msg"] for m in self.messages if address in m["to"]]


def make_ca_and_cert(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost signed by it: (ca.pem, cert.pem, key.pem)."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SPE test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def _authenticator(users: dict[str, str]):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and users.get(auth_data.login.decode()) == auth_data.password.decode())
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)
    return check


class SmtpServer:
    """`mode`: plain | starttls | tls. `users`: logins the server accepts (requires a login)."""

    def __init__(self, mode: str, cert_dir: Path | None = None, users: dict[str, str] | None = None):
        self.inbox = Inbox()
        self.port = free_loopback_port()
        self.mode = mode
        kwargs: dict = {}
        if mode in ("starttls", "tls"):
            self.ca, cert, key = make_ca_and_cert(cert_dir)
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(cert, key)
            kwargs["tls_context" if mode == "starttls" else "ssl_context"] = ctx
            if mode == "starttls":
                kwargs["require_starttls"] = True
        if users:
            kwargs.update(authenticator=_authenticator(users), auth_required=True, auth_require_tls=True)
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, ready_timeout=30, **kwargs)

    def start(self) -> "SmtpServer":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
