"""The fee schedule as data (`fees.yaml`, validated), and the fee arithmetic (pure).

Money is kept in integer cents; every rounding is explicit (half up, at each line). A fee has
lines, each with the party it remunerates (`hdab` or a data holder's catalogue id), so that an
invoice shows each data holder's share. Reductions by applicant category (EHDS Art. 62) apply to
the kinds of line the schedule names (`applies_to`), never to the other parties' lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from hub.exceptions import InvalidInput
from hub.settings import Settings
from hub.yamlio import load_yaml_file, validate_schema

CATEGORIES = ("public_research", "public_sector", "sme", "industry")
KINDS = ("application", "preparation", "resources")
_money = {"type": "number", "minimum": 0, "maximum": 10_000_000, "multipleOf": 0.01}
_price = {"type": "number", "minimum": 0, "maximum": 1_000_000, "multipleOf": 0.0001}  # per unit: fractions of a cent
_hours = {"type": "number", "minimum": 0, "maximum": 10_000}
_prep = {"type": "object", "additionalProperties": False, "required": ["hourly_rate", "base_hours"],
         "properties": {"hourly_rate": _money, "base_hours": _hours, "hours_per_table": _hours,
                        "hours_per_100_variables": _hours}}

SCHEMA = {
    "type": "object", "additionalProperties": False,
    "required": ["currency", "application", "preparation", "resources", "reductions"],
    "properties": {
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "application": {"type": "object", "additionalProperties": False, "required": ["permit", "data_request"],
                        "properties": {"permit": _money, "data_request": _money}},
        "preparation": {"type": "object", "additionalProperties": False, "required": ["default"],
                        "properties": {"default": _prep,
                                       "holders": {"type": "object", "propertyNames": {"pattern": "^[a-z0-9][a-z0-9-]{1,62}$"},
                                                   "additionalProperties": _prep}}},
        "resources": {"type": "object", "additionalProperties": False, "required": ["cpu_hour", "storage_gb_month"],
                      "properties": {"cpu_hour": _price, "storage_gb_month": _price,
                                     "estimate_workspace_hours_per_month": _hours,
                                     "estimate_storage_gb": {"type": "number", "minimum": 0, "maximum": 100000}}},
        "reductions": {"type": "object", "additionalProperties": False, "required": list(CATEGORIES),
                       "properties": {c: {"type": "object", "additionalProperties": False, "required": ["fraction"],
                                          "properties": {"fraction": {"type": "number", "minimum": 0, "maximum": 1},
                                                         "applies_to": {"type": "array", "uniqueItems": True,
                                                                        "items": {"enum": list(KINDS)}}}}
                                      for c in CATEGORIES}},
    },
}
DEFAULT_FILE = Path(__file__).resolve().parents[1] / "defaults" / "fees.yaml"


def cents(amount) -> int:
    """Currency units (number or string) -> integer cents, half up."""
    return int((Decimal(str(amount)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def money(value_cents: int) -> str:
    sign = "-" if value_cents < 0 else ""
    v = abs(value_cents)
    return f"{sign}{v // 100}.{v % 100:02d}"


@dataclass(frozen=True)
class Preparation:
    hourly_rate_cents: int
    base_hours: Decimal
    hours_per_table: Decimal = Decimal(0)
    hours_per_100_variables: Decimal = Decimal(0)

    def hours(self, tables: int, variables: int) -> Decimal:
        h = self.base_hours + self.hours_per_table * tables + self.hours_per_100_variables * Decimal(variables) / 100
        return h.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Schedule:
    currency: str
    application_cents: dict  # kind -> cents
    preparation_default: Preparation
    preparation_holders: dict  # holder id -> Preparation
    cpu_hour_cents: Decimal  # may have fractions of a cent per unit; lines round
    storage_gb_month_cents: Decimal
    estimate_workspace_hours_per_month: Decimal
    estimate_storage_gb: Decimal
    reductions: dict  # category -> (fraction Decimal, frozenset of kinds)

    def preparation(self, holder: str) -> Preparation:
        return self.preparation_holders.get(holder, self.preparation_default)


def _prep(doc: dict) -> Preparation:
    return Preparation(cents(doc["hourly_rate"]), Decimal(str(doc["base_hours"])),
                       Decimal(str(doc.get("hours_per_table", 0))), Decimal(str(doc.get("hours_per_100_variables", 0))))


def parse_schedule(doc: dict) -> Schedule:
    validate_schema(doc, SCHEMA, "fee schedule")
    r = doc["resources"]
    return Schedule(
        currency=doc["currency"],
        application_cents={k: cents(v) for k, v in doc["application"].items()},
        preparation_default=_prep(doc["preparation"]["default"]),
        preparation_holders={h: _prep(p) for h, p in (doc["preparation"].get("holders") or {}).items()},
        cpu_hour_cents=Decimal(str(r["cpu_hour"])) * 100,
        storage_gb_month_cents=Decimal(str(r["storage_gb_month"])) * 100,
        estimate_workspace_hours_per_month=Decimal(str(r.get("estimate_workspace_hours_per_month", 40))),
        estimate_storage_gb=Decimal(str(r.get("estimate_storage_gb", 1))),
        reductions={c: (Decimal(str(v["fraction"])), frozenset(v.get("applies_to") or ()))
                    for c, v in doc["reductions"].items()},
    )


def schedule_path(settings: Settings) -> Path:
    local = settings.home / "fees.yaml"
    return local if local.is_file() else DEFAULT_FILE


def load_schedule(settings: Settings) -> Schedule:
    return parse_schedule(load_yaml_file(schedule_path(settings), "fee schedule"))


# --- lines and totals -------------------------------------------------------------------------

@dataclass(frozen=True)
class Line:
    kind: str  # application | preparation | resources
    description: str
    quantity: Decimal
    unit: str
    unit_price_cents: Decimal
    party: str  # "hdab" or a data holder's catalogue id (who is remunerated)
    amount_cents: int = 0
    reduction_cents: int = 0

    @property
    def net_cents(self) -> int:
        return self.amount_cents - self.reduction_cents

    def as_dict(self) -> dict:
        return {"kind": self.kind, "description": self.description, "quantity": str(self.quantity),
                "unit": self.unit, "unit_price": unit_price(self.unit_price_cents),
                "party": self.party, "amount": money(self.amount_cents), "reduction": money(self.reduction_cents),
                "net": money(self.net_cents), "amount_cents": self.amount_cents,
                "reduction_cents": self.reduction_cents, "net_cents": self.net_cents}


def unit_price(price_cents: Decimal) -> str:
    """A unit price in currency units: two decimals, more only when the schedule has them (0.085)."""
    value = (Decimal(price_cents) / 100).normalize()
    return f"{value:.2f}" if value == value.quantize(Decimal("0.01")) else format(value, "f")


def make_line(kind: str, description: str, quantity, unit: str, unit_price_cents, party: str) -> Line:
    q = Decimal(str(quantity))
    price = Decimal(str(unit_price_cents))
    amount = int((q * price).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return Line(kind, description, q, unit, price, party, amount)


def apply_reduction(lines: list[Line], schedule: Schedule, category: str) -> list[Line]:
    """Each line reduced by the category's fraction when its kind is one the reduction applies to."""
    if category not in schedule.reductions:
        raise InvalidInput(f"applicant category must be one of {', '.join(CATEGORIES)}", field="applicant_category")
    fraction, kinds = schedule.reductions[category]
    out = []
    for line in lines:
        red = int((Decimal(line.amount_cents) * fraction).quantize(Decimal(1), rounding=ROUND_HALF_UP)) \
            if line.kind in kinds else 0
        out.append(Line(line.kind, line.description, line.quantity, line.unit, line.unit_price_cents, line.party,
                        line.amount_cents, red))
    return out


@dataclass(frozen=True)
class Fee:
    currency: str
    lines: tuple[Line, ...]
    category: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def total_cents(self) -> int:
        return sum(line.net_cents for line in self.lines)

    def shares(self) -> dict[str, int]:
        """Net cents per party (the HDAB and each data holder)."""
        out: dict[str, int] = {}
        for line in self.lines:
            out[line.party] = out.get(line.party, 0) + line.net_cents
        return dict(sorted(out.items()))

    def as_dict(self) -> dict:
        return {"currency": self.currency, "category": self.category,
                "lines": [line.as_dict() for line in self.lines], "total": money(self.total_cents),
                "total_cents": self.total_cents,
                "shares": {p: money(c) for p, c in self.shares().items()}, "notes": list(self.notes)}
