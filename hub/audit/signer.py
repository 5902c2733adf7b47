"""The audit signer: a process that holds the checkpoint key so that nothing else has to.

    python -m hub.audit.signer --keys /var/lib/spe-signer --socket $SPE_HOME/audit-signer.sock

Run it under its own Unix account (or in its own pod with the key Secret mounted only there):
the key directory is readable by that account alone, and the hub, the egress service, the
lifecycle and the `spe` CLI only ever ask this process, over a Unix socket, to sign a
checkpoint. It signs nothing but well-formed checkpoint messages (`checkpoint_message`), so the
socket cannot be used to sign anything else with the key.

When `$SPE_HOME/audit-signer.sock` exists, `signer_for` returns a `Signer` that signs through
it; otherwise the key in `$SPE_HOME/keys` is used directly (the single-host default).

Protocol: one JSON object per line each way. `{"op": "public_key"}` ->
`{"algorithm", "key_id", "public_key"}`; `{"op": "sign", "message": "<text>"}` ->
`{"signature": "<hex>"}`; anything else -> `{"error": "<reason>"}`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import socket
import socketserver
import sys
from pathlib import Path

from hub.audit.checkpoint import KINDS, Signer, load_or_create_signer

SOCKET_NAME = "audit-signer.sock"
MAX_LINE = 4096
_MESSAGE = re.compile(r"^spe-audit-checkpoint/1\n\d{1,19}\n[0-9a-f]{64}\n[0-9T:.\-Z]{1,32}\n(%s)$" % "|".join(KINDS))

log = logging.getLogger("spe.signer")


def answer(signer: Signer, request: dict) -> dict:
    """The signer's reply to one request (pure apart from the signature)."""
    op = request.get("op") if isinstance(request, dict) else None
    if op == "public_key":
        return {"algorithm": signer.algorithm, "key_id": signer.key_id, "public_key": signer.public_key_hex}
    if op == "sign":
        message = request.get("message")
        if not isinstance(message, str) or not _MESSAGE.match(message):
            return {"error": "not a checkpoint message: only spe-audit-checkpoint/1 messages are signed"}
        return {"signature": signer.sign(message.encode("ascii"))}
    return {"error": "unknown op: expected public_key or sign"}


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            if len(line) > MAX_LINE:
                reply = {"error": "request too long"}
            else:
                try:
                    reply = answer(self.server.signer, json.loads(line))
                except ValueError:
                    reply = {"error": "not JSON"}
            if "signature" in reply:
                log.info("signed %s", json.loads(line)["message"].replace("\n", " "))
            self.wfile.write(json.dumps(reply).encode() + b"\n")
            self.wfile.flush()


class _SocketKey:
    """Stands in for the private key inside a `Signer`: signing goes to the signer process."""

    def __init__(self, path: Path, timeout: float = 30):
        self.path, self.timeout = Path(path), timeout

    def ask(self, request: dict) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(self.timeout)
            s.connect(str(self.path))
            s.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        reply = json.loads(data or b"{}")
        if "error" in reply or not reply:
            raise RuntimeError(f"audit signer at {self.path} refused: {reply.get('error', 'no answer')}")
        return reply

    def sign(self, message: bytes) -> bytes:
        return bytes.fromhex(self.ask({"op": "sign", "message": message.decode("ascii")})["signature"])


def remote_signer(path: Path) -> Signer:
    key = _SocketKey(path)
    info = key.ask({"op": "public_key"})
    return Signer(info["algorithm"], info["key_id"], info["public_key"], key)


def signer_for(home: Path, keys_dir: Path) -> Signer:
    """The signer process's key when it runs for this SPE home, else the local key file."""
    sock = Path(home) / SOCKET_NAME
    if sock.exists():
        return remote_signer(sock)
    return load_or_create_signer(keys_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hub.audit.signer", description=__doc__.splitlines()[0])
    parser.add_argument("--keys", required=True, help="the signer's own key directory (0700, this account only)")
    parser.add_argument("--socket", required=True, help=f"socket path, normally $SPE_HOME/{SOCKET_NAME}")
    parser.add_argument("--mode", default="660", help="socket permissions, octal (default 660: owner and group)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s signer %(levelname)s %(message)s")
    signer = load_or_create_signer(Path(args.keys))
    path = Path(args.socket)
    path.unlink(missing_ok=True)
    server = socketserver.ThreadingUnixStreamServer(str(path), _Handler)
    server.signer = signer
    os.chmod(path, int(args.mode, 8))
    log.info("audit signer for key %s listening on %s", signer.key_id, path)

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
