"""Egress lock of a workspace pod: the iptables rules its init container installs.

Defence in depth under the workspace NetworkPolicy: a cluster whose network plugin does not
enforce NetworkPolicy silently allows everything, so the pod also locks its own network
namespace before the notebook starts. The init container (NET_ADMIN, plus NET_RAW for
iptables-legacy's raw socket; nothing else) runs the script built here; the notebook
container has no capabilities and cannot undo the rules.

Pure: builds argument lists and a shell script, runs nothing. Imports only the standard
library and hub.exceptions (never kubernetes, docker or egress).
"""

from __future__ import annotations

import ipaddress
import re

from hub.exceptions import InvalidInput

# The chain every rule goes into: only what the pod sends is restricted; answers to the hub
# and proxy (which connect *in*) leave through the ESTABLISHED rule.
CHAIN = "OUTPUT"


def _check_endpoint(ip: str, port: int) -> str:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        raise InvalidInput(f"not an IP address: {ip!r}", field="netlock.allowed") from None
    if addr.version != 4:
        raise InvalidInput(f"only IPv4 endpoints can be allowed, got {ip}", field="netlock.allowed")
    if addr.is_unspecified or addr.is_multicast:
        # 0.0.0.0 would match nothing useful and, in some tools, everything: refuse it.
        raise InvalidInput(f"refusing to allow {ip}", field="netlock.allowed")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidInput(f"port must be 1..65535, got {port!r}", field="netlock.allowed")
    return str(addr)


def make_lock_rules(allowed: list[tuple[str, int]], allow_dns: bool,
                    dns_servers: list[str] = ()) -> list[list[str]]:
    """iptables argument lists (without the `iptables` word) that lock IPv4 egress.

    Order matters: flush, accept loopback and established traffic, accept each allowed
    (ip, tcp port), DNS to the named resolvers if allowed, then reject the rest and set the
    chain policy to DROP so that even a flushed rule list stays closed.
    DNS without named resolvers is refused: port 53 to anywhere is a tunnel.
    """
    if allow_dns and not dns_servers:
        raise InvalidInput("allow_dns needs the cluster DNS server address", field="netlock.dns_servers")
    rules: list[list[str]] = [
        ["-P", CHAIN, "DROP"],
        ["-F", CHAIN],
        ["-A", CHAIN, "-o", "lo", "-j", "ACCEPT"],
        ["-A", CHAIN, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
    ]
    for ip, port in allowed:
        ip = _check_endpoint(ip, port)
        rules.append(["-A", CHAIN, "-d", f"{ip}/32", "-p", "tcp", "--dport", str(port), "-j", "ACCEPT"])
    if allow_dns:
        for server in dns_servers:
            ip = _check_endpoint(server, 53)
            for proto in ("udp", "tcp"):
                rules.append(["-A", CHAIN, "-d", f"{ip}/32", "-p", proto, "--dport", "53", "-j", "ACCEPT"])
    # REJECT (not only DROP) so that a blocked connect fails at once instead of hanging.
    rules.append(["-A", CHAIN, "-j", "REJECT"])
    return rules


def make_lock_rules_v6() -> list[list[str]]:
    """ip6tables argument lists: no IPv6 egress at all except loopback (services are IPv4 here)."""
    return [
        ["-P", CHAIN, "DROP"],
        ["-F", CHAIN],
        ["-A", CHAIN, "-o", "lo", "-j", "ACCEPT"],
        ["-A", CHAIN, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
        ["-A", CHAIN, "-j", "REJECT"],
    ]


_TOKEN_RE = re.compile(r"[A-Za-z0-9_./,:-]+")


def restore_input(rules: list[list[str]]) -> list[str]:
    """The rules as `iptables-restore` input lines for the filter table (pure).

    `-P CHAIN POLICY` becomes the chain's header line and `-F CHAIN` is implied (restore
    replaces the table). Every token must be a plain word: the rules carry only checked
    addresses, ports and fixed words, so anything else is a bug and refused.
    """
    lines = ["*filter"]
    for rule in rules:
        bad = [a for a in rule if not _TOKEN_RE.fullmatch(a)]
        if bad:
            raise InvalidInput(f"netlock rule token {bad[0]!r} is not a plain word", field="netlock.rules")
        if rule[0] == "-P":
            lines.append(f":{rule[1]} {rule[2]} [0:0]")
        elif rule[0] != "-F":
            lines.append(" ".join(rule))
    return lines + ["COMMIT"]


def make_lock_script(rules: list[list[str]], rules_v6: list[list[str]] | None = None) -> str:
    """A POSIX shell script applying the rules, for the init container's `sh -c`.

    Each family is applied by one `iptables-restore` (atomic: the table changes in one commit,
    and a pod starts about 0.2 s sooner than with one process per rule). Fails closed: if the
    IPv4 rules fail the script exits non-zero (the pod does not start). IPv6 rules may fail
    only if the pod has no IPv6 address other than loopback (IPv6 disabled in the pod).
    """
    v6 = make_lock_rules_v6() if rules_v6 is None else rules_v6

    def feed(lines: list[str]) -> str:  # tokens are plain words: single quotes are safe
        return "printf '%s\\n' " + " ".join(f"'{line}'" for line in lines)

    lines = ["set -eu"]
    lines.append(f"{feed(restore_input(rules))} | iptables-restore -w")
    lines.append(
        f"if ! {feed(restore_input(v6))} | ip6tables-restore -w; then "
        "if grep -qv ' lo$' /proc/net/if_inet6 2>/dev/null; then "
        "echo 'netlock: IPv6 is up but ip6tables failed' >&2; exit 1; fi; fi"
    )
    lines.append("iptables -S OUTPUT")
    lines.append("echo 'netlock: egress locked'")
    return "\n".join(lines) + "\n"
