"""Monthly invoices of a permit: lines (pure), issuing (stored once, audited), HTML and PDF.

A permit's invoice for a month holds: in the month the permit was granted, the application fee (on
the application's first permit) and the preparation of its dataset by the data holder; every
month, the CPU-hours and GB-months metered (`metering`). The reduction of the applicant's category
applies as the schedule says; each line names who it remunerates, so the invoice shows the data
holders' shares. A permit applied by hand (no application) is invoiced its resources at the
`industry` rate unless a category is given. Must not import `egress`.
"""

from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from decimal import Decimal

import sqlalchemy as sa

from hub import audit
from hub.audit.store import utc_now_iso
from hub.exceptions import InvalidInput
from hub.frontoffice.fees import metering
from hub.frontoffice.fees.schedule import Fee, Schedule, apply_reduction, make_line
from hub.frontoffice.tables import applications, invoices
from hub.permits.model import Permit

INVOICE_FONT = "helvetica"


def check_month(month: str) -> str:
    try:
        datetime.strptime(month, "%Y-%m")
    except (TypeError, ValueError):
        raise InvalidInput(f"not a month (YYYY-MM): {month!r}", field="month") from None
    return month


def make_invoice_fee(schedule: Schedule, *, permit: Permit, month: str, category: str, cpu_hours: Decimal,
                     gb_months: Decimal, first_month: bool, application_kind: str | None, charge_application: bool,
                     preparation: tuple[str, int, int] | None) -> Fee:
    """The lines of one permit's month (pure). `preparation`: (holder id, tables, variables) when the
    month carries the dataset's preparation."""
    lines = []
    if first_month and application_kind and charge_application:
        lines.append(make_line("application", f"application fee ({application_kind.replace('_', ' ')})", 1,
                               "application", schedule.application_cents[application_kind], "hdab"))
    if first_month and preparation:
        holder, n_tables, n_vars = preparation
        prep = schedule.preparation(holder)
        lines.append(make_line("preparation", f"preparation of {permit.dataset} ({n_tables} tables, {n_vars} variables)",
                               prep.hours(n_tables, n_vars), "hour", prep.hourly_rate_cents, holder))
    lines.append(make_line("resources", f"workspace CPU-hours in {month}", cpu_hours, "CPU-hour",
                           schedule.cpu_hour_cents, "hdab"))
    lines.append(make_line("resources", f"storage in {month} (extract and work volumes)", gb_months, "GB-month",
                           schedule.storage_gb_month_cents, "hdab"))
    return Fee(schedule.currency, tuple(apply_reduction(lines, schedule, category)), category)


def _application_of(engine: sa.Engine, permit_id: str) -> dict | None:
    app_id = permit_id.rsplit("-", 1)[0]
    with engine.connect() as conn:
        row = conn.execute(sa.select(applications).where(applications.c.id == app_id)).first()
    if row is None or permit_id not in json.loads(row.facts_json).get("permits", []):
        return None
    return {"id": row.id, "kind": row.kind, "document": json.loads(row.document_json), "facts": json.loads(row.facts_json)}


def build_invoice(engine: sa.Engine, schedule: Schedule, permit: Permit, month: str, holders: dict[str, str], *,
                  category: str | None = None, now: datetime | None = None) -> dict:
    """The invoice document of `permit` for `month` (not stored)."""
    check_month(month)
    now = now or datetime.now(timezone.utc)
    start, end = metering.month_bounds(month)
    app = _application_of(engine, permit.id)
    granted_on = app["facts"].get("decided_on") if app else None
    first_month = (granted_on or permit.valid_from.isoformat())[:7] == month
    category = category or (app["document"]["applicant_category"] if app else "industry")
    cpu = metering.cpu_hours(metering.permit_events(engine, permit.id, end), start, end, now, default_cpu=1.0)
    gbm = metering.storage_gb_months(metering.samples_of(engine, permit.id), month, now.date())
    prep = None
    if app is not None:
        tables = permit.tables
        prep = (holders.get(permit.dataset, "unknown"), len(tables), sum(len(c) for c in tables.values()))
    fee = make_invoice_fee(schedule, permit=permit, month=month, category=category, cpu_hours=cpu, gb_months=gbm,
                           first_month=first_month, application_kind=app["kind"] if app else None,
                           charge_application=bool(app) and permit.id == (app["facts"].get("permits") or [""])[0],
                           preparation=prep)
    return {"id": f"INV-{permit.id}-{month}", "permit_id": permit.id, "month": month,
            "application_id": app["id"] if app else None, "organisation": permit.organisation,
            "title": permit.title, "dataset": permit.dataset, "issued_on": now.date().isoformat(),
            "metered": {"cpu_hours": str(cpu), "gb_months": str(gbm)}, **fee.as_dict()}


def issue_invoice(engine: sa.Engine, document: dict, actor: str) -> tuple[dict, str]:
    """Store the invoice once ("issued"); the same permit and month again returns the stored one ("existing")."""
    with engine.begin() as conn:
        row = conn.execute(sa.select(invoices).where(invoices.c.permit_id == document["permit_id"],
                                                     invoices.c.month == document["month"])).first()
        if row is not None:
            return json.loads(row.document_json), "existing"
        conn.execute(invoices.insert().values(id=document["id"], permit_id=document["permit_id"], month=document["month"],
                                              total_cents=document["total_cents"], currency=document["currency"],
                                              document_json=json.dumps(document, sort_keys=True),
                                              issued_at=utc_now_iso(), issued_by=actor))
        audit.record(conn, actor=actor, role="operator", action="fees.invoice", permit_id=document["permit_id"],
                     object_id=document["id"], detail={"month": document["month"], "total_cents": document["total_cents"],
                                                       "currency": document["currency"], "shares": document["shares"]})
    return document, "issued"


def list_invoices(engine: sa.Engine, permit_id: str | None = None) -> list[dict]:
    q = sa.select(invoices).order_by(invoices.c.month, invoices.c.permit_id)
    if permit_id:
        q = q.where(invoices.c.permit_id == permit_id)
    with engine.connect() as conn:
        return [json.loads(r.document_json) for r in conn.execute(q)]


# --- rendering ----------------------------------------------------------------------------------

def render_html(doc: dict, hdab_name: str) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(line['description'])}</td><td class=n>{e(line['quantity'])} {e(line['unit'])}</td>"
        f"<td class=n>{e(line['unit_price'])}</td><td class=n>{e(line['amount'])}</td>"
        f"<td class=n>{e(line['reduction'])}</td><td class=n>{e(line['net'])}</td><td>{e(line['party'])}</td></tr>"
        for line in doc["lines"])
    shares = "".join(f"<tr><td>{e(p)}</td><td class=n>{e(v)} {e(doc['currency'])}</td></tr>" for p, v in doc["shares"].items())
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{e(doc['id'])}</title>
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto}}td,th{{padding:.2rem .5rem;border-bottom:1px solid #ddd}}
.n{{text-align:right}}table{{border-collapse:collapse;width:100%}}</style></head><body>
<h1>Invoice {e(doc['id'])}</h1>
<p>{e(hdab_name)} · permit <b>{e(doc['permit_id'])}</b> ({e(doc['title'])}) · {e(doc['organisation'])} ·
month {e(doc['month'])} · issued {e(doc['issued_on'])} · applicant category {e(doc['category'].replace('_', ' '))}</p>
<table><thead><tr><th>Item</th><th class=n>Quantity</th><th class=n>Unit price</th><th class=n>Amount</th>
<th class=n>Reduction</th><th class=n>Net</th><th>Remunerates</th></tr></thead><tbody>{rows}</tbody>
<tfoot><tr><th colspan=5>Total</th><th class=n>{e(doc['total'])} {e(doc['currency'])}</th><th></th></tr></tfoot></table>
<h2>Shares</h2><p>What each party receives (the data holders are paid their preparation, EHDS Art. 62).</p>
<table><tbody>{shares}</tbody></table>
<p>Metered: {e(doc['metered']['cpu_hours'])} CPU-hours, {e(doc['metered']['gb_months'])} GB-months.</p>
</body></html>"""


def _latin1(text: str) -> str:
    return str(text).encode("latin-1", "replace").decode("latin-1")


def render_pdf(doc: dict, hdab_name: str) -> bytes:
    """The invoice as PDF (fpdf2, core fonts: no file or network needed)."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_creator("SPE")
    pdf.set_title(doc["id"])
    pdf.add_page()
    pdf.set_font(INVOICE_FONT, "B", 16)
    pdf.cell(0, 10, _latin1(f"Invoice {doc['id']}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(INVOICE_FONT, "", 10)
    for text in (hdab_name, f"Permit {doc['permit_id']}: {doc['title']}", f"Organisation: {doc['organisation']}",
                 f"Month {doc['month']}, issued {doc['issued_on']}, applicant category "
                 f"{doc['category'].replace('_', ' ')}"):
        pdf.multi_cell(0, 5, _latin1(text), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    widths = (70, 28, 20, 20, 20, 20, 12)
    heads = ("Item", "Quantity", "Unit", "Amount", "Reduction", "Net", "Party")
    pdf.set_font(INVOICE_FONT, "B", 8)
    for w, h in zip(widths, heads):
        pdf.cell(w, 6, h, border=1)
    pdf.ln()
    pdf.set_font(INVOICE_FONT, "", 8)
    for line in doc["lines"]:
        cells = (line["description"][:48], f"{line['quantity']} {line['unit']}"[:22], line["unit_price"],
                 line["amount"], line["reduction"], line["net"], line["party"][:10])
        for w, c in zip(widths, cells):
            pdf.cell(w, 6, _latin1(c), border=1)
        pdf.ln()
    pdf.set_font(INVOICE_FONT, "B", 10)
    pdf.cell(sum(widths[:5]), 7, "Total", border=1)
    pdf.cell(sum(widths[5:]), 7, _latin1(f"{doc['total']} {doc['currency']}"), border=1)
    pdf.ln(10)
    pdf.set_font(INVOICE_FONT, "B", 10)
    pdf.cell(0, 6, "Shares (what each party receives)", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(INVOICE_FONT, "", 9)
    for party, value in doc["shares"].items():
        pdf.cell(0, 5, _latin1(f"{party}: {value} {doc['currency']}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.cell(0, 5, _latin1(f"Metered: {doc['metered']['cpu_hours']} CPU-hours, {doc['metered']['gb_months']} GB-months"),
             new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())

