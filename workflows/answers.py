"""Reading answers and verdicts out of model text written for our prompts.

Only the formats our own templates ask for ("Final answer: ...", "Verdict: ...", small JSON
objects), with forgiving fallbacks for models that drift, and the \\boxed{...} reader the
graders share. Benchmark-specific answer formats (#### 42, option letters) are the evaluation
graders' business, not this module's.
"""

from __future__ import annotations

import json
import re

from agentrt.tools.latex import match_brace

__all__ = ["extract_final_answer", "extract_boxed", "parse_verdict", "parse_json_object"]

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")
_FINAL = re.compile(r"final\s+answer\s*(?:is)?\s*[:：]?\s*(.+)", re.I)
_ANSWER_IS = re.compile(r"\banswer\s+is\s*[:：]?\s*(.+)", re.I)
_VERDICT = re.compile(r"verdict\s*[:：]?\s*\**\s*(yes|no|unknown|correct|incorrect|wrong)\b", re.I)
_VERDICT_MAP = {"yes": "yes", "correct": "yes", "no": "no", "incorrect": "no", "wrong": "no",
                "unknown": "unknown"}


def extract_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), nested braces kept; "\\boxed 5" too.

    A \\boxed whose brace never closes (a reply cut off mid-answer) is skipped for an earlier one.
    """
    for m in reversed(list(_BOXED.finditer(text))):
        end = m.end()
        if end < len(text) and text[end] == "{":
            close = match_brace(text, end)
            if close >= 0:
                return text[end + 1 : close].strip()
        else:
            bare = re.match(r"[^\s$]+", text[end:])
            if bare:
                return bare.group(0)
    return None


def _clean(ans: str) -> str:
    prev = None
    while prev != ans:
        prev = ans
        ans = ans.strip().strip("*").strip()
        ans = re.sub(r"^\$+|\$+$", "", ans)
        ans = ans.removesuffix(".")
    return ans


def extract_final_answer(text: str) -> str:
    """The final answer in a model's solution text.

    Order: the last "Final answer: X" line, a \\boxed{X}, the last "answer is X", and finally the
    last non-empty line. Returns "" for empty text.
    """
    matches = _FINAL.findall(text)
    if matches:
        first_line = matches[-1].strip().splitlines()[0] if matches[-1].strip() else ""
        if first_line:
            return _clean(first_line)
    boxed = extract_boxed(text)
    if boxed is not None:
        return _clean(boxed)
    matches = _ANSWER_IS.findall(text)
    if matches:
        return _clean(matches[-1].splitlines()[0])
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return _clean(lines[-1]) if lines else ""


def parse_json_object(text: str) -> dict | None:
    """The first JSON object in `text` (also inside ```json fences), or None."""
    text = text.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    if fence:
        text = fence.group(1).strip()
    start = text.find("{")
    while start >= 0:
        try:
            obj, _ = json.JSONDecoder().raw_decode(text[start:])
            if isinstance(obj, dict):
                return obj
        except json.JSONDecodeError:
            pass
        start = text.find("{", start + 1)
    return None


def parse_verdict(text: str) -> str:
    """'yes', 'no' or 'unknown' from a checker's reply (JSON or 'Verdict: ...' text)."""
    obj = parse_json_object(text)
    if obj is not None and isinstance(obj.get("verdict"), str):
        return _VERDICT_MAP.get(obj["verdict"].strip().lower(), "unknown")
    found = _VERDICT.findall(text)
    if found:
        return _VERDICT_MAP[found[-1].lower()]
    return "unknown"
