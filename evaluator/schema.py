"""The JSON Schema of baselines.yaml (evaluator/baselines.schema.json, shipped in the package), applied with the
`jsonschema` library: one problem per line, with its key path and, for an unknown name, the closest valid one.

baselines.yaml names the schema on its first line (`# yaml-language-server: $schema=...`) so that editors with a
YAML language server validate and complete it. Cross-references the schema cannot express (a model's recipe, an
entry's model and source, a recipe's base) are checked by evaluator/baselines.py.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
from importlib import resources

from .errors import did_you_mean
from .models import unknown_key

SCHEMA_FILE = "baselines.schema.json"


@functools.lru_cache(maxsize=1)
def load_schema() -> dict:
    """The schema, read from the installed package."""
    return json.loads(resources.files("evaluator").joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


def schema_problems(raw) -> list[str]:
    """Every place where the loaded YAML document `raw` breaks the schema, as "key.path: problem" lines."""
    import jsonschema  # here, not at the top: 50 ms of imports that only a catalogue check needs

    validator = jsonschema.Draft202012Validator(load_schema(), format_checker=jsonschema.FormatChecker())
    problems = []
    for error in sorted(validator.iter_errors(_jsonable(raw)), key=lambda e: [str(p) for p in e.absolute_path]):
        problems.extend(_lines(error))
    return problems


def key_path(parts) -> str:
    """models.x.files.float, documented[3].top1: the notation of every problem line."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "top level"


def _lines(error) -> list[str]:
    where = key_path(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        unknown = [k for k in error.instance if k not in allowed]
        if allowed and unknown:
            return [f"{key_path([*error.absolute_path, key])}: " + unknown_key(key, allowed) for key in unknown]
    if error.validator == "enum":
        values = [c for c in error.validator_value if c is not None]
        nullable = " or null" if None in error.validator_value else ""
        if not all(isinstance(c, str) for c in values):  # numbers: a spelling hint makes no sense
            return [f"{where}: {error.instance!r} must be {' or '.join(map(str, values))}{nullable}"]
        return [f"{where}: " + did_you_mean("value", str(error.instance), map(str, values)) + nullable]
    if error.validator == "required":
        return [f"{where}: missing key {key!r}" for key in error.validator_value if key not in error.instance]
    title = error.schema.get("title")
    if error.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") and title:
        return [f"{where}: {error.instance!r} must be {title} in {_interval(error.schema)}"]
    if error.validator in ("type", "pattern") and title:
        return [f"{where}: {error.instance!r} must be {title}"]
    return [f"{where}: {error.message}"]


def _interval(schema: dict) -> str:
    if "exclusiveMinimum" in schema:
        low = "(" + str(schema["exclusiveMinimum"])
    else:
        low = "[" + str(schema.get("minimum", "-inf"))
    if "exclusiveMaximum" in schema:
        high = str(schema["exclusiveMaximum"]) + ")"
    else:
        high = str(schema.get("maximum", "inf")) + "]"
    return f"{low}, {high}"


def _jsonable(value):
    # YAML reads 2022-05-02 as a date; the schema (like JSON) sees it as the ISO string it was written as
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.isoformat()
    return value
