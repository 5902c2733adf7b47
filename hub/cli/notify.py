"""`spe notify run|list|retry|address`: the notification mailer and its outbox.

`run` turns audit events into mail and sends it (a loop; `--once` for one round); `list` shows
the outbox; `retry` queues failed mail again; `address set|list` keeps the address book (OIDC
logins fill it from the IdP's e-mail claim). SMTP settings: `c.SpeNotify.*` in the site config
file (SPE_HUB_EXTRA_CONFIG) or SPE_SMTP_* variables (hub.notify.settings).
"""

from __future__ import annotations

import json
import logging
import os
import time

from hub import audit
from hub.cli.common import engine_for, print_table
from hub.hubapp.options import site_config
from hub.notify import recipients, service
from hub.notify.settings import notify_settings_from

log = logging.getLogger("spe.notify")


def register(sub) -> None:
    p = sub.add_parser("notify", help="notification mail: send, list, retry; the address book")
    s = p.add_subparsers(dest="notify_cmd", required=True)
    run = s.add_parser("run", help="turn audit events into mail and send it, every period")
    run.add_argument("--once", action="store_true", help="one round, then exit")
    run.set_defaults(func=cmd_run)
    ls = s.add_parser("list", help="the outbox, newest first")
    ls.add_argument("--state", help="only mails in this state (" + ", ".join(service.STATES) + ")")
    ls.add_argument("--limit", type=int, default=50)
    ls.set_defaults(func=cmd_list)
    rt = s.add_parser("retry", help="queue failed mails again (all failed ones, or the given ids)")
    rt.add_argument("ids", nargs="*", type=int)
    rt.set_defaults(func=cmd_retry)
    ad = s.add_parser("address", help="the address book: who gets mail where")
    a = ad.add_subparsers(dest="address_cmd", required=True)
    st = a.add_parser("set", help="set a person's address, groups or opt-out")
    st.add_argument("user")
    st.add_argument("address", nargs="?")
    st.add_argument("--group", action="append", dest="groups", help="SPE group (repeat); replaces the groups")
    opt = st.add_mutually_exclusive_group()
    opt.add_argument("--opt-out", dest="opt_out", action="store_true", default=None,
                     help="no non-mandatory mail (decisions on one's own application are still sent)")
    opt.add_argument("--opt-in", dest="opt_out", action="store_false")
    dig = st.add_mutually_exclusive_group()
    dig.add_argument("--digest", dest="digest", action="store_true", default=None,
                     help="non-mandatory mail once a day in one digest")
    dig.add_argument("--no-digest", dest="digest", action="store_false")
    st.set_defaults(func=cmd_address_set)
    a.add_parser("list", help="every entry").set_defaults(func=cmd_address_list)


def _settings():
    return notify_settings_from(os.environ, site_config(os.environ.get("SPE_HUB_EXTRA_CONFIG")))


def cmd_run(args, settings) -> int:
    notify = _settings()
    engine = engine_for(settings)
    if not notify.smtp_host:
        print("spe notify: no SMTP server set (SPE_SMTP_HOST or c.SpeNotify.smtp_host): mails wait in the outbox")
    while True:
        try:
            r = service.run_once(engine, notify)
        except Exception:  # the registry is away for a moment: a service keeps going, a single round fails
            if args.once:
                raise
            log.exception("notify round failed; trying again in %s s", notify.period_seconds)
        else:
            if r.events or r.sent or r.failed_tries:
                print(f"notify: {r.events} events read, {r.queued} mails queued, {r.sent} sent, "
                      f"{r.failed_tries} failed tries", flush=True)
        if args.once:
            return 0
        time.sleep(notify.period_seconds)


def cmd_list(args, settings) -> int:
    rows = service.list_mails(engine_for(settings), args.state, args.limit)
    for r in rows:
        r["last_error"] = (r["last_error"] or "")[:60]
    print_table(rows, ["id", "event_seq", "action", "recipient", "state", "attempts", "next_attempt_at",
                       "sent_at", "last_error"])
    return 0


def cmd_retry(args, settings) -> int:
    ids = service.retry(engine_for(settings), settings.actor, args.ids or None)
    print(f"queued again: {len(ids)} mail(s)" + (f" ({', '.join(map(str, ids))})" if ids else ""))
    return 0


def cmd_address_set(args, settings) -> int:
    engine = engine_for(settings)
    with engine.begin() as conn:
        entry = recipients.set_person(conn, args.user, address=args.address, groups=args.groups, opt_out=args.opt_out,
                                      digest=args.digest)
        audit.record(conn, actor=settings.actor, role="operator", action="notify.address", detail={
            "user": args.user, "address_set": args.address is not None, "groups": args.groups,
            "opt_out": args.opt_out, "digest": args.digest})
    print(f"{entry['username']}: {entry['address'] or '(no address)'} groups {json.loads(entry['groups_json'])}"
          f"{' (opted out)' if entry['opt_out'] else ''}{' (daily digest)' if entry['digest'] else ''}")
    return 0


def cmd_address_list(args, settings) -> int:
    from hub.notify.tables import notify_people

    with engine_for(settings).connect() as conn:
        rows = [dict(r) for r in conn.execute(notify_people.select().order_by(notify_people.c.username)).mappings()]
    for r in rows:
        r["groups"] = ",".join(json.loads(r.pop("groups_json")))
    print_table(rows, ["username", "address", "groups", "opt_out", "digest", "updated_at"])
    return 0
