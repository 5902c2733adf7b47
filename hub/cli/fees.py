"""`spe fees schedule|estimate|meter|usage|invoice|invoices`: fees of the HDAB (EHDS Art. 62).

`schedule` shows the validated fee schedule ($SPE_HOME/fees.yaml or the default); `estimate`
prices an application file as the applicant will see it; `meter` samples today's storage of every
permit (the lifecycle service does it daily); `usage` shows a permit's metered month; `invoice`
issues a permit's monthly invoice (stored once, audited) and writes it as HTML and/or PDF.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

from hub.cli.common import engine_for, print_json, print_table
from hub.frontoffice.fees import metering
from hub.frontoffice.fees.invoice import build_invoice, check_month, issue_invoice, list_invoices, render_html, render_pdf
from hub.frontoffice.fees.schedule import CATEGORIES, load_schedule, schedule_path
from hub.frontoffice.config import load_hdab_config, text
from hub.permits.store import PermitStore
from hub.yamlio import load_yaml_file


def register(sub) -> None:
    p = sub.add_parser("fees", help="fee schedule, estimates, metering and invoices")
    s = p.add_subparsers(dest="fees_cmd", required=True)
    s.add_parser("schedule", help="show the validated fee schedule").set_defaults(func=cmd_schedule)
    est = s.add_parser("estimate", help="the fee estimate of an application YAML")
    est.add_argument("file")
    est.add_argument("--applicant", required=True, help="the applicant's user name (the team's principal investigator)")
    est.set_defaults(func=cmd_estimate)
    s.add_parser("meter", help="sample today's storage of every permit").set_defaults(func=cmd_meter)
    use = s.add_parser("usage", help="a permit's metered CPU-hours and GB-months in a month")
    use.add_argument("permit_id")
    use.add_argument("--month", default=date.today().strftime("%Y-%m"))
    use.set_defaults(func=cmd_usage)
    inv = s.add_parser("invoice", help="issue a permit's invoice for a month (HTML and PDF)")
    inv.add_argument("permit_id")
    inv.add_argument("--month", required=True, help="YYYY-MM")
    inv.add_argument("--category", choices=CATEGORIES, help="applicant category of a permit applied by hand")
    inv.add_argument("--html", metavar="FILE")
    inv.add_argument("--pdf", metavar="FILE")
    inv.set_defaults(func=cmd_invoice)
    ls = s.add_parser("invoices", help="issued invoices")
    ls.add_argument("--permit")
    ls.set_defaults(func=cmd_invoices)


def cmd_schedule(args, settings) -> int:
    schedule = load_schedule(settings)
    print(f"fee schedule: {schedule_path(settings)} ({schedule.currency})")
    print_json(load_yaml_file(schedule_path(settings), "fee schedule"))
    return 0


def cmd_estimate(args, settings) -> int:
    from hub.frontoffice.context import make_frontoffice
    from hub.frontoffice.users import DemoUsers
    from hub.hubapp.auth import demo_users_file

    fo = make_frontoffice(engine_for(settings), settings, DemoUsers(demo_users_file(settings)))
    doc = fo.applications.validate_document(load_yaml_file(args.file, "application"), args.applicant)
    fee = fo.applications.estimate(doc, args.applicant).as_dict()
    print_table(fee["lines"], ["description", "quantity", "unit", "unit_price", "amount", "reduction", "net", "party"])
    print(f"total {fee['total']} {fee['currency']} ({fee['category'].replace('_', ' ')}); shares: "
          + ", ".join(f"{p} {v}" for p, v in fee["shares"].items()))
    return 0


def cmd_meter(args, settings) -> int:
    try:
        import docker

        client = docker.from_env()
    except Exception:  # no engine: extracts are still metered
        client = None
    try:
        n = metering.record_usage(engine_for(settings), date.today(), settings.actor, client)
    finally:
        if client is not None:
            client.close()
    print(f"metered {n} permit(s) for {date.today()}" + ("" if client else " (work volumes not metered: no Docker engine)"))
    return 0


def cmd_usage(args, settings) -> int:
    engine = engine_for(settings)
    PermitStore(engine).get(args.permit_id)
    month = check_month(args.month)
    start, end = metering.month_bounds(month)
    now = datetime.now(timezone.utc)
    cpu = metering.cpu_hours(metering.permit_events(engine, args.permit_id, end), start, end, now, default_cpu=1.0)
    gbm = metering.storage_gb_months(metering.samples_of(engine, args.permit_id), month, now.date())
    print(f"{args.permit_id} {month}: {cpu} CPU-hours, {gbm} GB-months")
    return 0


def cmd_invoice(args, settings) -> int:
    from hub.frontoffice.catalogue.store import Catalogue

    engine = engine_for(settings)
    config = load_hdab_config(settings)
    permit = PermitStore(engine).get(args.permit_id)
    holders = {e["dataset"]: e["holder"]["id"] for e in Catalogue(engine, config).entries()}
    doc = build_invoice(engine, load_schedule(settings), permit, check_month(args.month), holders, category=args.category)
    doc, outcome = issue_invoice(engine, doc, settings.actor)
    hdab = text(config["hdab"]["name"])
    if args.html:
        Path(args.html).write_text(render_html(doc, hdab), encoding="utf-8")
    if args.pdf:
        Path(args.pdf).write_bytes(render_pdf(doc, hdab))
    print(f"invoice {doc['id']} {outcome}: {doc['total']} {doc['currency']}; shares "
          + ", ".join(f"{p} {v}" for p, v in doc["shares"].items()))
    return 0


def cmd_invoices(args, settings) -> int:
    rows = [{"id": d["id"], "permit": d["permit_id"], "month": d["month"], "total": d["total"],
             "currency": d["currency"], "category": d["category"]} for d in list_invoices(engine_for(settings), args.permit)]
    print_table(rows, ["id", "permit", "month", "total", "currency", "category"])
    return 0
