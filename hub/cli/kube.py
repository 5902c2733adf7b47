"""`spe kube ...`: operate an SPE release on Kubernetes.

`spe kube provision PERMIT_ID`: provision a permit on a Kubernetes release of the SPE chart
from the operator's machine, through the `kubernetes` Python client and the operator's own
kubeconfig (not the hub's service account).

It checks the input locally, ensures the extracts volume, starts one provisioning Job derived
from the hub Deployment (hub.provision.kubejob) and follows it with one line per phase change.
The Job itself runs `spe permit apply` / `spe permit provision`, which audit inside the
cluster's registry; this side has no registry access and records nothing.

`spe kube netpol-check`: re-run the hub's start-up NetworkPolicy self-check
(hub.spawner.netpolcheck) inside the hub pod (`kubectl exec deploy/<release>-hub -- spe kube
netpol-check`), with the hub's values file, service account and registry; the verdict is
printed, audited as the operator and given as the exit code (0 enforced, 20 not enforced,
21 unknown; 1-3 are the usual errors).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from pathlib import Path

from hub.exceptions import InvalidInput, NotFound
from hub.hubapp.config_kube import VALUES_FILE, load_values
from hub.provision.kubejob import DEFAULT_DEADLINE_SECONDS, MAX_PERMIT_FILE_BYTES

log = logging.getLogger("spe.kube")
# netpol-check's exit code per verdict, apart from the error codes 1-3 (hub.exceptions)
VERDICT_EXIT_CODES = {"enforced": 0, "not-enforced": 20, "unknown": 21}


def register(sub) -> None:
    p = sub.add_parser("kube", help="operate an SPE release on Kubernetes (kubeconfig of the operator)")
    s = p.add_subparsers(dest="kube_cmd", required=True)
    prov = s.add_parser("provision", help="provision a permit's extract in a Kubernetes Job",
                        description="Ensure the extracts volume, run one provisioning Job derived from the hub "
                                    "Deployment, wait for it. A failed Job is kept for inspection.")
    prov.add_argument("permit_id")
    prov.add_argument("--permit-file", metavar="YAML", help="apply this permit first (carried in a ConfigMap owned by the Job)")
    prov.add_argument("--namespace", "-n", help="namespace of the release (default: the kubeconfig context's, else default)")
    prov.add_argument("--release", default="spe", help="Helm release name (default spe)")
    prov.add_argument("--kubeconfig", help="kubeconfig file (default $KUBECONFIG or ~/.kube/config)")
    prov.add_argument("--context", help="kubeconfig context (default the current one)")
    prov.add_argument("--timeout-seconds", type=int, default=DEFAULT_DEADLINE_SECONDS,
                      help=f"the Job's activeDeadlineSeconds; the command waits a minute longer (default {DEFAULT_DEADLINE_SECONDS})")
    prov.add_argument("--keep-job", action="store_true", help="keep the Job after success (a failed Job is always kept)")
    prov.add_argument("--create-extracts-size", metavar="SIZE",
                      help="create the extracts PVC with this size (e.g. 20Gi) if it is missing; without it a missing PVC is an error")
    prov.add_argument("--storage-class", help="storage class for a created extracts PVC (default the cluster's)")
    prov.set_defaults(func=cmd_provision)
    check = s.add_parser("netpol-check", help="re-run the NetworkPolicy self-check (inside the hub pod)",
                         description="Start the probe pod the hub starts at start-up (workspace labels, no netlock), "
                                     "print whether the cluster enforces the workspace NetworkPolicy, audit it. "
                                     "Exit code 0: enforced, 20: not enforced, 21: unknown (1-3: the usual errors).")
    check.add_argument("--values", metavar="YAML", help=f"the hub's chart values (default $SPE_HUB_VALUES or {VALUES_FILE})")
    check.set_defaults(func=cmd_netpol_check)


def _read_permit_file(path: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"permit file not found: {p}")
    if p.stat().st_size > MAX_PERMIT_FILE_BYTES:
        raise InvalidInput(f"permit file is larger than {MAX_PERMIT_FILE_BYTES} bytes", field=str(p))
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("permit file is not UTF-8 text", field=str(p)) from None


def cmd_provision(args, settings) -> int:
    from hub.provision.kubeops import KubeApi, ProvisionRequest, check_request, provision_on_cluster

    permit_text = _read_permit_file(args.permit_file) if args.permit_file else None
    req = ProvisionRequest(permit_id=args.permit_id, namespace=args.namespace or "default", release=args.release,
                           permit_text=permit_text, timeout_seconds=args.timeout_seconds, keep_job=args.keep_job,
                           create_extracts_size=args.create_extracts_size, storage_class=args.storage_class,
                           actor=settings.actor)
    check_request(req)  # before touching the kubeconfig: bad input fails the same everywhere
    api = KubeApi(args.kubeconfig or os.environ.get("KUBECONFIG"), args.context)
    if not args.namespace:
        req = dataclasses.replace(req, namespace=api.default_namespace())

    def say(message: str) -> None:
        print(f"provision {req.permit_id}: {message}", file=sys.stderr, flush=True)
        log.info("%s", message)

    outcome = provision_on_cluster(api, req, say)
    print(f"provisioned {req.permit_id} in {req.namespace}/{req.release} by job {outcome.job} "
          f"in {outcome.seconds:.0f} s" + (" (job kept)" if outcome.kept else " (job deleted)"))
    extract = next((line for line in outcome.log_tail.splitlines() if line.startswith("extract ")), None)
    if extract:
        print(extract)
    return 0


def _hub_values(path: str) -> dict:
    try:
        return load_values(path, field="--values")
    except NotFound as err:
        raise NotFound(f"{err}: run this inside the hub pod "
                       "(kubectl exec deploy/<release>-hub -- spe kube netpol-check)") from None


def cmd_netpol_check(args, settings) -> int:
    import asyncio

    from hub.spawner.netpolcheck import check_args, self_check

    values = _hub_values(args.values or os.environ.get("SPE_HUB_VALUES") or VALUES_FILE)
    if not os.environ.get("KUBERNETES_SERVICE_HOST"):
        raise InvalidInput("KUBERNETES_SERVICE_HOST is not set: run this inside the hub pod", field="environment")
    kwargs = check_args(values, db_url=settings.db_url, environ=os.environ)
    print(f"netpol-check: starting a probe pod in {kwargs['namespace']} (up to 4 min)", file=sys.stderr, flush=True)
    verdict = asyncio.run(self_check(**kwargs, actor=settings.actor, role="operator"))
    print(verdict.message)
    return VERDICT_EXIT_CODES[verdict.result]
