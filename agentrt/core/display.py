"""Text that is safe to show on a terminal or in a log (rendering traces is `agentrt.cli.render`).

Everything a model or a program wrote (answers, errors, tool output, step fields) may hold
terminal escape sequences, C1 controls, bidi overrides or rich markup. `printable` turns those
characters into visible escapes (`\\x1b`, `\\u202e`); `markup` also escapes rich markup, for
text put inside a markup string or a table cell; `dumps` writes JSON whose strings keep the
original text but hold no raw control or bidi character; `escape_logs` applies `printable` to
log records. Every command and the server's logs show such text only through these.
`strip_source_paths` drops the source file paths (and log stamps) of installed libraries from an
error message. Pure presentation: no I/O but printing.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from rich.markup import escape as _escape_markup

__all__ = ["printable", "markup", "dumps", "strip_source_paths", "EscapingFilter",
           "escape_logs"]

# C0 controls but tab and newline, DEL, C1 controls, bidi marks, embeddings, overrides and
# isolates, line/paragraph separators, and lone surrogates (which cannot even be encoded).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e"
                     "\u2066-\u2069\ud800-\udfff]")
# A source file of an installed library (under site-packages, dist-packages or the standard
# library) or a native source file with a line number (`/project/cpp/x.cc:94`), with what
# decorates it in messages: a log stamp before it, `File "..."` around it, `:line:` or
# `, line N, in f` after it. A user's own paths (a config file, a model folder) are kept.
_LIB = (r"(?:[A-Za-z]:)?(?:[/\\][^\s/\\:\"'()<>]+)*[/\\]"
        r"(?:site-packages|dist-packages|python3\.\d+)[/\\][^\s:\"'()<>]+")
_NATIVE = r"(?:[A-Za-z]:)?(?:[/\\][^\s/\\:\"'()<>]+)+\.(?:c|cc|cpp|cxx|cu|h|hh|hpp|rs)(?=:\d)"
_SOURCE = re.compile(rf"(?:\[\d{{1,2}}:\d{{2}}:\d{{2}}\]\s*)?(?:File \")?(?:{_LIB}|{_NATIVE})"
                     r"(?:\", line \d+(?:, in [\w.<>]+)?|(?::\d+)+)?:?\s*")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: Any) -> str:
    """`value` as text with every control, bidi or unencodable character shown as an escape.

    Tabs and newlines are kept (multi-line views need them); `\\x1b` stays visible as the four
    characters `\\x1b`, never reaching the terminal as ESC.

        >>> printable("\\x1b[2Jhi\\u202e")
        '\\\\x1b[2Jhi\\\\u202e'
    """
    text = value if isinstance(value, str) else str(value)
    return _UNSAFE.sub(_visible, text)


def markup(value: Any) -> str:
    """`printable(value)` with rich markup escaped: safe inside a markup string or table cell."""
    return _escape_markup(printable(value))


def dumps(obj: Any, **kwargs: Any) -> str:
    """`json.dumps` (non-ASCII kept) with control, bidi and surrogate characters as `\\uXXXX`.

    Those characters only occur inside JSON strings, so the result is valid JSON that decodes
    to the original text.
    """
    text = json.dumps(obj, ensure_ascii=False, **kwargs)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def strip_source_paths(message: str) -> str:
    """`message` without source file paths (`/x/y.cc:12:`, `.../site-packages/z.py`) and log
    stamps: a library's internals are no user's business."""
    return _SOURCE.sub("", message)


class EscapingFilter(logging.Filter):
    """A handler filter that makes a record's message, arguments and traceback `printable`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = printable(record.msg)
        if isinstance(record.args, dict):
            record.args = {k: _safe_arg(v) for k, v in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_safe_arg(a) for a in record.args)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = printable(record.exc_text)
        if record.stack_info:
            record.stack_info = printable(record.stack_info)
        return True


def _safe_arg(value: Any) -> Any:
    if value is None or isinstance(value, (int, float)):
        return value
    return printable(value)


def escape_logs(names: tuple[str, ...] = ("", "uvicorn", "uvicorn.error", "uvicorn.access")
                ) -> None:
    """Put `EscapingFilter` on the handlers of the named loggers (root first).

    When the root logger has no handler, one is added for stderr (warnings and errors, as
    Python's last-resort output), so propagated records are escaped too.
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setLevel(logging.WARNING)
        root.addHandler(handler)
    for name in names:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, EscapingFilter) for f in handler.filters):
                handler.addFilter(EscapingFilter())
