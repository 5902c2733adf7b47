"""Workspace network isolation: the internal Docker network and the host firewall on its bridge.

Threat: a workspace must not send data anywhere except the hub API, the egress service and
the package mirror (read-only: it takes no uploads).
`docker network create --internal` removes the route *out of* the host, but the host itself
stays reachable on every address it owns (the bridge gateway, docker0, eth0): any service
listening on 0.0.0.0 would be a way out. So every packet a workspace sends *to the host*
(iptables INPUT, `-i <bridge>`) goes through a dedicated chain that accepts replies, the
hub API, egress and mirror ports on the gateway address, and drops everything else.
Inter-container traffic is off (`enable_icc=false`): one researcher's workspace cannot
talk to another's. DNS: Docker's embedded resolver answers container names only; its
forwarded queries for outside names die on the missing route (proved by the tests).

Pure builders (`make_network_options`, `make_firewall_rules`, `make_firewall_teardown`)
and thin appliers (`apply_firewall`, `remove_firewall`, the only code that runs iptables).
Imports nothing from the rest of SPE except exceptions.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
from dataclasses import dataclass
from typing import Callable, Sequence

from hub.exceptions import Failure, InvalidInput

DEFAULT_NETWORK = "spe-internal"
DEFAULT_BRIDGE = "spe-internal0"
DEFAULT_CHAIN = "SPE-WORKSPACE"

_BRIDGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")  # Linux IFNAMSIZ: 15 characters
_CHAIN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,27}")  # iptables: 28 characters


@dataclass(frozen=True)
class FirewallPlan:
    """What a workspace may reach on the host: `allowed_tcp_ports` on `gateway_ip`, nothing else."""

    bridge: str
    gateway_ip: str
    allowed_tcp_ports: tuple[int, ...]
    chain: str = DEFAULT_CHAIN
    drop_target: str = "DROP"

    def __post_init__(self):
        check_bridge_name(self.bridge)
        check_chain_name(self.chain)
        try:
            ipaddress.IPv4Address(self.gateway_ip)
        except ValueError:
            raise InvalidInput(f"not an IPv4 address: {self.gateway_ip!r}", field="gateway_ip") from None
        for port in self.allowed_tcp_ports:
            if not (isinstance(port, int) and 0 < port < 65536):
                raise InvalidInput(f"not a TCP port: {port!r}", field="allowed_tcp_ports")
        if self.drop_target not in ("DROP", "REJECT"):
            raise InvalidInput(f"drop_target must be DROP or REJECT, not {self.drop_target!r}", field="drop_target")


def check_bridge_name(name: str) -> str:
    if not _BRIDGE_RE.fullmatch(name or ""):
        raise InvalidInput(f"bridge interface name {name!r} must be 1-15 characters [A-Za-z0-9_.-]", field="bridge")
    return name


def check_chain_name(name: str) -> str:
    if not _CHAIN_RE.fullmatch(name or ""):
        raise InvalidInput(f"iptables chain name {name!r} must be 1-28 characters [A-Za-z0-9_-]", field="chain")
    return name


def make_network_options(bridge: str) -> dict:
    """Driver options for `docker network create --internal` (bridge name fixed so rules can name it)."""
    return {
        "com.docker.network.bridge.name": check_bridge_name(bridge),
        # no workspace-to-workspace traffic: each researcher is alone on the network
        "com.docker.network.bridge.enable_icc": "false",
        "com.docker.network.bridge.enable_ip_masquerade": "false",
    }


def make_firewall_rules(plan: FirewallPlan) -> list[list[str]]:
    """iptables argument lists that (re)build the chain and hook it into INPUT (idempotent as a sequence).

    The first command may fail when the chain exists; `apply_commands` treats `-N` that way.
    """
    c = plan.chain
    rules = [
        ["-N", c],
        ["-F", c],
        # replies to connections the host opened (hub -> workspace :8888) come back on the bridge
        ["-A", c, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
    ]
    for port in plan.allowed_tcp_ports:
        rules.append(["-A", c, "-d", plan.gateway_ip, "-p", "tcp", "-m", "tcp", "--dport", str(port),
                      "-m", "conntrack", "--ctstate", "NEW", "-j", "ACCEPT"])
    if plan.drop_target == "REJECT":
        rules.append(["-A", c, "-j", "REJECT", "--reject-with", "icmp-port-unreachable"])
    else:
        rules.append(["-A", c, "-j", "DROP"])
    rules.append(["-I", "INPUT", "1", "-i", plan.bridge, "-j", c])
    return rules


def make_firewall_teardown(plan: FirewallPlan) -> list[list[str]]:
    """Delete the INPUT jump, flush and delete the chain (the first command is the jump's)."""
    return [["-D", "INPUT", *jump_rule(plan)], ["-F", plan.chain], ["-X", plan.chain]]


def jump_rule(plan: FirewallPlan) -> list[str]:
    return ["-i", plan.bridge, "-j", plan.chain]


Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess"]


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=30)


def apply_firewall(plan: FirewallPlan, iptables: str = "iptables", run: Runner = _run) -> None:
    """Install the rules; the INPUT jump is added only once. Fails closed with the iptables message."""
    for args in make_firewall_rules(plan):
        if args[0] == "-N":
            exists = run([iptables, "-w", "-S", plan.chain])
            if exists.returncode == 0:
                continue
        if args[0] == "-I" and args[1] == "INPUT":
            present = run([iptables, "-w", "-C", "INPUT", *jump_rule(plan)])
            if present.returncode == 0:
                continue
        res = run([iptables, "-w", *args])
        if res.returncode != 0:
            raise Failure(f"iptables {' '.join(args)} failed: {res.stderr.strip() or res.stdout.strip()} "
                          "(the hub must run as root to isolate workspaces, or set SPE_FIREWALL=external "
                          "if the host firewall is managed elsewhere)")


def remove_firewall(plan: FirewallPlan, iptables: str = "iptables", run: Runner = _run) -> None:
    """Best-effort removal (a missing rule or chain is not an error); a jump added twice goes twice."""
    delete_jump, *rest = make_firewall_teardown(plan)
    while run([iptables, "-w", "-C", *delete_jump[1:]]).returncode == 0:
        run([iptables, "-w", *delete_jump])
    for args in rest:
        run([iptables, "-w", *args])


# --- the internal network (docker SDK; a narrow door used at hub start and in tests) --------

def ensure_network(client, name: str, bridge: str, labels: dict | None = None) -> str:
    """Create the internal network if missing; return its gateway IP. `client` is a `docker.DockerClient`."""
    import docker.errors

    try:
        net = client.networks.get(name)
    except docker.errors.NotFound:
        net = client.networks.create(name, driver="bridge", internal=True, options=make_network_options(bridge),
                                     labels=labels or {"app.kubernetes.io/part-of": "spe"})
    attrs = net.attrs
    if not attrs.get("Internal"):
        raise Failure(f"docker network {name!r} exists but is not --internal; remove it or choose another name")
    opts = attrs.get("Options") or {}
    if opts.get("com.docker.network.bridge.name") != bridge:
        raise Failure(f"docker network {name!r} uses bridge {opts.get('com.docker.network.bridge.name')!r}, "
                      f"not {bridge!r}; firewall rules would not match it")
    configs = (attrs.get("IPAM") or {}).get("Config") or []
    gateways = [c["Gateway"] for c in configs if c.get("Gateway") and ":" not in c["Gateway"]]
    if not gateways:
        raise Failure(f"docker network {name!r} has no IPv4 gateway")
    return gateways[0]
