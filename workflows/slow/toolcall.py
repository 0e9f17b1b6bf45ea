"""Tool calls written by a model: their JSON schema, reading them, judging and showing results.

A tool expert writes the tool's input as a JSON object. On backends that enforce JSON schemas
the object is constrained by a small schema derived from the tool's own input schema (string
lengths capped so the call fits the stage's token budget); elsewhere it is read from the reply
(a JSON object, or for python a fenced code block) and the tool validates it. Run limits
(timeout, memory) are ours to set, never the model's.

A run *failed* when the tool raised, timed out, exited non-zero, or (python) printed nothing:
the expert then gets the error back to repair its call. This module knows the tool protocol
(`name`, `description`, `input_schema`, `run`) and nothing about graphs or prompts.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from agentrt.core.config import Limits
from agentrt.workflows.answers import parse_json_object
from agentrt.workflows.slow.state import clip

__all__ = ["COMPACT_CODE_PATTERN", "call_schema", "call_format", "read_call", "with_limits", "run_failure",
           "output_text", "tool_answer"]

_RUN_KEYS = ("timeout_s", "memory_mb")
_ARITH = r"[0-9a-z_+\-*/%(). ]+"
#: One line of named arithmetic steps, then the printed result (see `call_schema`).
COMPACT_CODE_PATTERN = rf"^(?:[a-z][a-z0-9_]* = {_ARITH}; )*print\({_ARITH}\)$"
_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.S)


def _input_schema(tool: Any) -> dict[str, Any]:
    schema = getattr(tool, "input_schema", None)
    return schema if isinstance(schema, dict) else {"type": "object"}


def _cap(schema: Any, max_chars: int) -> Any:
    """Copy of a schema with every string capped at `max_chars` and arrays at 8 items."""
    if isinstance(schema, list):
        return [_cap(s, max_chars) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _cap(v, max_chars) for k, v in schema.items()}
    if out.get("type") == "string" and "enum" not in out:
        out["maxLength"] = min(int(out.get("maxLength", max_chars)), max_chars)
    if out.get("type") == "array":
        out["maxItems"] = min(int(out.get("maxItems", 8)), 8)
    return out


def call_schema(tool: Any, max_chars: int, *, one_line: bool = False) -> dict[str, Any]:
    """The JSON schema a tool call is constrained by: the tool's input minus run limits.

    Args:
        tool: the tool (its `input_schema` is used).
        max_chars: cap on each string (code, expressions) so the call fits the token budget.
        one_line: for small models (a profile's `one_line_python`), a python call is one
            line: optional named steps (`eggs = 16 - 3 - 4; `), each an arithmetic
            expression of numbers and earlier names, then one `print(...)`: free programs from
            a 135M model rarely compile, and given commas, quotes or newlines it wanders into
            comments and endless calls. The steps are joined by "; " (xgrammar does not match
            an escaped newline inside a pattern). Lengths are bounded by the stage's token
            budget, not the pattern
            (xgrammar fails to compile long bounded repetitions).
    """
    if tool.name == "python":
        code: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": max_chars}
        if one_line:
            code = {"type": "string", "pattern": COMPACT_CODE_PATTERN}
        return {"type": "object", "properties": {"code": code}, "required": ["code"],
                "additionalProperties": False}
    schema = copy.deepcopy(_input_schema(tool))
    props = {k: v for k, v in (schema.get("properties") or {}).items() if k not in _RUN_KEYS}
    schema["properties"] = props
    if "required" in schema:
        schema["required"] = [k for k in schema["required"] if k in props]
    schema["additionalProperties"] = False
    return _cap(schema, max_chars)


def call_format(tool: Any, max_chars: int, *, one_line: bool = False) -> str:
    """One line telling the model the shape of the call (shown in tool prompts).

    The python line deliberately shows no runnable example: small models copy examples verbatim
    (the one-line one uses letters, which its call schema does not even admit).
    """
    if tool.name == "python":
        if one_line:
            return ('Write one line of Python as JSON: name each step of the calculation, '
                    'then print the result. For "Each box holds a apples; how many in b boxes '
                    'after c are eaten?" you would write {"code": "apples = a * b; '
                    'left = apples - c; print(left)"} with the numbers in place of a, b and c.')
        return ('Write a complete Python program that computes the result and prints it, as a '
                'JSON object {"code": "..."}. Only what the program prints is kept, so print '
                'every result your teammates need.')
    schema = call_schema(tool, max_chars)
    required = set(schema.get("required") or [])
    fields = []
    for name, prop in (schema.get("properties") or {}).items():
        note = str(prop.get("description", "")).strip()
        if "enum" in prop:
            note = note or "one of " + ", ".join(map(str, prop["enum"]))
        fields.append(f'"{name}"{" (required)" if name in required else ""}: {note}')
    return "Write the call as a JSON object with the fields " + "; ".join(fields) + "."


def read_call(tool: Any, text: str) -> tuple[dict[str, Any] | None, str]:
    """The call in a reply: (arguments, "") or (None, why it could not be read)."""
    obj = parse_json_object(text)
    if tool.name == "python":
        if obj is not None and isinstance(obj.get("code"), str) and obj["code"].strip():
            return {"code": obj["code"]}, ""
        fence = _FENCE.search(text)
        if fence and fence.group(1).strip():
            return {"code": fence.group(1)}, ""
        return None, 'no program found: reply with a JSON object {"code": "..."}'
    if obj is None:
        return None, "no JSON object found in the reply"
    return {k: v for k, v in obj.items() if k not in _RUN_KEYS}, ""


def with_limits(tool: Any, args: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """Add the solve's run limits to a call, where the tool's input takes them."""
    props = _input_schema(tool).get("properties") or {}
    out = dict(args)
    if "timeout_s" in props:
        out["timeout_s"] = limits.tool_timeout_s
    if "memory_mb" in props:
        out["memory_mb"] = limits.tool_memory_mb
    return out


def run_failure(tool: Any, out: Any) -> str | None:
    """Why a finished run counts as failed (None when it succeeded)."""
    if not isinstance(out, dict):
        return f"the tool returned {type(out).__name__}, not an object"
    if out.get("timed_out"):
        return (f"the run timed out ({out.get('killed_reason') or 'time limit'}); "
                "make it faster or simpler")
    code = out.get("exit_code")
    if code not in (None, 0):
        stderr = clip(str(out.get("stderr", "")), 1200)
        return f"exit code {code}\n{stderr}" if stderr else f"exit code {code}"
    if tool.name == "python" and not str(out.get("stdout", "")).strip():
        return "the program printed nothing: print the result"
    return None


def output_text(tool: Any, out: dict[str, Any], limit: int = 2000) -> str:
    """What the node's readers see of a successful run."""
    if "stdout" in out:
        return clip(str(out.get("stdout", "")), limit)
    if "result" in out:
        extra = {k: v for k, v in out.items() if k not in ("result", "latex", "duration_s")}
        text = str(out["result"])
        return clip(text + (f"\n{json.dumps(extra, default=str)}" if extra else ""), limit)
    return clip(json.dumps(out, default=str), limit)


def tool_answer(out: dict[str, Any]) -> str:
    """A final answer read from a run: the last printed line, or the tool's result."""
    if "stdout" in out:
        lines = [ln.strip() for ln in str(out["stdout"]).splitlines() if ln.strip()]
        return lines[-1] if lines else ""
    return str(out.get("result", "")).strip()
