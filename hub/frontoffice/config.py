"""The HDAB configuration (`hdab.yaml`): identity, catalogue publication, permit defaults,
deadlines, data-request analysts. Validated like every YAML SPE reads (hostile input, one line
naming the field). `$SPE_HOME/hdab.yaml` when it exists, else the packaged default.

Pure apart from reading that one file. Must not import `egress`.
"""

from __future__ import annotations

from pathlib import Path

from hub.settings import Settings
from hub.yamlio import load_yaml_file, validate_schema

DEFAULTS_DIR = Path(__file__).parent / "defaults"
_text = {"type": "string", "minLength": 1, "maxLength": 2000}
_i18n = {"type": "object", "additionalProperties": False, "required": ["en"],
         "properties": {"en": _text, "fr": _text}}
_mem = {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?[KMGT]?$"}
_resources = {"type": "object", "additionalProperties": False, "required": ["cpu_limit", "mem_limit"],
              "properties": {"cpu_limit": {"type": "number", "exclusiveMinimum": 0, "maximum": 64},
                             "mem_limit": _mem}}

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["hdab", "catalogue", "permits", "deadlines", "data_requests"],
    "properties": {
        "hdab": {"type": "object", "additionalProperties": False, "required": ["id", "name", "email", "url"],
                 "properties": {"id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{1,62}$"}, "name": _i18n,
                                "email": {"type": "string", "pattern": "^[^@\\s]+@[^@\\s]+$"},
                                "url": {"type": "string", "pattern": "^https?://"},
                                "country": {"type": "string", "pattern": "^[A-Z]{3}$"}}},
        "catalogue": {"type": "object", "additionalProperties": False, "required": ["base_url"],
                      "properties": {"base_url": {"type": "string", "pattern": "^https?://.+/$"},
                                     "title": _i18n, "description": _i18n,
                                     "page_size": {"type": "integer", "minimum": 1, "maximum": 1000}}},
        "permits": {"type": "object", "additionalProperties": False,
                    "required": ["max_months", "egress", "dp", "resources", "max_resources"],
                    "properties": {"max_months": {"type": "integer", "minimum": 1, "maximum": 120},
                                   "egress": {"type": "object"}, "dp": {"type": "object"},
                                   "resources": _resources, "max_resources": _resources}},
        "deadlines": {"type": "object", "additionalProperties": False,
                      "required": ["decision_months", "extension_months"],
                      "properties": {"decision_months": {"type": "integer", "minimum": 1, "maximum": 12},
                                     "extension_months": {"type": "integer", "minimum": 0, "maximum": 12},
                                     "pause_clock_on_information_request": {"type": "boolean"},
                                     "reminder_days": {"type": "array", "maxItems": 10,
                                                       "items": {"type": "integer", "minimum": 0, "maximum": 365}}}},
        "data_requests": {"type": "object", "additionalProperties": False, "required": ["analysts"],
                          "properties": {"analysts": {"type": "array", "minItems": 1, "maxItems": 50,
                                                      "items": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._@-]{0,99}$"}}}},
        "provisioning": {"enum": ["local", "operator"]},
    },
}


def hdab_config_path(settings: Settings) -> Path:
    local = settings.home / "hdab.yaml"
    return local if local.is_file() else DEFAULTS_DIR / "hdab.yaml"


def parse_hdab_config(doc: dict) -> dict:
    """The validated configuration (a plain dict); permit defaults are checked by the permit schema
    when a permit is made from them."""
    validate_schema(doc, SCHEMA, "hdab.yaml")
    doc.setdefault("provisioning", "local")
    doc["deadlines"].setdefault("pause_clock_on_information_request", True)
    doc["deadlines"].setdefault("reminder_days", [14, 7, 1])
    doc["catalogue"].setdefault("page_size", 100)
    return doc


def load_hdab_config(settings: Settings) -> dict:
    return parse_hdab_config(load_yaml_file(hdab_config_path(settings), "hdab.yaml"))


def text(value: dict | str | None, lang: str = "en") -> str:
    """One language of a {en, fr} text, falling back to English."""
    if isinstance(value, dict):
        return value.get(lang) or value.get("en") or ""
    return value or ""
