"""Permit lifecycle enforcement: a hub-managed service that runs every few seconds.

Each round (`run_once`):
1. permits past `valid_until` are expired (`PermitStore.transition(id, "expire", "system")`);
2. every running workspace whose permit is no longer open to its user (expired, suspended,
   revoked, outside its dates, user removed) is stopped through the hub API and audited
   (`workspace.terminate`) — so within one period, ≤ 60 s (new spawns are refused by
   PermitSpawner itself, which re-reads the permit on every start);
3. extracts and work volumes of ended permits are deleted once the grace period after the
   end has passed (default 30 days; EHDS: at most six months), audited (`extract.delete`);
4. the front office's due deadline reminders are emitted and, once a day, storage is metered
   (`hub.frontoffice.rounds`);
5. the audit chain head is signed hourly and the whole trail verified daily (hub.lifecycle_audit;
   `--checkpoint-every-seconds`, `--verify-every-seconds`), for the register to publish and the
   alert rules to watch.

The decisions are pure (`plan_round`); the I/O is the hub REST API (one door: `HubApi`),
the registry, the extracts directory and the work volumes of the backend the workspaces run on
(hub.lifecycle_backends: Docker volumes, or PVCs with `--backend kube`). Entry point: `python -m
hub.lifecycle` (reads JUPYTERHUB_API_URL/TOKEN, SPE_HOME, SPE_DB_URL). Must not import `egress`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import sqlalchemy as sa

from hub import audit
from hub.db import make_engine
from hub.exceptions import Refused
from hub.frontoffice.rounds import run_round
from hub.hubapp.options import LIFECYCLE_MAX_PERIOD_SECONDS, MAX_EXTRACT_GRACE_DAYS
from hub.lifecycle_audit import audit_round
from hub.lifecycle_backends import DockerWorkVolumes, KubeWorkVolumes, WorkVolumes
from hub.permits.access import check_can_open, permit_for_server
from hub.permits.lifecycle import ENDED
from hub.permits.model import Permit
from hub.permits.store import PermitStore
from hub.provision.extracts import delete_extracts
from hub.registry_tables import permits as permits_table
from hub.settings import Settings

log = logging.getLogger("spe.lifecycle")
SYSTEM = "system"


@dataclass(frozen=True)
class Running:
    user: str
    server: str


@dataclass
class RoundPlan:
    expire: list[str] = field(default_factory=list)  # permit ids past valid_until
    stop: list[tuple[Running, str, str]] = field(default_factory=list)  # (server, permit id or "", reason)
    delete_data: list[str] = field(default_factory=list)  # permit ids whose grace period has passed


def plan_round(permits: list[Permit], ended_at: dict[str, datetime], running: list[Running],
               provisioned: set[str], today: date, now: datetime, grace_days: int) -> RoundPlan:
    """What this round must do (pure). `ended_at`: permit id -> when it became expired/revoked."""
    plan = RoundPlan()
    by_id = {p.id: p for p in permits}
    for p in permits:
        if p.status in ("draft", "active", "suspended") and p.valid_until < today:
            plan.expire.append(p.id)
    expiring = set(plan.expire)
    for r in running:
        try:
            p = permit_for_server(permits, r.server)
        except Refused:
            plan.stop.append((r, "", "no permit opens as this workspace"))
            continue
        if p.id in expiring:
            plan.stop.append((r, p.id, f"permit expired on {p.valid_until}"))
            continue
        try:
            check_can_open(p, r.user, today)
        except Refused as err:  # the same rule, and the same reason, as a refused spawn
            plan.stop.append((r, p.id, str(err)))
    grace = timedelta(days=grace_days)
    for pid in sorted(provisioned):
        p = by_id.get(pid)
        if p is not None and p.status in ENDED and pid in ended_at and now - ended_at[pid] >= grace:
            plan.delete_data.append(pid)
    return plan


class HubApi:
    """The one door to the JupyterHub REST API (service token)."""

    def __init__(self, api_url: str, token: str, timeout_seconds: float = 10):
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.timeout_seconds = timeout_seconds

    def _call(self, method: str, path: str):
        req = urllib.request.Request(self.api_url + path, method=method,
                                     headers={"Authorization": f"token {self.token}",
                                              "Accept": "application/jupyterhub-pagination+json"})
        with urllib.request.urlopen(req, timeout=self.timeout_seconds) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def running_servers(self) -> list[Running]:
        out, offset = [], 0
        while True:
            page = self._call("GET", f"/users?state=active&offset={offset}&limit=200")
            items = page["items"] if isinstance(page, dict) else page
            for user in items:
                for server_name, server in (user.get("servers") or {}).items():
                    # a server already stopping is not stopped (and audited) a second time
                    if server_name and (server.get("ready") or server.get("pending")) and server.get("pending") != "stop":
                        out.append(Running(user["name"], server_name))
            nxt = page.get("_pagination", {}).get("next") if isinstance(page, dict) else None
            if not nxt:
                return out
            offset = nxt["offset"]

    def stop_server(self, user: str, server: str) -> None:
        q = urllib.parse.quote
        try:
            self._call("DELETE", f"/users/{q(user, safe='')}/servers/{q(server, safe='')}")
        except urllib.error.HTTPError as err:
            if err.code != 404:  # already gone
                raise


def _ended_at(engine: sa.Engine) -> dict[str, datetime]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(permits_table.c.id, permits_table.c.updated_at)
                            .where(permits_table.c.status.in_(ENDED))).all()
    out = {}
    for pid, updated in rows:
        when = datetime.fromisoformat(str(updated).replace("Z", "+00:00"))
        out[pid] = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return out


def _provisioned(settings: Settings) -> set[str]:
    root = settings.extracts_dir
    return {p.name for p in root.iterdir() if p.is_dir()} if root.is_dir() else set()


def delete_permit_data(settings: Settings, engine: sa.Engine, permit_id: str, docker_client=None,
                       name_prefix: str = "spe", volumes: WorkVolumes | None = None) -> None:
    """Delete the extracts (all versions, audited by provisioning) and the work volumes of an
    ended permit, through `volumes` (hub.lifecycle_backends; a Docker client builds the Docker one)."""
    delete_extracts(engine, settings, permit_id, SYSTEM, "grace period after the permit ended has passed")
    if volumes is None and docker_client is not None:
        volumes = DockerWorkVolumes(docker_client, name_prefix)
    if volumes is None:
        return
    deleted = volumes.delete_for_permit(permit_id)
    if deleted:
        with engine.begin() as conn:
            audit.record(conn, actor=SYSTEM, role="system", action="workspace.volumes.delete", permit_id=permit_id,
                         detail={"volumes": deleted, "reason": "grace period after the permit ended has passed"})


def run_once(settings: Settings, api: HubApi, grace_days: int, today: date | None = None,
             now: datetime | None = None, docker_client=None, name_prefix: str = "spe",
             volumes: WorkVolumes | None = None, audit_schedule: tuple[timedelta, timedelta] | None = None) -> RoundPlan:
    engine = make_engine(settings.db_url)
    store = PermitStore(engine)
    today = today or date.today()
    now = now or datetime.now(timezone.utc)
    plan = plan_round(store.list(), _ended_at(engine), api.running_servers(), _provisioned(settings),
                      today, now, grace_days)
    for pid in plan.expire:
        try:
            store.transition(pid, "expire", SYSTEM, reason=f"valid until {store.get(pid).valid_until}")
        except Refused:
            log.info("permit %s changed meanwhile; not expiring", pid)
    for running, pid, reason in plan.stop:
        api.stop_server(running.user, running.server)
        with engine.begin() as conn:
            audit.record(conn, actor=SYSTEM, role="system", action="workspace.terminate", permit_id=pid or None,
                         detail={"user": running.user, "server": running.server, "reason": reason})
        log.info("stopped %s/%s: %s", running.user, running.server, reason)
    for pid in plan.delete_data:
        delete_permit_data(settings, engine, pid, docker_client, name_prefix, volumes)
        log.info("deleted extracts of ended permit %s", pid)
    try:  # deadline reminders and the daily storage meter must never stop the enforcement above
        run_round(settings, engine, today, docker_client, name_prefix)
    except Exception:
        log.exception("front office round failed")
    try:  # signed checkpoints (the register publishes them) and verification (hub.lifecycle_audit)
        audit_round(engine, settings.keys_dir, now, *(audit_schedule or ()), home=settings.home)
    except Exception:
        log.exception("scheduled audit checkpoint or verification failed")
    return plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hub.lifecycle", description=__doc__.splitlines()[0])
    parser.add_argument("--period-seconds", type=float, default=30,
                        help=f"seconds between rounds (1..{LIFECYCLE_MAX_PERIOD_SECONDS})")
    parser.add_argument("--grace-days", type=int, default=30,
                        help=f"days after a permit ends before its data is deleted (0..{MAX_EXTRACT_GRACE_DAYS})")
    parser.add_argument("--name-prefix", default="spe", help="this deployment's container/volume prefix (docker)")
    parser.add_argument("--backend", choices=("docker", "kube"), default="docker",
                        help="where workspaces run: their work volumes are Docker volumes or PVCs")
    parser.add_argument("--namespace", default="", help="the hub's namespace (kube): where the work PVCs are")
    parser.add_argument("--checkpoint-every-seconds", type=int, default=3600,
                        help="sign an audit checkpoint this often when the trail grew (default: an hour)")
    parser.add_argument("--verify-every-seconds", type=int, default=86400,
                        help="verify the whole audit trail this often (default: a day)")
    parser.add_argument("--once", action="store_true", help="run one round and exit")
    args = parser.parse_args(argv)
    if not 1 <= args.period_seconds <= LIFECYCLE_MAX_PERIOD_SECONDS:
        parser.error(f"--period-seconds must be 1..{LIFECYCLE_MAX_PERIOD_SECONDS}")
    if not 0 <= args.grace_days <= MAX_EXTRACT_GRACE_DAYS:
        parser.error(f"--grace-days must be 0..{MAX_EXTRACT_GRACE_DAYS} (EHDS: six months)")
    if args.checkpoint_every_seconds <= 0 or args.verify_every_seconds <= 0:
        parser.error("--checkpoint-every-seconds and --verify-every-seconds must be positive")
    if args.backend == "kube" and not args.namespace:
        parser.error("--backend kube needs --namespace")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s lifecycle %(levelname)s %(message)s")
    settings = Settings.from_env(actor=SYSTEM)
    api = HubApi(os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"])
    docker_client, volumes = None, None
    schedule = (timedelta(seconds=args.checkpoint_every_seconds), timedelta(seconds=args.verify_every_seconds))
    if args.backend == "kube":  # fails here, loudly, if the pod's service account is not mounted
        volumes = KubeWorkVolumes.in_cluster(args.namespace)
    else:
        try:
            import docker

            docker_client = docker.from_env()
        except Exception:  # no engine reachable: extracts are still deleted, volumes on the next round
            log.warning("docker not reachable; work volumes of ended permits are not deleted this time")
    while True:
        try:
            run_once(settings, api, args.grace_days, docker_client=docker_client, name_prefix=args.name_prefix,
                     volumes=volumes, audit_schedule=schedule)
        except Exception:  # keep enforcing: one bad round must not end the service
            log.exception("lifecycle round failed")
        if args.once:
            return 0
        time.sleep(args.period_seconds)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
