"""Build one dataset: select traces, make rows, mix, measure and cap tokens, hash, save, register.

    record = build_dataset(store, BuildSpec(kind="sft", out=Path("data/sft-1")))

The order matters for what a crash leaves behind: nothing is registered until the dataset's
directory is complete and renamed into place (`writer.save_atomic`), and a registration that
fails removes that directory again, so the registry never names a half-written dataset.
The same store and spec give the same rows and so the same content hash.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from agentrt.core.errors import InvalidInputError, NotFoundError
from agentrt.store.records import utcnow
from agentrt.core.types import Problem
from agentrt.data_synth.compile.dpo import dpo_rows
from agentrt.data_synth.compile.mix import mix_rows, read_chat_examples
from agentrt.data_synth.compile.registry import get_dataset, register_dataset
from agentrt.data_synth.compile.router import router_rows
from agentrt.data_synth.compile.select import describe_filters, select_traces
from agentrt.data_synth.compile.sft import sft_rows
from agentrt.data_synth.compile.spec import BuildSpec, DatasetRecord
from agentrt.data_synth.compile.tokens import TokenCounter
from agentrt.data_synth.compile.tool import tool_rows
from agentrt.data_synth.compile.writer import MANIFEST, content_hash, save_atomic
from agentrt.data_synth.verify import TraceJudge

__all__ = ["build_dataset", "COMPILERS", "composition"]

Rows = tuple[list[dict[str, Any]], list[str], dict[str, int]]

# kind -> row builder; adding a kind is one module plus one line here.
COMPILERS: dict[str, Callable[[list[TraceJudge], BuildSpec], Rows]] = {
    "sft": lambda judges, spec: sft_rows(judges, verified_only=spec.verified_only),
    "tool": lambda judges, spec: tool_rows(judges, verified_only=spec.verified_only),
    "dpo": lambda judges, spec: dpo_rows(judges, cap=spec.max_pairs_per_prompt),
    "router": lambda judges, spec: router_rows(judges),
}
_CATEGORY = {"sft": "step", "tool": "source", "dpo": "kind", "router": "fast_succeeded"}


def general_row(kind: str, messages: list[dict[str, str]]) -> dict[str, Any]:
    """A mixed-in general chat example with the dataset's columns left empty."""
    if kind == "tool":
        return {"messages": messages, "tools": "[]", "trace_id": "", "round": 0, "node": "",
                "attempts": 0, "family": "", "problem_id": "", "model_id": "",
                "source": "general", "ok": None}
    return {"messages": messages, "trace_id": "", "step_id": None, "step": "general", "node": "",
            "round": 0, "template": "", "template_hash": "", "family": "", "problem_id": "",
            "model_id": "", "source": "general", "trace_mode": "", "ok": None,
            "prompt_tokens": 0, "completion_tokens": 0}


def _tokens(kind: str, row: dict[str, Any], counter: TokenCounter) -> int:
    if kind == "dpo":
        return max(counter.chat(row["prompt"] + row["chosen"]),
                   counter.chat(row["prompt"] + row["rejected"]))
    if kind == "router":
        return counter.text(row["text"])
    tools = json.loads(row["tools"]) if kind == "tool" and row.get("tools") else None
    return counter.chat(row["messages"], tools=tools or None)


def composition(kind: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows (and tokens, when measured) per category, per source, and messages per role."""
    key = _CATEGORY[kind]
    by: dict[str, dict[str, int]] = {}
    for row in rows:
        cat = str(row.get(key))
        entry = by.setdefault(cat, {"rows": 0, "tokens": 0})
        entry["rows"] += 1
        entry["tokens"] += int(row.get("tokens") or 0)
    out: dict[str, Any] = {"by": key, "groups": dict(sorted(by.items()))}
    if rows and "source" in rows[0]:
        out["sources"] = dict(Counter(str(r["source"]) for r in rows))
    if "messages" in (rows[0] if rows else {}):
        out["messages_per_role"] = dict(Counter(m["role"] for r in rows for m in r["messages"]))
    if rows and "tokens" in rows[0]:
        counts = [int(r["tokens"]) for r in rows]
        out["tokens"] = {"total": sum(counts), "mean": round(sum(counts) / len(counts), 1),
                         "max": max(counts)}
    return out


def _shape(spec: BuildSpec, rows: list[dict[str, Any]], home: Any) -> dict[str, Any]:
    """Mix in general data and measure / cap tokens, in place; what was done, for the meta."""
    meta: dict[str, Any] = {}
    if spec.mix is not None:
        chosen, meta["mix"] = mix_rows(len(rows), read_chat_examples(spec.mix), spec.mix_ratio,
                                       spec.seed)
        rows.extend(general_row(spec.kind, m) for m in chosen)
    if spec.tokenizer:
        counter = TokenCounter(spec.tokenizer, home)
        for row in rows:
            row["tokens"] = _tokens(spec.kind, row, counter)
        if spec.max_tokens is not None:
            kept = [r for r in rows if r["tokens"] <= spec.max_tokens]
            meta["over_token_cap"] = len(rows) - len(kept)
            rows[:] = kept
        meta["tokenizer"] = spec.tokenizer
        meta["tool_calls_counted_as_text"] = counter.approximated_tool_calls
    return meta


def build_dataset(store: Any, spec: BuildSpec, *, home: Any = None,
                  problems: Mapping[str, Problem] | None = None) -> DatasetRecord:
    """Build, save and register one dataset.

    Args:
        store: the trace store (traces are read from it; the dataset is registered in it).
        spec: what to build and where.
        home: the agentrt home (model cache for the tokenizer).
        problems: reference problems by id, for traces that carry no reference tags.

    Returns:
        The registered dataset, with the ids of its source traces.

    Raises:
        InvalidInputError: no trace matches, none yields a row, every row is over the token
            cap, the name is taken, or the output directory exists.
    """
    if spec.name is not None:
        _name_free(store, spec.name)
    judges = select_traces(store, spec, problems)
    rows, used, skipped = COMPILERS[spec.kind](judges, spec)
    if not rows:
        raise InvalidInputError(
            f"{len(judges)} traces match ({describe_filters(spec)}) but none yields a "
            f"{spec.kind} row; skipped: {skipped or 'none'}"
            + ("; try --all to include unverified traces"
               if spec.verified_only and spec.kind in ("sft", "tool") else ""))
    agent_rows = len(rows)
    meta = _shape(spec, rows, home)
    if not rows:
        raise InvalidInputError(f"every row is longer than {spec.max_tokens} tokens")
    digest = content_hash(spec.kind, rows)
    created = utcnow()
    name = spec.name or _default_name(store, f"{spec.kind}-{created:%Y%m%d-%H%M%S}-{digest[:8]}")
    meta.update(selected_traces=len(judges), used_traces=len(used), agent_rows=agent_rows,
                skipped=skipped, composition=composition(spec.kind, rows))
    manifest = {"name": name, "kind": spec.kind, "content_hash": digest, "rows": len(rows),
                "filters": spec.filters(), "created_at": created.isoformat(), **meta}
    path = save_atomic(rows, spec.out, manifest, overwrite=spec.overwrite)
    try:
        return register_dataset(store, name=name, kind=spec.kind, path=str(path),
                                content_hash=digest, rows=len(rows), filters=spec.filters(),
                                meta=meta, trace_ids=used, created_at=created)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)  # never leave an unregistered dataset behind
        raise


def _default_name(store: Any, base: str) -> str:
    """`base`, or `base-2`, `base-3`, ... when the same rows were built in the same second."""
    for n in range(1, 1000):
        name = base if n == 1 else f"{base}-{n}"
        try:
            get_dataset(store, name)
        except NotFoundError:
            return name
    raise InvalidInputError(f"too many datasets named {base}-N")


def _name_free(store: Any, name: str) -> None:
    try:
        get_dataset(store, name)
    except NotFoundError:
        return
    raise InvalidInputError(f"a dataset named {name!r} is registered already")


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest saved beside a dataset's files."""
    return json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))
