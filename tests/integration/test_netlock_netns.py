"""The egress lock script, applied by the real iptables in a real network namespace.

A namespace `ns` is wired to the host by a veth pair (10.<n>.0.1 host, 10.<n>.0.2 in ns). The
host listens on two ports; the lock allows one. From inside the locked namespace the allowed
port answers, the other is refused even though a server listens there, and an unprivileged
process (uid 1000, no capabilities, like the notebook) cannot flush the rules.
Needs root and iproute2 (CI runs as root).
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import threading

import pytest

from hub.spawner.netlock import make_lock_rules, make_lock_script


def sh(*args, check=True, **kw):
    out = subprocess.run(list(args), capture_output=True, text=True, **kw)
    if check:
        assert out.returncode == 0, f"{' '.join(args)}: {out.stderr}"
    return out


def serve(ip: str) -> tuple[socket.socket, int]:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((ip, 0))
    srv.listen(8)

    def loop():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.sendall(b"ok")
            conn.close()

    threading.Thread(target=loop, daemon=True).start()
    return srv, srv.getsockname()[1]


@pytest.fixture
def netns():
    assert os.geteuid() == 0, "this test needs root (network namespaces, iptables)"
    routes = sh("ip", "-4", "route", "show").stdout
    free = [n for n in range(100, 251) if f"10.{n}." not in routes]
    n = random.choice(free)  # a /24 no host route uses, so replies stay on our veth
    name = f"spe-nl-{os.getpid()}-{n}"
    host_if, ns_if = f"spnl{n}h", f"spnl{n}n"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        sh("ip", "link", "set", ns_if, "netns", name)
        sh("ip", "addr", "add", f"10.{n}.0.1/24", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        sh("ip", "netns", "exec", name, "ip", "addr", "add", f"10.{n}.0.2/24", "dev", ns_if)
        sh("ip", "netns", "exec", name, "ip", "link", "set", ns_if, "up")
        sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        yield name, f"10.{n}.0.1"
    finally:
        sh("ip", "link", "del", host_if, check=False)
        sh("ip", "netns", "del", name, check=False)


CONNECT = ("import socket,sys\n"
           "s=socket.socket(); s.settimeout(3)\n"
           "try:\n s.connect((sys.argv[1], int(sys.argv[2]))); print(s.recv(2).decode())\n"
           "except OSError as e: print(type(e).__name__)\n")


def connect_from(ns, ip, port, *prefix):
    out = sh("ip", "netns", "exec", ns, *prefix, sys.executable, "-c", CONNECT, ip, str(port))
    return out.stdout.strip()


def test_lock_allows_listed_endpoint_only(netns):
    ns, host_ip = netns
    allowed_srv, allowed = serve(host_ip)
    other_srv, other = serve(host_ip)
    try:
        # before the lock both answer: the refusal below is the lock's doing
        assert connect_from(ns, host_ip, allowed) == "ok"
        assert connect_from(ns, host_ip, other) == "ok"
        script = make_lock_script(make_lock_rules([(host_ip, allowed)], allow_dns=False))
        applied = sh("ip", "netns", "exec", ns, "sh", "-c", script)
        assert "netlock: egress locked" in applied.stdout
        assert connect_from(ns, host_ip, allowed) == "ok"
        assert connect_from(ns, host_ip, other) == "ConnectionRefusedError"
        # the notebook's position: uid 1000, no capabilities — cannot undo the lock
        flush = sh("ip", "netns", "exec", ns, "setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups",
                   "--inh-caps=-all", "--bounding-set=-all", "iptables", "-F", "OUTPUT", check=False)
        assert flush.returncode != 0
        assert connect_from(ns, host_ip, other) == "ConnectionRefusedError"
        rules = sh("ip", "netns", "exec", ns, "iptables", "-S", "OUTPUT").stdout
        assert rules.splitlines()[0] == "-P OUTPUT DROP"
    finally:
        allowed_srv.close()
        other_srv.close()
