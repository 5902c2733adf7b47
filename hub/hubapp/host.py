"""Prepare the host before the hub starts: state dirs, the internal network, the firewall.

Fails closed: if the firewall cannot be installed the hub does not start (unless the
operator says the host firewall is managed elsewhere, SPE_FIREWALL=external). Must not
import `egress`.
"""

from __future__ import annotations

import importlib.util

from hub.hubapp.options import SpeDockerHub
from hub.netfw import FirewallPlan, apply_firewall, ensure_network
from hub.settings import Settings
from hub.staging import ensure_dir


def firewall_plan(spe: SpeDockerHub, gateway_ip: str) -> FirewallPlan:
    return FirewallPlan(bridge=spe.bridge, gateway_ip=gateway_ip,
                        allowed_tcp_ports=(spe.hub_port, spe.egress_port, spe.mirror_port),
                        chain=spe.firewall_chain)


def prepare_host(spe: SpeDockerHub, settings: Settings, docker_client=None) -> str:
    """Create dirs, ensure the internal network and its firewall; return the gateway IP."""
    import docker

    settings.home.mkdir(parents=True, exist_ok=True)
    settings.hub_dir.mkdir(mode=0o700, exist_ok=True)
    settings.extracts_dir.mkdir(exist_ok=True)
    ensure_dir(settings.imports_dir)
    ensure_dir(settings.mirror_dir)
    client = docker_client or docker.from_env()
    try:
        gateway_ip = ensure_network(client, spe.network, spe.bridge)
    finally:
        if docker_client is None:
            client.close()
    if spe.firewall == "enforce":
        apply_firewall(firewall_plan(spe, gateway_ip))
    return gateway_ip


def egress_available() -> bool:
    try:
        return importlib.util.find_spec("egress.app") is not None
    except ModuleNotFoundError:
        return False
