"""Reading answers and verdicts out of model text written for our prompts.

Only the formats our own templates ask for ("Final answer: ...", "Verdict: ...", small JSON
objects), with forgiving fallbacks for models that drift. Benchmark-specific answer formats
(#### 42, option letters) are the evaluation graders' business, not this module's.
"""

from __future__ import annotations

import json
import re

__all__ = ["extract_final_answer", "parse_verdict", "parse_json_object"]

_FINAL = re.compile(r"final\s+answer\s*(?:is)?\s*[:：]?\s*(.+)", re.I)
_ANSWER_IS = re.compile(r"\banswer\s+is\s*[:：]?\s*(.+)", re.I)
_VERDICT = re.compile(r"verdict\s*[:：]?\s*\**\s*(yes|no|unknown|correct|incorrect|wrong)\b", re.I)
_VERDICT_MAP = {"yes": "yes", "correct": "yes", "no": "no", "incorrect": "no", "wrong": "no",
                "unknown": "unknown"}


def _boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i, depth = start + len("\\boxed{"), 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
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
    boxed = _boxed(text)
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
