"""Load a YAML document as hostile input: size-bounded, safe loader, errors naming the line."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

from hub.exceptions import InvalidInput, NotFound

MAX_YAML_BYTES = 1 << 20


def load_yaml_file(path: str | Path, what: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"{what} file not found: {p}")
    if p.stat().st_size > MAX_YAML_BYTES:
        raise InvalidInput(f"{what} file is larger than {MAX_YAML_BYTES} bytes", field=str(p))
    return load_yaml_text(p.read_text(encoding="utf-8", errors="strict"), what, str(p))


def load_yaml_text(text: str, what: str, name: str = "<input>") -> dict:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise InvalidInput(f"invalid YAML at {where}: {problem}", field=name) from None
    if not isinstance(doc, dict):
        raise InvalidInput(f"{what} must be a YAML mapping, got {type(doc).__name__}", field=name)
    return doc


def validate_schema(doc: dict, schema: dict, what: str) -> None:
    """Raise InvalidInput naming the first (deepest-path) schema violation."""
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(doc), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        path = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise InvalidInput(f"{what}: {err.message}", field=path)
