"""Hub options: every knob of a running SPE hub, read once from the environment at the entry point.

Environment variables (all optional): SPE_HOME, SPE_DB_URL, SPE_PUBLIC_IP (127.0.0.1),
SPE_PUBLIC_PORT (8000), SPE_PROXY_API_PORT (8001), SPE_HUB_PORT (8081), SPE_EGRESS_PORT (8100),
SPE_NETWORK (spe-internal), SPE_BRIDGE (spe-internal0), SPE_FIREWALL_CHAIN (SPE-WORKSPACE),
SPE_FIREWALL (enforce | external), SPE_IMAGE (spe/workspace:latest), SPE_IDLE_TIMEOUT_SECONDS (3600),
SPE_LIFECYCLE_PERIOD_SECONDS (30), SPE_EXTRACT_GRACE_DAYS (30, at most 183),
SPE_AUTHENTICATOR (demo | oidc).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hub.exceptions import InvalidInput
from hub.netfw import DEFAULT_BRIDGE, DEFAULT_CHAIN, DEFAULT_NETWORK, check_bridge_name, check_chain_name

MAX_EXTRACT_GRACE_DAYS = 183  # EHDS: processed data deleted at most six months after the permit ends
LIFECYCLE_MAX_PERIOD_SECONDS = 60  # workspaces of an ended permit stop within 60 s


@dataclass(frozen=True)
class HubOptions:
    home: Path
    db_url: str
    public_ip: str = "127.0.0.1"
    public_port: int = 8000
    proxy_api_port: int = 8001
    hub_port: int = 8081
    egress_port: int = 8100
    recorder_port: int = 0  # session recorder on 127.0.0.1; 0 = a free port chosen at hub start
    network: str = DEFAULT_NETWORK
    bridge: str = DEFAULT_BRIDGE
    firewall_chain: str = DEFAULT_CHAIN
    firewall: str = "enforce"
    image: str = "spe/workspace:latest"
    idle_timeout_seconds: int = 3600
    lifecycle_period_seconds: int = 30
    extract_grace_days: int = 30
    authenticator: str = "demo"

    def __post_init__(self):
        check_bridge_name(self.bridge)
        check_chain_name(self.firewall_chain)
        if self.firewall not in ("enforce", "external"):
            raise InvalidInput(f"SPE_FIREWALL must be 'enforce' or 'external', not {self.firewall!r}", field="firewall")
        if not 0 <= self.extract_grace_days <= MAX_EXTRACT_GRACE_DAYS:
            raise InvalidInput(f"extract grace period must be 0..{MAX_EXTRACT_GRACE_DAYS} days (EHDS: six months), "
                               f"not {self.extract_grace_days}", field="extract_grace_days")
        if not 1 <= self.lifecycle_period_seconds <= LIFECYCLE_MAX_PERIOD_SECONDS:
            raise InvalidInput(f"lifecycle period must be 1..{LIFECYCLE_MAX_PERIOD_SECONDS} s, "
                               f"not {self.lifecycle_period_seconds}", field="lifecycle_period_seconds")
        if self.idle_timeout_seconds < 60:
            raise InvalidInput(f"idle timeout must be at least 60 s, not {self.idle_timeout_seconds}",
                               field="idle_timeout_seconds")
        if self.authenticator not in ("demo", "oidc"):
            raise InvalidInput(f"SPE_AUTHENTICATOR must be 'demo' or 'oidc', not {self.authenticator!r}",
                               field="authenticator")

    @property
    def users_file(self) -> Path:
        return self.home / "hub" / "demo-users.json"

    @property
    def state_dir(self) -> Path:
        return self.home / "hub"

    @classmethod
    def from_env(cls, env: dict | None = None) -> "HubOptions":
        env = os.environ if env is None else env
        home = Path(env.get("SPE_HOME") or ".spe").resolve()

        def num(key: str, default: int) -> int:
            raw = env.get(key)
            if raw in (None, ""):
                return default
            try:
                return int(raw)
            except ValueError:
                raise InvalidInput(f"{key} must be a whole number, not {raw!r}", field=key) from None

        return cls(
            home=home,
            db_url=env.get("SPE_DB_URL") or f"sqlite:///{home / 'registry.db'}",
            public_ip=env.get("SPE_PUBLIC_IP", "127.0.0.1"),
            public_port=num("SPE_PUBLIC_PORT", 8000),
            proxy_api_port=num("SPE_PROXY_API_PORT", 8001),
            hub_port=num("SPE_HUB_PORT", 8081),
            egress_port=num("SPE_EGRESS_PORT", 8100),
            recorder_port=num("SPE_RECORDER_PORT", 0),
            network=env.get("SPE_NETWORK", DEFAULT_NETWORK),
            bridge=env.get("SPE_BRIDGE", DEFAULT_BRIDGE),
            firewall_chain=env.get("SPE_FIREWALL_CHAIN", DEFAULT_CHAIN),
            firewall=env.get("SPE_FIREWALL", "enforce"),
            image=env.get("SPE_IMAGE", "spe/workspace:latest"),
            idle_timeout_seconds=num("SPE_IDLE_TIMEOUT_SECONDS", 3600),
            lifecycle_period_seconds=num("SPE_LIFECYCLE_PERIOD_SECONDS", 30),
            extract_grace_days=num("SPE_EXTRACT_GRACE_DAYS", 30),
            authenticator=env.get("SPE_AUTHENTICATOR", "demo"),
        )

    def service_env(self) -> dict:
        """Environment handed to hub-managed services (lifecycle, egress)."""
        return {"SPE_HOME": str(self.home), "SPE_DB_URL": self.db_url}
