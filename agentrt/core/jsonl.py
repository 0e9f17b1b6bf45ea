"""JSON Lines files that users hand the project: one object per line, errors located by line.

Worked-solution sources, chat examples and benchmark files all read through `object_lines`;
each caller decides whether a bad line stops the read (training data) or is reported and
skipped (benchmark rows). This module knows files and JSON, nothing about what rows mean.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["object_lines"]


def object_lines(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Each non-blank line's 1-based number and its object, or why it is not one.

    Lines end at "\\n" only (U+2028 and other Unicode line breaks are text; "\\r\\n" works), a
    UTF-8 BOM at the start is ignored, and the reasons read "not UTF-8 text (byte 3: invalid
    start byte)", "invalid JSON (Expecting value)" or "a row must be a JSON object, not [1, 2]".

    Raises:
        OSError: the file cannot be opened or read.
    """
    with Path(path).open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as e:
                yield number, f"not UTF-8 text (byte {e.start + 1}: {e.reason})"
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                yield number, f"invalid JSON ({e.msg})"
                continue
            if not isinstance(row, dict):
                yield number, f"a row must be a JSON object, not {line.strip()[:40]}"
                continue
            yield number, row
