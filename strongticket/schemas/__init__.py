"""JSON Schemas (draft 2020-12) of strongticket's file formats, shipped inside the package.

``ticket.schema.json`` describes ``ticket.json``, the metadata file of a ticket directory (docs/formats.md).
:meth:`strongticket.ticket.Ticket.load` validates every ``ticket.json`` against it; outside tools can load
it with :func:`load_schema` (or read the file next to this module) and validate with any JSON Schema library::

    import jsonschema
    from strongticket.schemas import load_schema
    jsonschema.validate(meta, load_schema("ticket"))
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from importlib import resources
from typing import Any

#: The schemas shipped, by name: ``<name>.schema.json`` in this package.
SCHEMAS = ("ticket",)

_ARTICLES = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "a boolean",
             "object": "an object", "array": "an array", "null": "null"}


def load_schema(name: str = "ticket") -> dict[str, Any]:
    """The JSON Schema ``name`` (one of :data:`SCHEMAS`) as a dict (a fresh copy: callers may change it)."""
    if name not in SCHEMAS:
        raise ValueError(f"schema must be one of {list(SCHEMAS)}, got {name!r}")
    text = resources.files(__name__).joinpath(f"{name}.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


@functools.cache
def _validator(name: str) -> Any:
    import jsonschema

    schema = load_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def first_error(name: str, instance: Any) -> str | None:
    """The most relevant way ``instance`` breaks schema ``name``, as one line naming the key path; None if valid.

    Examples: ``unknown key 'foo'``, ``missing key 'seed'``, ``'seed' must be an integer, got 'x'``,
    ``'spec.layers[0].in_features' must be >= 1, got 0``.
    """
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator(name).iter_errors(instance))
    return None if error is None else describe(error)


def _key_path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _quote_all(keys: list[str]) -> str:
    return ", ".join(repr(k) for k in keys)


def describe(error: Any) -> str:
    """One line for a ``jsonschema.ValidationError``: what is wrong, at which key path, what was received."""
    path = _key_path(error.absolute_path)
    value, kind, schema = error.instance, error.validator, error.schema
    got = f"got {value!r:.60}"
    if kind == "additionalProperties" and isinstance(value, dict):
        known = set(schema.get("properties", {}))
        extra = [_join(path, k) for k in value if k not in known]
        return f"unknown key{'s' if len(extra) > 1 else ''} {_quote_all(extra)}"
    if kind == "required" and isinstance(value, dict):
        missing = [_join(path, k) for k in schema["required"] if k not in value]
        return f"missing key{'s' if len(missing) > 1 else ''} {_quote_all(missing)}"
    where = repr(path) if path else "the file"
    if kind == "type":
        types = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return f"{where} must be {' or '.join(_ARTICLES.get(t, t) for t in types)}, {got}"
    if kind == "const":
        return f"{where} must be {error.validator_value!r}, {got}"
    if kind == "enum":
        return f"{where} must be one of {_quote_all(error.validator_value)}, {got}"
    bounds = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
    if kind in bounds:
        return f"{where} must be {bounds[kind]} {error.validator_value}, {got}"
    if kind == "minItems":
        return f"{where} must have at least {error.validator_value} item(s), {got}"
    if kind == "pattern":
        what = schema.get("description", f"a string matching {error.validator_value!r}")
        return f"{where} must be {what}, {got}"
    return f"{where}: {error.message}"


__all__ = ["SCHEMAS", "describe", "first_error", "load_schema"]
