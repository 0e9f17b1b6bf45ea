"""Is a `response_format.json_schema.schema` a well-formed JSON Schema? Checked on the request.

A malformed schema (`{"type": "bogus"}`, `properties` that is not an object, a negative
`minLength`) is the client's mistake and must be a 400 before anything runs, and above all
before a stream has answered 200; waiting for the backend would report it late, or not at all
on a backend that does not enforce schemas. This checks the shape of each keyword of the JSON
Schema vocabulary (drafts 4 to 2020-12); unknown keywords are allowed, as in JSON Schema.
It does not resolve `$ref`s or judge regular expressions: a backend that cannot compile a
well-formed schema still refuses it, before the stream starts (see `service.py`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["check_schema"]

_TYPES = {"string", "number", "integer", "boolean", "object", "array", "null"}
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMAS = ("not", "if", "then", "else", "additionalProperties", "unevaluatedProperties",
            "propertyNames", "contains", "additionalItems", "unevaluatedItems")
_COUNTS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties",
           "minContains", "maxContains")
_NUMBERS = ("minimum", "maximum", "multipleOf")
_STRINGS = ("$ref", "$id", "$schema", "$anchor", "$comment", "pattern", "format", "title",
            "description")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_type(value: Any, where: str) -> None:
    names = value if isinstance(value, list) else [value]
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{where}.type must be a type name or a non-empty list of them")
    unknown = [n for n in names if n not in _TYPES]
    if unknown:
        raise ValueError(f"{where}.type {unknown[0]!r} is not a JSON Schema type "
                         f"(one of {', '.join(sorted(_TYPES))})")


def _check_keywords(node: dict[str, Any], where: str) -> list[tuple[Any, str]]:
    """Check one schema object's own keywords; return its subschemas with their paths."""
    if "type" in node:
        _check_type(node["type"], where)
    for key in _COUNTS:
        value = node.get(key)
        if key in node and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ValueError(f"{where}.{key} must be a non-negative integer")
    for key in _NUMBERS:
        if key in node and not _is_number(node[key]):
            raise ValueError(f"{where}.{key} must be a number")
    if "multipleOf" in node and node["multipleOf"] <= 0:
        raise ValueError(f"{where}.multipleOf must be greater than 0")
    for key in ("exclusiveMinimum", "exclusiveMaximum"):  # a number, or a flag in draft 4
        if key in node and not (_is_number(node[key]) or isinstance(node[key], bool)):
            raise ValueError(f"{where}.{key} must be a number")
    for key in _STRINGS:
        if key in node and not isinstance(node[key], str):
            raise ValueError(f"{where}.{key} must be a string")
    required = node.get("required")
    if "required" in node and not (isinstance(required, list)
                                   and all(isinstance(r, str) for r in required)):
        raise ValueError(f"{where}.required must be a list of property names")
    if "enum" in node and not (isinstance(node["enum"], list) and node["enum"]):
        raise ValueError(f"{where}.enum must be a non-empty list")
    subschemas: list[tuple[Any, str]] = []
    for key in _SCHEMA_MAPS:
        if key in node:
            if not isinstance(node[key], dict):
                raise ValueError(f"{where}.{key} must be an object of schemas")
            subschemas += [(v, f"{where}.{key}.{k}") for k, v in node[key].items()]
    for key in _SCHEMA_LISTS:
        if key in node:
            if not isinstance(node[key], list) or not node[key]:
                raise ValueError(f"{where}.{key} must be a non-empty list of schemas")
            subschemas += [(v, f"{where}.{key}[{i}]") for i, v in enumerate(node[key])]
    for key in _SCHEMAS:
        if key in node:
            subschemas.append((node[key], f"{where}.{key}"))
    items = node.get("items")
    if isinstance(items, list):  # the tuple form of drafts 4 to 2019-09
        subschemas += [(v, f"{where}.items[{i}]") for i, v in enumerate(items)]
    elif "items" in node:
        subschemas.append((items, f"{where}.items"))
    return subschemas


def check_schema(schema: Any, where: str = "schema") -> None:
    """Raise ValueError naming the first malformed keyword of `schema` (and its path).

        >>> check_schema({"type": "object", "properties": {"n": {"type": "integer"}}})
        >>> check_schema({"type": "bogus"})
        Traceback (most recent call last):
        ...
        ValueError: schema.type 'bogus' is not a JSON Schema type (one of array, boolean, \
integer, null, number, object, string)
    """
    pending = [(schema, where)]
    while pending:  # iterative: a deeply nested schema cannot exhaust the stack
        node, path = pending.pop()
        if isinstance(node, bool):
            continue
        if not isinstance(node, dict):
            raise ValueError(f"{path} must be a schema (an object or a boolean)")
        pending += _check_keywords(node, path)
