"""The fee estimate shown to an applicant before submitting (pure).

Application fee (by kind) + each dataset's preparation by its data holder (hours from the number of
tables and variables requested, at the holder's rate) + the SPE resources the permit is expected to
use (the schedule's assumed workspace hours per month x the CPU limit x team members, and the
assumed storage, over the requested months), less the reduction of the applicant's category.
A data request has no workspace for the applicant: its resources are the HDAB analyst's, estimated
the same way for one person.
"""

from __future__ import annotations

from decimal import Decimal

from hub.frontoffice.fees.schedule import Fee, Schedule, apply_reduction, make_line


def estimate_fee(schedule: Schedule, *, kind: str, category: str, datasets: list[dict], months: int,
                 cpu_limit: float, people: int) -> Fee:
    """`datasets`: [{"dataset", "holder", "tables": {table: [columns]}}]."""
    lines = [make_line("application", f"application fee ({kind.replace('_', ' ')})", 1, "application",
                       schedule.application_cents[kind], "hdab")]
    for d in datasets:
        prep = schedule.preparation(d["holder"])
        n_vars = sum(len(cols) for cols in d["tables"].values())
        hours = prep.hours(len(d["tables"]), n_vars)
        lines.append(make_line("preparation", f"preparation of {d['dataset']} ({len(d['tables'])} tables, "
                               f"{n_vars} variables) by {d['holder']}", hours, "hour", prep.hourly_rate_cents,
                               d["holder"]))
    cpu_hours = (schedule.estimate_workspace_hours_per_month * Decimal(str(cpu_limit)) * months * max(1, people)
                 ).quantize(Decimal("0.01"))
    lines.append(make_line("resources", f"workspace CPU-hours (estimate: {schedule.estimate_workspace_hours_per_month} h/month "
                           f"x {cpu_limit} CPU x {max(1, people)} people x {months} months)", cpu_hours, "CPU-hour",
                           schedule.cpu_hour_cents, "hdab"))
    gb_months = (schedule.estimate_storage_gb * months).quantize(Decimal("0.01"))
    lines.append(make_line("resources", f"storage (estimate: {schedule.estimate_storage_gb} GB x {months} months)",
                           gb_months, "GB-month", schedule.storage_gb_month_cents, "hdab"))
    return Fee(schedule.currency, tuple(apply_reduction(lines, schedule, category)), category,
               ("estimate: metered usage is invoiced monthly",))
