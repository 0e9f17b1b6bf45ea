"""Does a JSON value fit a JSON schema? The subset the runtime hands to constrained decoding.

Gold replies are scripted, not decoded, so nothing forces them into the schema the runtime sent
with the call; a gold trace whose reply no constrained model could have produced would teach
the wrong thing. This checks the keywords the runtime's schemas use (type, properties,
required, additionalProperties, items, min/maxItems, min/maxLength, pattern, enum, const,
anyOf) and returns readable reasons. It is not a general JSON-schema validator and knows
nothing about where schemas come from.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["schema_errors"]

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
    "integer": (int,), "number": (int, float), "null": (type(None),),
}


def _type_ok(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES.get(name, (object,)))


def _object_errors(value: dict, schema: dict, at: str) -> list[str]:
    props = schema.get("properties") or {}
    errors = [f"{at}: missing {k!r}" for k in schema.get("required", []) if k not in value]
    if schema.get("additionalProperties") is False:
        errors += [f"{at}: unexpected {k!r}" for k in value if k not in props]
    for key, sub in props.items():
        if key in value:
            errors += schema_errors(value[key], sub, f"{at}.{key}")
    return errors


def _array_errors(value: list, schema: dict, at: str) -> list[str]:
    errors = []
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(f"{at}: {len(value)} items, at most {schema['maxItems']} allowed")
    if "minItems" in schema and len(value) < schema["minItems"]:
        errors.append(f"{at}: {len(value)} items, at least {schema['minItems']} needed")
    for i, item in enumerate(value):
        errors += schema_errors(item, schema.get("items") or {}, f"{at}[{i}]")
    return errors


def _string_errors(value: str, schema: dict, at: str) -> list[str]:
    errors = []
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(f"{at}: {len(value)} characters, at most {schema['maxLength']} allowed")
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(f"{at}: {len(value)} characters, at least {schema['minLength']} needed")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{at}: does not match {schema['pattern']}")
    return errors


def schema_errors(value: Any, schema: dict[str, Any], at: str = "$") -> list[str]:
    """Reasons `value` does not fit `schema` (empty when it fits)."""
    if "anyOf" in schema:
        options = [schema_errors(value, s, at) for s in schema["anyOf"]]
        if any(not o for o in options):
            return []
        return min(options, key=len)
    if "const" in schema and value != schema["const"]:
        return [f"{at}: must be {schema['const']!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{at}: must be one of {schema['enum']}"]
    kind = schema.get("type")
    if kind is not None and not _type_ok(value, kind):
        return [f"{at}: must be of type {kind}"]
    if isinstance(value, dict):
        return _object_errors(value, schema, at)
    if isinstance(value, list):
        return _array_errors(value, schema, at)
    if isinstance(value, str):
        return _string_errors(value, schema, at)
    return []
