"""Make arbitrary Python values storable as JSON and text on both SQLite and PostgreSQL.

The store must never lose a step because one value in it is odd, so instead of failing it
converts, the same way on every database:

- dict keys become strings; tuples, sets and frozensets become lists (sets sorted when they can
  be, so the stored form is stable);
- pydantic models become their JSON dump, numpy arrays and scalars (anything with
  `tolist()`) their Python values; every other non-JSON value becomes `str(value)`
  (the `default=str` rule of `json.dumps`), including bytes, datetimes and exceptions;
- floats that JSON cannot hold (NaN, +-Infinity) become the strings "nan", "inf", "-inf";
- NUL characters, which PostgreSQL cannot store in text or JSONB, become U+FFFD, and so do
  lone surrogates that cannot be encoded as UTF-8;
- containers nested deeper than `MAX_DEPTH` (or containing themselves) are cut there and
  stored as `str()` of the remaining part.

This module knows nothing about the database or the records; it only cleans values.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["MAX_DEPTH", "clean_text", "json_safe", "dumps"]

MAX_DEPTH = 64
_REPLACEMENT = "\ufffd"


def clean_text(value: str) -> str:
    """Return `value` with NUL characters and unencodable surrogates replaced by U+FFFD."""
    if "\x00" in value:
        value = value.replace("\x00", _REPLACEMENT)
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # Only lone surrogates fail to encode (a str never holds a valid surrogate pair).
        value = "".join(_REPLACEMENT if "\ud800" <= c <= "\udfff" else c for c in value)
    return value


def _safe_float(value: float) -> float | str:
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "nan"
    return "inf" if value > 0 else "-inf"


def json_safe(value: Any, _depth: int = 0) -> Any:
    """Convert `value` into plain JSON data (dict, list, str, int, float, bool, None).

    Args:
        value: anything.

    Returns:
        An equivalent value that `json.dumps(..., allow_nan=False)` accepts and that both
        SQLite and PostgreSQL (JSONB) store unchanged.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return clean_text(str.__str__(value))  # plain str, also for str enums
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _safe_float(float(value))
    if _depth >= MAX_DEPTH:
        return clean_text(_str(value))
    if isinstance(value, dict):
        return {_key(k): json_safe(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, _depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [json_safe(v, _depth + 1) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=repr)
    if not isinstance(value, type):
        converted = _convert(value)
        if converted is not _NOTHING:
            return json_safe(converted, _depth + 1)
    return clean_text(_str(value))


_NOTHING = object()


def _convert(value: Any) -> Any:
    """Pydantic models to their JSON dump, numpy arrays and scalars to Python values."""
    for method, kwargs in (("model_dump", {"mode": "json"}), ("tolist", {})):
        fn = getattr(value, method, None)
        if callable(fn):
            try:
                return fn(**kwargs)
            except Exception:  # a broken converter still leaves str(value)
                return _NOTHING
    return _NOTHING


def _key(key: Any) -> str:
    if isinstance(key, str):
        return clean_text(key)
    if isinstance(key, float):
        return str(_safe_float(key))
    return clean_text(_str(key))


def _str(value: Any) -> str:
    try:
        return str(value)
    except Exception as e:  # __str__ itself may raise; keep the step anyway
        return f"<unprintable {type(value).__name__}: {type(e).__name__}>"


def dumps(value: Any) -> str:
    """Serialize for a JSON column: `json_safe` first, `default=str` as a last resort."""
    return json.dumps(json_safe(value), default=str, ensure_ascii=False, allow_nan=False)
