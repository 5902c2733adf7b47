"""Fee arithmetic at exact values: cents and rounding, preparation hours, reductions by category
(only on the kinds the schedule names), shares per party, estimates, and the schedule's validation."""

from decimal import Decimal

import pytest
import yaml

from hub.exceptions import InvalidInput
from hub.frontoffice.fees.estimate import estimate_fee
from hub.frontoffice.fees.invoice import make_invoice_fee
from hub.frontoffice.fees.schedule import (DEFAULT_FILE, Preparation, apply_reduction, cents, make_line, money,
                                           parse_schedule)
from hub.permits.model import Member, Permit

SCHEDULE = {
    "currency": "EUR",
    "application": {"permit": 300, "data_request": 150},
    "preparation": {"default": {"hourly_rate": 80, "base_hours": 4, "hours_per_table": 1, "hours_per_100_variables": 2},
                    "holders": {"chu": {"hourly_rate": 95.5, "base_hours": 3, "hours_per_table": 0.5}}},
    "resources": {"cpu_hour": 0.085, "storage_gb_month": 0.25, "estimate_workspace_hours_per_month": 60,
                  "estimate_storage_gb": 5},
    "reductions": {"public_research": {"fraction": 0.5, "applies_to": ["application", "resources"]},
                   "public_sector": {"fraction": 0.25, "applies_to": ["application", "resources", "preparation"]},
                   "sme": {"fraction": 0.3, "applies_to": ["application"]},
                   "industry": {"fraction": 0, "applies_to": []}},
}


@pytest.fixture
def schedule():
    return parse_schedule(yaml.safe_load(yaml.safe_dump(SCHEDULE)))


@pytest.mark.parametrize("amount, want", [(0, 0), (1, 100), ("0.01", 1), (0.1, 10), ("2.675", 268), ("2.665", 267),
                                          (300.5, 30050)])
def test_cents_round_half_up(amount, want):
    assert cents(amount) == want


@pytest.mark.parametrize("value, text", [(0, "0.00"), (5, "0.05"), (12345, "123.45"), (-250, "-2.50")])
def test_money(value, text):
    assert money(value) == text


@pytest.mark.parametrize("quantity, price_cents, want", [
    ("1", 30000, 30000), ("4.06", 9500, 38570), ("1440", Decimal("8.5"), 12240), ("0.333", 100, 33),
    ("0.005", 100, 1), ("0", 9999, 0)])
def test_a_line_is_quantity_times_unit_price_rounded_half_up(quantity, price_cents, want):
    assert make_line("resources", "x", quantity, "u", price_cents, "hdab").amount_cents == want


@pytest.mark.parametrize("tables, variables, want", [(0, 0, "4.00"), (2, 3, "6.06"), (5, 250, "14.00")])
def test_preparation_hours(tables, variables, want):
    prep = Preparation(8000, Decimal(4), Decimal(1), Decimal(2))
    assert prep.hours(tables, variables) == Decimal(want)


@pytest.mark.parametrize("category, kinds_reduced, fraction", [
    ("public_research", {"application", "resources"}, Decimal("0.5")),
    ("public_sector", {"application", "resources", "preparation"}, Decimal("0.25")),
    ("sme", {"application"}, Decimal("0.3")),
    ("industry", set(), Decimal(0))])
def test_reductions_apply_only_to_the_named_kinds(schedule, category, kinds_reduced, fraction):
    lines = [make_line("application", "a", 1, "u", 30001, "hdab"), make_line("preparation", "p", 3, "h", 9550, "chu"),
             make_line("resources", "r", 10, "h", Decimal("8.5"), "hdab")]
    reduced = apply_reduction(lines, schedule, category)
    for before, after in zip(lines, reduced):
        want = int((Decimal(before.amount_cents) * fraction).quantize(Decimal(1), rounding="ROUND_HALF_UP")) \
            if before.kind in kinds_reduced else 0
        assert after.reduction_cents == want
        assert after.net_cents == before.amount_cents - want


def test_an_unknown_category_is_refused(schedule):
    with pytest.raises(InvalidInput, match="applicant category"):
        apply_reduction([], schedule, "charity")


def test_the_estimate_and_the_data_holders_share(schedule):
    fee = estimate_fee(schedule, kind="permit", category="public_research",
                       datasets=[{"dataset": "eunomia", "holder": "chu", "tables": {"person": ["a", "b"], "visit": ["c"]}},
                                 {"dataset": "synth", "holder": "other", "tables": {"person": ["a"]}}],
                       months=12, cpu_limit=1.5, people=2)
    d = fee.as_dict()
    amounts = [line["amount_cents"] for line in d["lines"]]
    # application 300; chu: (3 + 0.5*2 + 0) h x 95.50 = 382.00; other (default): (4 + 1 + 0.02) h x 80 = 401.60;
    # CPU: 60 h x 1.5 x 2 x 12 = 2160 h x 0.085 = 183.60; storage 5 GB x 12 = 60 x 0.25 = 15.00
    assert amounts == [30000, 38200, 40160, 18360, 1500]
    assert fee.total_cents == 15000 + 38200 + 40160 + 9180 + 750
    assert fee.shares() == {"chu": 38200, "hdab": 15000 + 9180 + 750, "other": 40160}


def test_a_data_request_costs_its_own_application_fee(schedule):
    fee = estimate_fee(schedule, kind="data_request", category="industry",
                       datasets=[{"dataset": "d", "holder": "chu", "tables": {"t": ["a"]}}], months=1, cpu_limit=1, people=1)
    assert fee.lines[0].amount_cents == 15000 and fee.lines[0].reduction_cents == 0


def _permit():
    from datetime import date

    return Permit(id="APP-1-1", title="t", purpose="scientific_research", organisation="o", principal_investigator="p",
                  members=(Member("p", "principal_investigator"),), dataset="eunomia",
                  tables={"person": ("person_id", "year_of_birth")}, valid_from=date(2026, 3, 1),
                  valid_until=date(2027, 2, 28))


@pytest.mark.parametrize("first_month, charge_application, lines", [(True, True, 4), (True, False, 3), (False, True, 2)])
def test_an_invoice_charges_the_application_and_preparation_in_the_first_month_only(schedule, first_month,
                                                                                     charge_application, lines):
    fee = make_invoice_fee(schedule, permit=_permit(), month="2026-03", category="industry",
                           cpu_hours=Decimal("12.5"), gb_months=Decimal("0.3333"), first_month=first_month,
                           application_kind="permit", charge_application=charge_application,
                           preparation=("chu", 1, 2))
    assert len(fee.lines) == lines
    assert fee.lines[-2].amount_cents == 106  # 12.5 CPU-hours x 8.5 cents = 106.25
    assert fee.lines[-1].amount_cents == 8  # 0.3333 GB-months x 25 cents = 8.33


@pytest.mark.parametrize("change, field", [
    ({"currency": "euro"}, "currency"), ({"application": {"permit": -1, "data_request": 1}}, "application.permit"),
    ({"application": {"permit": 1.234, "data_request": 1}}, "application.permit"),
    ({"reductions": {"industry": {"fraction": 0}}}, "reductions")])
def test_a_bad_schedule_is_refused_naming_the_field(change, field):
    with pytest.raises(InvalidInput) as err:
        parse_schedule({**SCHEDULE, **change})
    assert err.value.field.startswith(field)


def test_the_packaged_schedule_is_valid():
    assert parse_schedule(yaml.safe_load(DEFAULT_FILE.read_text())).currency == "EUR"
