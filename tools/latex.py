"""Turn simple LaTeX (and loose plain-text math) into text sympy's parser reads.

Covers what answers to math problems are written in: \\frac/\\dfrac/\\tfrac, \\sqrt and
\\sqrt[n], powers and subscripts in braces, \\cdot/\\times/\\div, \\left/\\right and sizing
commands, \\pi, \\infty, Greek letters, common functions, \\boxed, \\text (dropped when other
content remains), thousands separators, percent signs, degrees, \\le/\\ge/\\ne and set braces.
`to_sympy_syntax` is the blunter second reading graders try when the parser rejects the first.
It is a string rewrite only: it evaluates nothing, so it is safe anywhere, and what it cannot
rewrite is left for the parser to reject. It knows nothing about sympy objects.
"""

from __future__ import annotations

import re

__all__ = ["latex_to_text", "to_sympy_syntax", "split_top_level", "match_brace"]

_DROP = ("\\left", "\\right", "\\bigl", "\\bigr", "\\Bigl", "\\Bigr", "\\big", "\\Big", "\\displaystyle",
         "\\limits", "\\!", "\\,", "\\;", "\\:", "\\quad", "\\qquad", "~", "$", "\\(", "\\)", "\\[", "\\]")
_WORDS = {
    "cdot": "*", "times": "*", "div": "/", "pi": "pi", "infty": "oo", "infinity": "oo", "le": "<=",
    "leq": "<=", "ge": ">=", "geq": ">=", "ne": "!=", "neq": "!=", "ln": "log", "log": "log",
    "exp": "exp", "sin": "sin", "cos": "cos", "tan": "tan", "cot": "cot", "sec": "sec", "csc": "csc",
    "arcsin": "asin", "arccos": "acos", "arctan": "atan", "sinh": "sinh", "cosh": "cosh", "tanh": "tanh",
    "lt": "<", "gt": ">", "to": "->", "cup": "|", "emptyset": "EmptySet", "varnothing": "EmptySet",
}
_WRAPPERS = ("boxed", "fbox", "mathrm", "mathbf", "mathit", "operatorname", "textbf", "mbox")
_FRACS = ("frac", "dfrac", "tfrac", "cfrac")


def match_brace(s: str, open_at: int, pair: str = "{}") -> int:
    """Index of the bracket that closes the one at `s[open_at]` (`pair` is open then close), or -1."""
    depth = 0
    for j in range(open_at, len(s)):
        depth += (s[j] == pair[0]) - (s[j] == pair[1])
        if depth == 0:
            return j
    return -1


def _group(s: str, i: int, exponent: bool = False) -> tuple[str, int]:
    """The argument starting at s[i]: a braced group or a single token; returns (text, next i).

    For an `exponent`, plain-text habits win: a parenthesized group, or a whole signed number
    (x^30, x^-1), where strict LaTeX would take one character."""
    while i < len(s) and s[i] == " ":
        i += 1
    if i >= len(s):
        return "", i
    if s[i] == "{":
        j = match_brace(s, i)
        return (s[i + 1:j], j + 1) if j >= 0 else (s[i + 1:], len(s))
    if exponent and s[i] == "(":  # plain-text group: x^(n+1)
        j = match_brace(s, i, "()")
        return (s[i:j + 1], j + 1) if j >= 0 else (s[i:], len(s))
    m = re.match(r"\\[A-Za-z]+|-?\d+(\.\d+)?" if exponent else r"\\[A-Za-z]+", s[i:])
    if m:
        return m.group(0), i + len(m.group(0))
    return s[i], i + 1


def _convert(s: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            m = re.match(r"\\([A-Za-z]+|.)", s[i:])
            name = m.group(1) if m else ""
            i += 1 + len(name)
            if name in _FRACS:
                num, i = _group(s, i)
                den, i = _group(s, i)
                out.append(f"(({_convert(num)})/({_convert(den)}))")
            elif name == "sqrt":
                index = None
                if i < len(s) and s[i] == "[":
                    j = s.index("]", i) if "]" in s[i:] else len(s)
                    index, i = s[i + 1:j], j + 1
                arg, i = _group(s, i)
                out.append(f"(({_convert(arg)})**(1/({_convert(index)})))" if index else f"sqrt({_convert(arg)})")
            elif name in _WRAPPERS:
                arg, i = _group(s, i)
                out.append(f"({_convert(arg)})")
            elif name == "text":
                arg, i = _group(s, i)
                out.append(f" \x00{arg}\x00 ")
            elif name in ("{", "}"):
                out.append(name)
            elif name == "%":
                out.append("%")
            elif name == "circ":
                out.append("")
            else:
                out.append(f" {_WORDS.get(name, name)} ")
        elif c in "^_":
            arg, i = _group(s, i + 1, exponent=c == "^")
            text = _convert(arg).strip()
            if c == "_":
                out.append("_" + re.sub(r"\W", "", text))
            elif text in ("", "\\circ", "circ"):
                out.append("")
            else:
                out.append(f"**({text})")
        elif c in "{}":
            out.append("(" if c == "{" else ")")
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _drop_text(s: str) -> str:
    """Remove \\text{...} pieces (units, words) when anything else remains."""
    rest = re.sub(r"\x00[^\x00]*\x00", " ", s)
    if rest.strip():
        return rest
    return s.replace("\x00", " ")


def latex_to_text(text: str) -> str:
    """Rewrite LaTeX-ish `text` into sympy-parsable text (plain text passes through mostly as is).

        >>> latex_to_text(r"\\frac{1}{2}+\\sqrt{3}")
        '((1)/(2))+sqrt(3)'
    """
    s = text.strip()
    for token in _DROP:
        s = s.replace(token, " ")
    s = s.replace("{,}", "")
    s = re.sub(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|°", "", s)
    s = re.sub(r"\\\{", "\x01", s)
    s = re.sub(r"\\\}", "\x02", s)
    s = _drop_text(_convert(s))
    s = s.replace("\x01", "{").replace("\x02", "}")
    s = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", s) if re.fullmatch(r"\s*-?\d{1,3}(,\d{3})+(\.\d+)?\s*", s) else s
    s = re.sub(r"\s+", " ", s).strip()
    return s


def split_top_level(s: str, sep: str = ",") -> list[str]:
    """Split on `sep` outside any brackets; parts are stripped of surrounding whitespace."""
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def _replace_frac(s: str) -> str:
    """\\frac{a}{b} -> ((a)/(b)), innermost first, nested braces respected."""
    while True:
        m = re.search(r"\\frac\s*\{", s)
        if not m:
            return s
        num_end = match_brace(s, m.end() - 1)
        if num_end < 0 or num_end + 1 >= len(s) or s[num_end + 1] != "{":
            return s.replace("\\frac", "", 1)
        den_end = match_brace(s, num_end + 1)
        if den_end < 0:
            return s.replace("\\frac", "", 1)
        num, den = s[m.end() : num_end], s[num_end + 2 : den_end]
        s = s[: m.start()] + f"(({num})/({den}))" + s[den_end + 1 :]


def _replace_nth_root(s: str) -> str:
    """\\sqrt[n]{x} -> root((x),(n))."""
    while True:
        m = re.search(r"\\sqrt\s*\[([^\]]+)\]\s*\{", s)
        if not m:
            return s
        end = match_brace(s, m.end() - 1)
        if end < 0:
            return s
        s = s[: m.start()] + f"root(({s[m.end():end]}),({m.group(1)}))" + s[end + 1 :]


def to_sympy_syntax(norm: str) -> str:
    """Rewrite a normalized LaTeX answer as plain sympy input ("3\\sqrt{13}" -> "3*sqrt(13)").

    A blunter rewrite than `latex_to_text` (every remaining backslash is dropped, products are
    spelled out): the second reading a grader tries when the sympy tool refuses an answer.
    """
    s = _replace_nth_root(_replace_frac(norm))
    s = s.replace("\\sqrt", "sqrt").replace("\\pi", "pi").replace("\\infty", "oo")
    s = s.replace("\\cdot", "*").replace("\\times", "*").replace("\\div", "/")
    s = re.sub(r"\\(sin|cos|tan|log|ln|exp|sec|csc|cot)\b", r"\1", s).replace("ln(", "log(")
    s = s.replace("{", "(").replace("}", ")").replace("^", "**")
    s = s.replace("\\", "")
    s = re.sub(r"(?<=\w) (?=\w)", "*", s)
    s = re.sub(r"(\d)\s*([a-zA-Z(])", r"\1*\2", s)
    s = re.sub(r"\)\s*([\w(])", r")*\1", s)
    return s
