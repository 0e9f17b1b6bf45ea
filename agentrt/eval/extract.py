"""Final-answer extraction from free model text, for every answer style the graders check.

Pure functions over strings: "#### 42", "\\boxed{...}" (nested braces), "The answer is ...",
"Answer: ..." / "Final answer: ...", the last number, option letters "(A)" and arithmetic
expressions for Game of 24. `extract_answer(text, grader)` picks the strategy that suits a
grader. This module does not judge answers (see `agentrt.eval.graders`) and knows no prompts.
"""

from __future__ import annotations

import re

from agentrt.eval.numbers import parse_number
from agentrt.workflows.answers import extract_boxed

__all__ = [
    "extract_boxed",
    "extract_hash",
    "extract_phrase",
    "extract_last_number",
    "extract_option",
    "extract_expression",
    "extract_answer",
]

_HASH = re.compile(r"####\s*([^\n]+)")
_PHRASE = re.compile(
    r"(?:final\s+answer|the\s+answer|answer)\s*(?:is|=|:|：)\s*:?\s*([^\n]*)",
    re.I,
)
_NUMBER = re.compile(r"[+-]?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?%?|[+-]?\.\d+")
_OPTION_PHRASE = re.compile(r"(?:answer|option|choice)\s*(?:is|:|=)?\s*:?\s*\(?([A-R])\)?(?![A-Za-z])", re.I)
_OPTION = re.compile(r"\(([A-R])\)")
_BARE_OPTION = re.compile(r"\(?([A-R])[).:]?")
_EXPR_RUN = re.compile(r"[\d\s+\-*/().\[\]]+")


def extract_hash(text: str) -> str | None:
    """What follows the last "####" (GSM8K style), up to the end of its line."""
    found = _HASH.findall(text)
    return _clean(found[-1]) if found else None


def _cut_sentence(s: str) -> str:
    """Keep the first sentence: cut at ". " (a period then space), not at a decimal point."""
    m = re.search(r"\.\s+(?=\S)", s)
    return s[: m.start()] if m else s


def _clean(s: str) -> str:
    prev = None
    while prev != s:
        prev = s
        s = s.strip().strip("*").strip()
        if s.startswith("$") and s.endswith("$") and len(s) > 1 and s.count("$") == 2:
            s = s[1:-1]
        s = s.removesuffix(".").removesuffix(",")
    return s


def extract_phrase(text: str) -> str | None:
    """The answer after the last "Final answer:", "The answer is", "Answer:" (markdown bold ok)."""
    plain = text.replace("**", "")
    found = [m.group(1) for m in _PHRASE.finditer(plain)]
    found = [f for f in found if f.strip()]
    if not found:
        return None
    answer = _clean(_cut_sentence(found[-1]))
    boxed = extract_boxed(answer)
    return _clean(boxed) if boxed is not None else (answer or None)


def extract_last_number(text: str) -> str | None:
    """The last number in `text` as written ("1,234" kept, "$" and "%" dropped), or None."""
    found = _NUMBER.findall(text)
    if not found:
        return None
    return found[-1].replace("$", "").removesuffix("%").replace(" ", "")


def extract_option(text: str) -> str | None:
    """An option letter as "(X)": "answer is (B)", "Answer: C", the last "(X)", or a bare "B"."""
    stripped = text.strip()
    m = _BARE_OPTION.fullmatch(stripped.rstrip("."))
    if m:
        return f"({m.group(1)})"
    found = _OPTION_PHRASE.findall(text.replace("**", ""))
    if found:
        return f"({found[-1].upper()})"
    found = _OPTION.findall(text)
    return f"({found[-1]})" if found else None


def _normalize_ops(text: str) -> str:
    return (
        text.replace("×", "*").replace("÷", "/").replace("\\times", "*").replace("\\div", "/")
        .replace("\\cdot", "*").replace("−", "-").replace("\\left", "").replace("\\right", "")
    )


def extract_expression(text: str) -> str | None:
    """The arithmetic expression a Game of 24 answer gives ("= 24" dropped), or None.

    Prefers the expression after an answer phrase; otherwise the last run of digits, operators
    and parentheses that uses four numbers, else the last one with at least two numbers.
    """
    for source in (extract_phrase(text), extract_boxed(text), text):
        if not source:
            continue
        runs = []
        for run in _EXPR_RUN.findall(_normalize_ops(source)):
            run = run.strip().strip(".").strip()
            nums = re.findall(r"\d+", run)
            if len(nums) >= 2 and re.search(r"[+\-*/]", run):
                runs.append((len(nums), run))
        if runs:
            four = [r for n, r in runs if n >= 4]
            return _balance(four[-1] if four else runs[-1][1])
    return None


def _balance(run: str) -> str:
    """Drop unmatched parentheses at the ends of a run cut out of prose."""
    while run.startswith(")") or (run.count("(") > run.count(")") and run.startswith("(")
                                  and _depth_ok(run[1:])):
        run = run[1:].strip()
    while run.endswith("(") or (run.count(")") > run.count("(") and run.endswith(")")):
        run = run[:-1].strip()
    return run


def _depth_ok(run: str) -> bool:
    depth = 0
    for ch in run:
        depth += (ch == "(") - (ch == ")")
        if depth < 0:
            return False
    return depth == 0


def _first_of(*candidates: str | None) -> str | None:
    for c in candidates:
        if c:
            return c
    return None


def extract_answer(text: str, grader: str = "exact") -> str:
    """The final answer in `text`, extracted the way `grader` expects it.

    Args:
        text: free model output.
        grader: a grader name ("numeric", "math", "bbh", "game24", "exact", "equation", "roots").

    Returns:
        The extracted answer, or "" when nothing answer-like is found.

    Example:
        >>> extract_answer("She pays 3 * 4 = 12.\\n#### 12", "numeric")
        '12'
    """
    if not isinstance(text, str) or not text.strip():
        return ""
    if grader == "game24":
        return extract_expression(text) or ""
    if grader == "numeric":
        found = _first_of(extract_hash(text), extract_boxed(text), extract_phrase(text))
        if found is not None and parse_number(found) is not None:
            return found
        inner = extract_last_number(found) if found else None
        return inner or extract_last_number(text) or ""
    if grader == "math":
        found = _first_of(extract_boxed(text), extract_phrase(text), extract_hash(text))
        if found:
            return found
        lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
        if len(lines) == 1 and len(lines[0]) <= 80:  # already a bare answer such as "3\sqrt{13}"
            return _clean(lines[0])
        return extract_last_number(text) or ""
    if grader == "bbh":
        found = extract_phrase(text) or extract_boxed(text)
        if found:
            return found
        lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
        if len(lines) == 1 and len(lines[0]) <= 80:
            return _clean(lines[0])
        return extract_option(text) or _clean(lines[-1])
    found = _first_of(extract_phrase(text), extract_boxed(text), extract_hash(text))
    if found:
        return found
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return _clean(lines[-1]) if lines else ""
