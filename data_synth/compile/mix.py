"""Mixing general instruction data into an agent dataset at a chosen ratio.

Agent-only tuning erodes general ability (AgentTuning), so SFT and tool datasets can carry a
share of ordinary chat examples from any local JSONL file, one `{"messages": [...]}` object per
line (roles system/user/assistant, last message from the assistant and not empty; other keys are
ignored; a UTF-8 BOM is allowed).
`ratio` is the share of general rows in the result: with n agent rows, round(n * r / (1 - r))
general rows are drawn without replacement by a seeded sample, in file order. A file with too
few rows gives all it has, and the report says which share was reached. Malformed lines are
errors naming the line. This module knows nothing about traces.
"""

from __future__ import annotations

import codecs
import json
import random
from pathlib import Path
from typing import Any

from agentrt.core.errors import InvalidInputError

__all__ = ["read_chat_examples", "mix_rows"]

_ROLES = ("system", "user", "assistant")


def _messages(row: Any, where: str) -> list[dict[str, str]]:
    msgs = row.get("messages") if isinstance(row, dict) else None
    if not isinstance(msgs, list) or not msgs:
        raise InvalidInputError(f"{where}: expected an object with a non-empty \"messages\" list")
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in _ROLES \
                or not isinstance(m.get("content"), str):
            raise InvalidInputError(f"{where}: message {i} needs a role ({', '.join(_ROLES)}) "
                                    f"and text content")
        out.append({"role": m["role"], "content": m["content"]})
    if out[-1]["role"] != "assistant" or not out[-1]["content"].strip():
        raise InvalidInputError(f"{where}: the last message must be the assistant's, not empty")
    return out


def read_chat_examples(path: str | Path) -> list[list[dict[str, str]]]:
    """The conversations of a chat JSONL file.

    Raises:
        InvalidInputError: unreadable file, a malformed line, or no example at all.
    """
    source = Path(path)
    try:
        data = source.read_bytes()
    except OSError as e:
        raise InvalidInputError(f"cannot read chat examples from {source}: "
                                f"{e.strerror or e}") from None
    try:
        lines = data.decode("utf-8-sig").split("\n")  # not splitlines: U+2028 is text
    except UnicodeDecodeError as e:
        bad = e.start + (3 if data.startswith(codecs.BOM_UTF8) else 0)  # offset after a BOM
        row_no = data.count(b"\n", 0, bad) + 1
        raise InvalidInputError(f"{source} line {row_no}: not UTF-8 text ({e.reason})") from None
    examples = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InvalidInputError(f"{source} line {number}: invalid JSON ({e.msg})") from None
        examples.append(_messages(row, f"{source} line {number}"))
    if not examples:
        raise InvalidInputError(f"{source} holds no chat examples")
    return examples


def mix_rows(agent_rows: int, examples: list[list[dict[str, str]]], ratio: float,
             seed: int = 0) -> tuple[list[list[dict[str, str]]], dict[str, Any]]:
    """Draw the general examples to add to `agent_rows` agent rows.

    Returns:
        (the chosen conversations in file order, a report: wanted, taken, ratio reached).
    """
    if not 0.0 <= ratio < 1.0:
        raise InvalidInputError(f"mix ratio must be in [0, 1), got {ratio}")
    wanted = round(agent_rows * ratio / (1.0 - ratio))
    take = min(wanted, len(examples))
    picked = sorted(random.Random(seed).sample(range(len(examples)), take))
    total = agent_rows + take
    report = {"ratio": ratio, "wanted": wanted, "taken": take, "available": len(examples),
              "reached": round(take / total, 4) if total else 0.0}
    return [examples[i] for i in picked], report
