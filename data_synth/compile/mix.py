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

import random
from pathlib import Path
from typing import Any

from agentrt.core.errors import InvalidInputError
from agentrt.core.jsonl import object_lines

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
    examples = []
    try:
        for number, row in object_lines(source):
            if isinstance(row, str):
                raise InvalidInputError(f"{source} line {number}: {row}")
            examples.append(_messages(row, f"{source} line {number}"))
    except OSError as e:
        raise InvalidInputError(f"cannot read chat examples from {source}: "
                                f"{e.strerror or e}") from None
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
