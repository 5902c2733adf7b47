"""`spe permit apply|list|show|suspend|activate|revoke|expire|provision`."""

from __future__ import annotations

from dataclasses import asdict

from hub.cli.common import engine_for, print_json, print_table
from hub.cli.provision import register_provision
from hub.permits.store import PermitStore


def register(sub) -> None:
    p = sub.add_parser("permit", help="apply permits and manage their lifecycle")
    s = p.add_subparsers(dest="permit_cmd", required=True)
    a = s.add_parser("apply", help="store a permit YAML (idempotent; a change makes a new version)")
    a.add_argument("file")
    a.set_defaults(func=cmd_apply)
    ls = s.add_parser("list")
    ls.add_argument("--status")
    ls.set_defaults(func=cmd_list)
    show = s.add_parser("show")
    show.add_argument("permit_id")
    show.set_defaults(func=cmd_show)
    pol = s.add_parser("policy", help="set a permit's egress disclosure rules from an ACRO policy YAML "
                                      "(a new permit version)")
    pol.add_argument("permit_id")
    pol.add_argument("--acro", required=True, metavar="FILE",
                     help="ACRO-style policy YAML (safe_threshold, safe_nk_n, safe_pratio_p, ...)")
    pol.set_defaults(func=cmd_policy)
    for action, text in [("suspend", "suspend a permit (running workspaces are stopped)"),
                         ("activate", "activate a draft or reinstate a suspended permit"),
                         ("revoke", "revoke a permit (final; data deleted after the grace period)"),
                         ("expire", "expire a permit now (final)")]:
        t = s.add_parser(action, help=text)
        t.add_argument("permit_id")
        t.add_argument("--reason", default="")
        t.set_defaults(func=cmd_transition, action=action)
    register_provision(s)


def cmd_apply(args, settings) -> int:
    permit, outcome = PermitStore(engine_for(settings)).apply_file(args.file, settings.actor)
    print(f"permit {permit.id} {outcome}: version {permit.version}, {permit.status}")
    return 0


def cmd_policy(args, settings) -> int:
    permit, outcome = PermitStore(engine_for(settings)).apply_acro_policy(args.permit_id, args.acro, settings.actor)
    print(f"permit {permit.id} {outcome}: version {permit.version}; egress rules: "
          + ", ".join(f"{k}={v}" for k, v in sorted(asdict(permit.egress).items())))
    return 0


def cmd_list(args, settings) -> int:
    rows = [{"id": p.id, "status": p.status, "version": p.version, "dataset": p.dataset, "purpose": p.purpose,
             "valid_until": p.valid_until, "members": len(p.members)}
            for p in PermitStore(engine_for(settings)).list(status=args.status)]
    print_table(rows, ["id", "status", "version", "dataset", "purpose", "valid_until", "members"])
    return 0


def cmd_show(args, settings) -> int:
    store = PermitStore(engine_for(settings))
    permit = store.get(args.permit_id)
    print_json({"id": permit.id, "status": permit.status, "version": permit.version,
                "versions": store.versions(permit.id), "document": permit.document,
                "effective": {"dp": asdict(permit.dp), "egress": asdict(permit.egress),
                              "resources": asdict(permit.resources)}})
    return 0


def cmd_transition(args, settings) -> int:
    permit = PermitStore(engine_for(settings)).transition(args.permit_id, args.action, settings.actor, args.reason)
    print(f"permit {permit.id} is now {permit.status}")
    return 0
