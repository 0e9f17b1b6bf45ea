"""Conversion of values JSON or the databases cannot hold."""

from __future__ import annotations

import json
from enum import Enum

from agentrt.store.jsonsafe import MAX_DEPTH, clean_text, dumps, json_safe
from agentrt.core.types import Usage


class Color(str, Enum):
    RED = "red"


def test_plain_json_passes_unchanged():
    value = {"a": [1, 2.5, None, True, "x"], "b": {"c": "é✓"}}
    assert json_safe(value) == value


def test_odd_values_are_converted():
    out = json_safe({
        1: float("nan"), 2.5: float("inf"), None: -float("inf"), "set": {"b", "a"},
        "mixed": {1, "a"}, "tuple": (1, (2,)), "bytes": b"ab", "enum": Color.RED,
        "model": Usage(prompt_tokens=2), "cls": int,
    })
    assert out["1"] == "nan" and out["2.5"] == "inf" and out["None"] == "-inf"
    assert out["set"] == ["a", "b"] and sorted(map(str, out["mixed"])) == ["1", "a"]
    assert out["tuple"] == [1, [2]] and out["bytes"] == "b'ab'"
    assert out["enum"] == "red" and type(out["enum"]) is str
    assert out["model"] == {"prompt_tokens": 2, "completion_tokens": 0}
    assert out["cls"] == "<class 'int'>"
    json.dumps(out, allow_nan=False)


def test_text_cleaning():
    assert clean_text("a\x00b") == "a\ufffdb"
    assert clean_text("x\ud800y\udfff") == "x\ufffdy\ufffd"
    assert clean_text("plain ✓") == "plain ✓"


def test_self_reference_and_depth_are_cut():
    loop: list = []
    loop.append(loop)
    out = json_safe(loop)
    depth = 0
    while isinstance(out, list):
        out, depth = out[0], depth + 1
    assert isinstance(out, str) and depth == MAX_DEPTH


def test_unprintable_objects_are_still_stored():
    class Bad:
        def __str__(self):
            raise RuntimeError("no")

    assert json_safe(Bad()).startswith("<unprintable Bad")
    assert json.loads(dumps({"b": Bad()}))["b"].startswith("<unprintable")
