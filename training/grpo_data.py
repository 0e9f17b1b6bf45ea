"""GRPO's prompts: the runtime's own calls, taken from stored traces, with what grades them.

A GRPO row is one LLM call the runtime made, as it made it: the exact messages it sent
(`prompt`, rendered by the model's chat template at training time, as the hf backend renders
them), which call it was (`step`), and the problem's reference answer and grader, read from the
trace's tags (`agentrt.data_synth.verify.reference_for`). The reply the trace holds is not kept: GRPO
samples its own and `agentrt.training.grpo_rewards` grades them. Two kinds of call are taken:

- `tool_input`: the python tool call of a slow round, when that tool's printed result is the
  round's answer (the tool is the final node, or the only input of the final node), so the
  reference answer is what it should print. The JSON schema the runtime sent with the call is
  kept (`json_schema`, JSON text, "" when none), so "well formed" means what the runtime enforced.
- `fast_answer`: the chain-of-thought answer of fast thinking (also an escalated attempt).

Traces of any source count (gold, teacher, the model's own, right or wrong: the reward grades
the new replies, not the old ones), except rejected synthetic traces and traces whose problem
has no reference. Identical prompts are kept once; prompts longer than `max_prompt_tokens`
are dropped. The dataset is saved atomically and registered (kind "grpo"), and a rebuild reuses
a registered dataset of the same name, as `agentrt.training.data` does for SFT and DPO.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from agentrt.core.errors import InvalidInputError
from agentrt.data_synth.compile.anatomy import dissect
from agentrt.data_synth.compile.registry import register_dataset
from agentrt.data_synth.compile.select import select_traces
from agentrt.data_synth.compile.spec import BuildSpec
from agentrt.data_synth.compile.tokens import TokenCounter
from agentrt.data_synth.compile.writer import content_hash, save_atomic
from agentrt.store.records import utcnow
from agentrt.training.data import cap_steps, existing_dataset
from agentrt.training.grpo_rewards import KINDS

__all__ = ["grpo_rows", "build_grpo_dataset"]


def _answer_node(call: Any, anatomy: Any) -> bool:
    """Whether a tool call's node prints its round's answer (see the module docstring)."""
    rnd = anatomy.rounds.get(call.round)
    spec = rnd.spec if rnd is not None else None
    if not spec or not call.step.node:
        return False
    final = spec.get("final")
    if call.step.node == final:
        return True
    inputs = next((n.get("inputs") or [] for n in spec.get("nodes") or []
                   if n.get("id") == final), [])
    return list(inputs) == [call.step.node]


def _row(judge: Any, call: Any) -> dict[str, Any]:
    trace, ref = judge.trace, judge.reference
    schema = call.step.inputs.get("json_schema")
    params = call.step.inputs.get("params") or {}
    return {
        "prompt": call.messages, "step": call.name, "reference": ref.answer,
        "grader": ref.grader, "problem": trace.problem,
        "json_schema": json.dumps(schema, sort_keys=True) if schema else "",
        "max_tokens": int(params.get("max_tokens") or 0), "trace_id": trace.id,
        "step_id": call.step.id, "problem_id": trace.tags.get("problem_id", ""),
        "family": trace.tags.get("family", ""), "source": judge.source,
        "template_hash": call.step.template_hash or "",
    }


def grpo_rows(judges: list[Any], kinds: tuple[str, ...] = KINDS
              ) -> tuple[list[dict[str, Any]], list[str], dict[str, int]]:
    """Rows of the traces' calls of `kinds`, one per distinct prompt.

    Returns:
        (rows, ids of the traces that gave rows, counts of traces or calls skipped by reason).
    """
    rows: list[dict[str, Any]] = []
    used: list[str] = []
    skipped: dict[str, int] = {}
    seen: set[str] = set()

    def skip(why: str) -> None:
        skipped[why] = skipped.get(why, 0) + 1

    for judge in judges:
        if judge.source == "rejected":
            skip("rejected synthetic trace")
            continue
        if judge.reference is None:
            skip("no reference answer")
            continue
        anatomy, mine = dissect(judge), 0
        for call in anatomy.calls:
            if call.name not in kinds:
                continue
            if call.name == "tool_input" and not _answer_node(call, anatomy):
                skip("tool call does not print the answer")
                continue
            key = call.name + json.dumps(call.messages, sort_keys=True, ensure_ascii=False)
            if key in seen:
                skip("repeated prompt")
                continue
            seen.add(key)
            rows.append(_row(judge, call))
            mine += 1
        if mine:
            used.append(judge.trace.id)
    return rows, used, skipped


def build_grpo_dataset(store: Any, *, tags: dict[str, str], out: Path, name: str,
                       tokenizer: str, max_prompt_tokens: int,
                       kinds: tuple[str, ...] = KINDS,
                       caps: dict[str, int | dict[str, int]] | None = None,
                       home: Any = None) -> Any | None:
    """Build, save and register GRPO prompts from the traces carrying `tags`.

    Args:
        store: the trace store (and dataset registry).
        tags: only traces carrying every one of these tags.
        out: the directory the dataset is saved to.
        name: the name it is registered under (a registered one is reused).
        tokenizer: the model whose chat template and tokenizer measure the prompts.
        max_prompt_tokens: longer prompts are dropped.
        kinds: the calls taken ("tool_input", "fast_answer").
        caps: most rows per call kind, or per kind and family (`agentrt.training.data.cap_steps`).
        home: agentrt home for the tokenizer's model cache.

    Returns:
        The `DatasetRecord`, or None when no trace matches or none yields a prompt.

    Example:
        >>> build_grpo_dataset(store, tags={"iterate_run": "r", "split": "train"},
        ...                    out=Path("datasets/r-grpo"), name="r-grpo",
        ...                    tokenizer="smollm2-135m", max_prompt_tokens=512)  # doctest: +SKIP
    """
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise InvalidInputError(f"GRPO takes calls of kinds {', '.join(KINDS)}; got {kinds}")
    found = existing_dataset(store, name, out)
    if found is not None:
        return found
    # The compilers' spec only carries the trace selection here (GRPO is no compiler kind).
    selection = BuildSpec(kind="sft", out=out, tags=tags)
    try:
        judges = select_traces(store, selection)
    except InvalidInputError as e:
        if "no finished traces" in str(e):
            return None
        raise
    rows, _, skipped = grpo_rows(judges, tuple(kinds))
    rows = cap_steps(rows, caps or {})
    counter = TokenCounter(tokenizer, home)
    for row in rows:
        row["prompt_tokens"] = len(counter.ids(row["prompt"], generation_prompt=True))
    kept = [r for r in rows if r["prompt_tokens"] <= max_prompt_tokens]
    if not kept:
        return None
    used = sorted({r["trace_id"] for r in kept})  # traces whose prompts survived the caps
    filters = {"tags": tags, "kinds": list(kinds), "max_prompt_tokens": max_prompt_tokens,
               "caps": caps or {}, "tokenizer": tokenizer}
    by_step: dict[str, int] = {}
    for r in kept:
        by_step[r["step"]] = by_step.get(r["step"], 0) + 1
    digest, created = content_hash("grpo", kept), utcnow()
    meta = {"selected_traces": len(judges), "used_traces": len(used), "skipped": skipped,
            "over_token_cap": len(rows) - len(kept), "steps": by_step,
            "sources": _count(kept, "source"), "families": _count(kept, "family"),
            "tokenizer": tokenizer}
    manifest = {"name": name, "kind": "grpo", "content_hash": digest, "rows": len(kept),
                "filters": filters, "created_at": created.isoformat(), **meta}
    path = save_atomic(kept, out, manifest)
    try:
        return register_dataset(store, name=name, kind="grpo", path=str(path),
                                content_hash=digest, rows=len(kept), filters=filters,
                                meta=meta, trace_ids=used, created_at=created)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise


def _count(rows: list[dict[str, Any]], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[str(r[key])] = out.get(str(r[key]), 0) + 1
    return dict(sorted(out.items()))
