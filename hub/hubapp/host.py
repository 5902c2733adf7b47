"""Prepare the host before the hub starts: state dirs, the internal network, the firewall.

Fails closed: if the firewall cannot be installed the hub does not start (unless the
operator says the host firewall is managed elsewhere, SPE_FIREWALL=external). Must not
import `egress`.
"""

from __future__ import annotations

import importlib.util

from hub.hubapp.options import HubOptions
from hub.netfw import FirewallPlan, apply_firewall, ensure_network


def firewall_plan(opts: HubOptions, gateway_ip: str) -> FirewallPlan:
    return FirewallPlan(bridge=opts.bridge, gateway_ip=gateway_ip,
                        allowed_tcp_ports=(opts.hub_port, opts.egress_port), chain=opts.firewall_chain)


def prepare_host(opts: HubOptions, docker_client=None) -> str:
    """Create dirs, ensure the internal network and its firewall; return the gateway IP."""
    import docker

    opts.home.mkdir(parents=True, exist_ok=True)
    opts.state_dir.mkdir(mode=0o700, exist_ok=True)
    (opts.home / "extracts").mkdir(exist_ok=True)
    client = docker_client or docker.from_env()
    gateway_ip = ensure_network(client, opts.network, opts.bridge)
    if opts.firewall == "enforce":
        apply_firewall(firewall_plan(opts, gateway_ip))
    return gateway_ip


def egress_available() -> bool:
    try:
        return importlib.util.find_spec("egress.app") is not None
    except ModuleNotFoundError:
        return False
