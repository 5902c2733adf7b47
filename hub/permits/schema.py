"""JSON Schema of a permit document (YAML). Structure only; semantic checks live in model.py."""

_ident = {"type": "string", "pattern": "^[a-z_][a-z0-9_]{0,62}$"}
_date = {"type": "string", "format": "date"}
_code = {"type": ["integer", "string"]}

GENERALISE_RULE = {
    "oneOf": [
        {"type": "object", "additionalProperties": False, "required": ["date"],
         "properties": {"date": {"enum": ["year", "month"]}}},
        {"type": "object", "additionalProperties": False, "required": ["date", "max_days"],
         "properties": {"date": {"const": "shift"}, "max_days": {"type": "integer", "minimum": 1, "maximum": 365}}},
        {"type": "object", "additionalProperties": False, "required": ["band"],
         "properties": {"band": {"type": "integer", "minimum": 2, "maximum": 100}}},
        {"type": "object", "additionalProperties": False, "required": ["truncate"],
         "properties": {"truncate": {"type": "integer", "minimum": 1, "maximum": 20}}},
        {"type": "object", "additionalProperties": False, "required": ["min_count"],
         "properties": {"min_count": {"type": "integer", "minimum": 2, "maximum": 1000}}},
    ]
}

PERMIT_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "SPE data permit",
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "title", "purpose", "organisation", "principal_investigator", "members", "dataset",
                 "tables", "valid_from", "valid_until"],
    "properties": {
        "id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{1,62}$",
               "description": "permit number issued by the health data access body"},
        "title": {"type": "string", "minLength": 3, "maxLength": 300},
        "purpose": {"type": "string", "description": "EHDS Art. 53(1) category"},
        "purpose_description": {"type": "string", "maxLength": 5000},
        "organisation": {"type": "string", "minLength": 2, "maxLength": 300},
        "principal_investigator": {"type": "string", "minLength": 1, "maxLength": 100},
        "members": {
            "type": "array", "minItems": 1, "maxItems": 200,
            "items": {"type": "object", "additionalProperties": False, "required": ["username", "role"],
                      "properties": {"username": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._@-]{0,99}$"},
                                     "role": {"enum": ["principal_investigator", "researcher", "data_manager",
                                                       "recipient"]}}},
        },
        "dataset": {"type": "string", "minLength": 1},
        "tables": {
            "type": "object", "minProperties": 1,
            "propertyNames": _ident,
            "additionalProperties": {"type": "array", "minItems": 1, "items": _ident, "uniqueItems": True},
        },
        "cohort": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "codes": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False, "required": ["table", "column", "any_of"],
                    "properties": {"table": _ident, "column": _ident,
                                   "any_of": {"type": "array", "minItems": 1, "maxItems": 10000, "items": _code}}}},
                "age": {"type": "object", "additionalProperties": False, "required": ["at"],
                        "properties": {"min": {"type": "integer", "minimum": 0, "maximum": 130},
                                       "max": {"type": "integer", "minimum": 0, "maximum": 130}, "at": _date}},
                "date_window": {"type": "object", "additionalProperties": False, "required": ["from", "to"],
                                "properties": {"from": _date, "to": _date,
                                               "columns": {"type": "object", "propertyNames": _ident,
                                                           "additionalProperties": _ident}}},
            },
        },
        "generalise": {"type": "object", "propertyNames": {"pattern": "^[a-z_][a-z0-9_]*\\.[a-z_][a-z0-9_]*$"},
                       "additionalProperties": GENERALISE_RULE},
        "valid_from": _date,
        "valid_until": _date,
        "dp": {"type": "object", "additionalProperties": False,
               "properties": {"epsilon": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
                              "delta": {"type": "number", "minimum": 0, "exclusiveMaximum": 0.01},
                              "per_member": {"type": "boolean"}, "auto_release": {"type": "boolean"},
                              "max_query_epsilon": {"type": "number", "exclusiveMinimum": 0, "maximum": 100,
                                                    "description": "largest epsilon one DP query may spend"},
                              "auto_release_max_epsilon": {
                                  "type": "number", "minimum": 0, "maximum": 100,
                                  "description": "with auto_release, answers of queries up to this epsilon come "
                                                 "back at once; costlier ones are held for review"}}},
        "egress": {"type": "object", "additionalProperties": False,
                   "properties": {"threshold": {"type": "integer", "minimum": 1, "maximum": 1000},
                                  "dominance_n": {"type": "integer", "minimum": 1, "maximum": 10},
                                  "dominance_k": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                                  "p_percent": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                                  "rounding_base": {"type": "integer", "minimum": 1, "maximum": 1000},
                                  "reviewers_required": {"type": "integer", "minimum": 2, "maximum": 5},
                                  "max_file_bytes": {"type": "integer", "minimum": 1, "maximum": 1073741824},
                                  "dof_threshold": {"type": "integer", "minimum": 1, "maximum": 1000},
                                  "zeros_are_disclosive": {"type": "boolean"},
                                  "check_missing_values": {"type": "boolean"},
                                  "require_provenance": {"type": "boolean"},
                                  "check_dominance": {"type": "boolean"},
                                  "check_p_percent": {"type": "boolean"},
                                  "check_dof": {"type": "boolean"},
                                  "check_secondary_suppression": {"type": "boolean"},
                                  "check_differencing": {"type": "boolean"},
                                  "acro_policy": {"type": "string", "minLength": 1, "maxLength": 500}}},
        "browser": {"type": "object", "additionalProperties": False,
                    "description": "what the browser may read from the workspace (hub.sessionlog.outflow)",
                    "properties": {"contents_max_bytes": {"type": "integer", "minimum": 1024, "maximum": 104857600},
                                   "notebook_max_bytes": {"type": "integer", "minimum": 1024, "maximum": 104857600},
                                   "daily_budget_bytes": {"type": "integer", "minimum": 65536,
                                                          "maximum": 10737418240}}},
        "retention": {"type": "object", "additionalProperties": False,
                      "properties": {"egress_days": {
                          "type": "integer", "minimum": 1, "maximum": 3650,
                          "description": "days after which the files of withdrawn, rejected and draft output "
                                         "requests, and released requests' unreleased versions, are deleted "
                                         "(`spe retention run`); absent: kept"}}},
        "k_anonymity": {"type": "object", "additionalProperties": False, "required": ["min_k"],
                        "properties": {"min_k": {
                            "type": "integer", "minimum": 2, "maximum": 1000,
                            "description": "provisioning stops (the previous extract stays) when a combination of "
                                           "the person table's quasi-identifiers is shared by fewer persons"}}},
        "resources": {"type": "object", "additionalProperties": False,
                      "properties": {"mem_limit": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?[KMGT]?$"},
                                     "cpu_limit": {"type": "number", "exclusiveMinimum": 0, "maximum": 64},
                                     "pids_limit": {"type": "integer", "minimum": 32, "maximum": 65536}}},
    },
}
