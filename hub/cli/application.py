"""`spe application list|show|overdue|remind`: data access applications (operator side).

Applicants, assessors, deciders and data holders work in the portal's pages; operators follow
the queue and the legal deadlines here. `remind` emits the due reminders (the lifecycle service
does it too, every round).
"""

from __future__ import annotations

from hub.cli.common import engine_for, print_json, print_table
from hub.frontoffice.context import make_frontoffice
from hub.frontoffice.roles import operator
from hub.frontoffice.users import DemoUsers
from hub.hubapp.auth import demo_users_file


def register(sub) -> None:
    p = sub.add_parser("application", help="data access applications and data requests")
    s = p.add_subparsers(dest="application_cmd", required=True)
    ls = s.add_parser("list", help="every application with its state, owner and deadline")
    ls.add_argument("--state")
    ls.set_defaults(func=cmd_list)
    show = s.add_parser("show", help="one application: the document, the workflow facts, the clock")
    show.add_argument("application_id")
    show.set_defaults(func=cmd_show)
    s.add_parser("overdue", help="applications past their legal decision deadline").set_defaults(func=cmd_overdue)
    s.add_parser("remind", help="emit due deadline reminders as audit events").set_defaults(func=cmd_remind)


def _fo(settings):
    return make_frontoffice(engine_for(settings), settings, DemoUsers(demo_users_file(settings)))


def _row(fo, app) -> dict:
    from hub.frontoffice.applications.workflow import owner_of

    c = fo.applications.clock(app)
    return {"id": app.id, "kind": app.kind, "state": app.state, "owner": owner_of(app.state),
            "applicant": app.applicant, "assessor": app.facts.get("assessor", ""),
            "due": c.due or "", "days_left": "" if c.days_left is None else c.days_left}


def cmd_list(args, settings) -> int:
    fo = _fo(settings)
    rows = [_row(fo, a) for a in fo.applications.visible(operator(settings.actor), state=args.state)]
    print_table(rows, ["id", "kind", "state", "owner", "applicant", "assessor", "due", "days_left"])
    return 0


def cmd_show(args, settings) -> int:
    fo = _fo(settings)
    app = fo.applications.get(operator(settings.actor), args.application_id)
    c = fo.applications.clock(app)
    print_json({"id": app.id, "kind": app.kind, "state": app.state, "applicant": app.applicant,
                "document": app.document, "facts": app.facts,
                "clock": {"started": c.started, "due": c.due, "days_left": c.days_left, "paused": c.paused,
                          "extended": c.extended}})
    return 0


def cmd_overdue(args, settings) -> int:
    fo = _fo(settings)
    rows = [{**_row(fo, a), "days_over": -c.days_left} for a, c in fo.applications.overdue()]
    print_table(rows, ["id", "kind", "state", "owner", "assessor", "due", "days_over"])
    return 0


def cmd_remind(args, settings) -> int:
    sent = _fo(settings).applications.send_reminders()
    for r in sent:
        print(f"{r.application_id}: {r.action} (due {r.due}, {r.days} days {'left' if 'reminder' in r.action else 'over'})")
    print(f"{len(sent)} reminder(s) emitted")
    return 0
