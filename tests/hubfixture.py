"""Session fixture: a real SPE hub (JupyterHub + configurable-http-proxy + PermitSpawner) on real Docker.

Everything it makes is named after one run id (network `spe-t<id>`, bridge `spet<id>`,
firewall chain `SPE-T<id>`, containers and volumes labelled `spe.network=spe-t<id>`) and is
removed at the end. The registry is real: Eunomia registered, the demo permits applied and
provisioned through the CLI. The workspace image is `spe/workspace:latest` (`make images`),
or $SPE_TEST_IMAGE.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest

from hub.cli import main as spe
from hub.db import make_engine
from hub.hubapp.auth import make_demo_users
from hub.hubapp.client import HubClient
from hub.hubapp.process import hub_env, remove_run_resources, start_hub, stop_pid, wait_for_hub
from hub.settings import Settings
from hub.hubapp.process import free_loopback_port as free_port  # noqa: E402
from tools.images import ensure_images

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "permits"

EXPIRING_PERMIT = """\
id: TEST-EXPIRE-1
title: Permit that the lifecycle test expires
purpose: scientific_research
purpose_description: Lifecycle test permit; its workspace must stop when it ends.
organisation: Example University Hospital
principal_investigator: alice
members:
  - {username: alice, role: principal_investigator}
dataset: eunomia
tables:
  person: [person_id, gender_concept_id, year_of_birth]
generalise:
  person.year_of_birth: {band: 5}
valid_from: "2026-01-01"
valid_until: "2030-12-31"
"""




@dataclass
class Hub:
    url: str
    home: Path
    settings: Settings
    passwords: dict
    name_prefix: str
    network: str
    bridge: str
    chain: str
    gateway_ip: str
    hub_port: int
    egress_port: int
    mirror_port: int
    image: str
    log_file: Path
    clients: dict = field(default_factory=dict)

    def client(self, user: str) -> HubClient:
        """A logged-in client of `user` holding an API token (cached per user)."""
        if user not in self.clients:
            c = HubClient(self.url)
            assert c.login(user, self.passwords[user]), f"{user} could not log in"
            c.create_token(note="integration test")
            self.clients[user] = c
        return self.clients[user]

    def log_tail(self, lines: int = 80) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no hub log)"


def _provision(home: Path, *args: str) -> None:
    code = spe(["--home", str(home), "--actor", "tester", *args])
    assert code == 0, f"spe {' '.join(args)} failed with {code}"


@pytest.fixture(scope="session")
def spe_hub(tmp_path_factory):
    run = uuid.uuid4().hex[:6]
    home = tmp_path_factory.mktemp(f"spe-hub-{run}")
    image = os.environ.get("SPE_TEST_IMAGE", "spe/workspace:latest")
    if "SPE_TEST_IMAGE" not in os.environ:
        ensure_images()  # builds only when the image inputs changed (make images)
    client = docker.from_env()
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        pytest.fail(f"workspace image {image} is missing: run `make images` (or set SPE_TEST_IMAGE)")

    settings = Settings(home=home, db_url=f"sqlite:///{home / 'registry.db'}", actor="tester")
    _provision(home, "dataset", "add-example")
    expiring = home / "test-expire.yaml"
    expiring.write_text(EXPIRING_PERMIT)
    for doc in (EXAMPLES / "demo-gibleed.yaml", EXAMPLES / "demo-second.yaml", expiring):
        _provision(home, "permit", "apply", str(doc))
    for pid in ("DEMO-2026-001", "DEMO-2026-002", "TEST-EXPIRE-1"):
        _provision(home, "permit", "provision", pid)
    passwords = make_demo_users(home / "hub" / "demo-users.json")

    network, bridge, chain = f"spe-t{run}", f"spet{run}", f"SPE-T{run.upper()}"
    ports = {k: free_port() for k in ("public", "proxy", "hub", "egress", "mirror")}
    env = hub_env(dict(os.environ),
                  SPE_HOME=home, SPE_DB_URL=settings.db_url, SPE_IMAGE=image,
                  SPE_NETWORK=network, SPE_BRIDGE=bridge, SPE_FIREWALL_CHAIN=chain,
                  SPE_PUBLIC_PORT=ports["public"], SPE_PROXY_API_PORT=ports["proxy"],
                  SPE_HUB_PORT=ports["hub"], SPE_EGRESS_PORT=ports["egress"], SPE_MIRROR_PORT=ports["mirror"],
                  SPE_LIFECYCLE_PERIOD_SECONDS=5, SPE_NAME_PREFIX=f"spe-t{run}", CONFIGPROXY_AUTH_TOKEN=uuid.uuid4().hex)
    log_file = home / "hub.log"
    proc = start_hub(env, log_file, home)
    url = f"http://127.0.0.1:{ports['public']}"
    try:
        wait_for_hub(url, proc, log_file, timeout_seconds=240)  # a loaded 2-core machine is slow to start a hub
        gateway = client.networks.get(network).attrs["IPAM"]["Config"][0]["Gateway"]
        make_engine(settings.db_url)
        yield Hub(url=url, home=home, settings=settings, passwords=passwords, name_prefix=f"spe-t{run}", network=network, bridge=bridge,
                  chain=chain, gateway_ip=gateway, hub_port=ports["hub"], egress_port=ports["egress"],
                  mirror_port=ports["mirror"], image=image, log_file=log_file)
    finally:
        stop_pid(proc.pid)
        proc.wait()
        remove_run_resources(client, network, bridge, chain)


@contextmanager
def open_workspace(hub: Hub, user: str, server: str, timeout_seconds: float = 180):
    """`user`'s workspace `server` on `hub`, started, with a kernel in it; (client, kernel).
    The kernel is closed and the workspace stopped afterwards."""
    from tests.integration.kernel import Kernel

    client = hub.client(user)
    client.spawn(user, server)
    kernel = Kernel(client.user_url(user, server), client.token, timeout_seconds=timeout_seconds)
    try:
        yield client, kernel
    finally:
        kernel.close()
        client.stop_server(user, server)
