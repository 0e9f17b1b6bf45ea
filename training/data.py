"""The data of one iteration: problems, the frozen held-out set, and the two training datasets.

Problems come from `agentrt.data_synth.generators` with seeds derived from the run's seed and the
iteration; the held-out set is generated once per run from `eval_seed` and saved as JSONL, and
no training problem may share its text with a held-out one (fresh seeds, same families).

Datasets, both registered in the store's dataset registry:

- SFT: every good call of this iteration's verified traces (gold and the model's own), in the
  runtime's exact prompt format (`agentrt.data_synth.compile.sft`), plus, with `relabel`, the fast
  self-check of every graded fast attempt the model made, relabelled with the verdict it
  should have given ("no" when its answer was wrong, "yes" when right). This is what teaches a
  small model to escalate arithmetic it cannot do to slow thinking. Gold traces' own checks and
  routing labels are left out then: they only ever see right answers and would teach "yes"
  (and "fast") to everything. With a general mix, a share of general chat rows
  (`agentrt.data_synth.general`: the base model's own replies to everyday requests, or a user's chat
  file) is added, so the tuned model still chats like its base.
- DPO: right against wrong replies to the same prompt (`agentrt.data_synth.compile.dpo`), over gold and
  own traces together, so a gold design is preferred to the model's failed one for a problem.

Builds are crash-safe: a dataset is saved complete and renamed into place, then registered; a
rebuild after a kill reuses a registered dataset of the same name or removes an unregistered
leftover directory first. This module knows generators, the compilers and the registry.
"""

from __future__ import annotations

import json
import random
import shutil
from itertools import zip_longest
from pathlib import Path
from typing import Any

from agentrt.core.errors import InvalidInputError, NotFoundError
from agentrt.core.types import Problem
from agentrt.data_synth.compile import BuildSpec, build_dataset
from agentrt.data_synth.compile.anatomy import dissect
from agentrt.data_synth.compile.build import composition, general_row
from agentrt.data_synth.compile.mix import mix_rows, read_chat_examples
from agentrt.data_synth.compile.registry import get_dataset, register_dataset
from agentrt.data_synth.compile.select import select_traces
from agentrt.data_synth.compile.sft import sft_row, sft_rows
from agentrt.data_synth.compile.spec import BuildSpec
from agentrt.data_synth.compile.tokens import TokenCounter
from agentrt.data_synth.compile.writer import content_hash, save_atomic
from agentrt.data_synth.decontaminate import build_index
from agentrt.data_synth.generators import generate
from agentrt.data_synth.templates import render_text
from agentrt.data_synth.variants import verified_variants
from agentrt.data_synth.worked import worked_problems
from agentrt.eval.benchmarks import resolve_data_dir
from agentrt.store.records import utcnow

__all__ = ["training_problems", "real_problems", "check_data_files", "heldout_problems",
           "write_problems",
           "read_problems", "cap_steps", "existing_dataset", "build_sft_dataset", "build_dpo_dataset",
           "relabelled_checks", "record_summary"]


# Gold traces' self-checks and routing labels are only ever "yes" / "fast" (a gold fast answer
# is always right), so with relabelled checks they would only teach the model to trust itself.
_GOLD_ONLY_RIGHT = ("fast_check",)


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _spread(families: list[str], levels: list[int], n: int, seed: int) -> list[Problem]:
    cells = [(f, d) for f in families for d in levels]
    per = -(-n // len(cells))
    out: list[Problem] = []
    for i, (family, level) in enumerate(cells):
        out += generate(family, per, seed=seed * 1009 + i, difficulty=level)
    return out


def heldout_problems(families: list[str], levels: list[int], per_family: int,
                     seed: int) -> list[Problem]:
    """The frozen evaluation set: `per_family` problems of each family, levels in turn."""
    out: list[Problem] = []
    for family in families:
        pool = _spread([family], levels, per_family, seed)
        by_level = {d: [p for p in pool if p.difficulty == d] for d in levels}
        picked = [by_level[levels[i % len(levels)]][i // len(levels)] for i in range(per_family)]
        out += picked
    return out


def training_problems(families: list[str], levels: list[int], n: int, seed: int,
                      iteration: int, exclude: list[Problem]) -> list[Problem]:
    """`n` problems for one iteration, none with the text of a held-out problem."""
    banned = {_norm(p.text) for p in exclude}
    pool = [p for p in _spread(families, levels, n + len(banned), seed * 7919 + iteration)
            if _norm(p.text) not in banned]
    random.Random(seed * 31 + iteration).shuffle(pool)
    if len(pool) < n:
        raise InvalidInputError(f"only {len(pool)} distinct training problems for {n} asked")
    return pool[:n]


def _source_path(source: str) -> tuple[str, Path]:
    name, sep, path = source.partition("=")
    if sep:
        return name.strip(), Path(path.strip())
    return name, resolve_data_dir() / name / "train.jsonl"


def check_data_files(real_sources: list[str], chat_file: str | None) -> None:
    """Check the data files that later stages read, so that a bad one stops a run before its
    first stage rather than after hours of it.

    Args:
        real_sources: worked-solution sources (`gsm8k`, `name=path.jsonl`); each must be a file
            (its rows are read when its problems are compiled).
        chat_file: the chat JSONL file of the general mix, read whole now; None for none.

    Raises:
        InvalidInputError: a source file is missing, or the chat file is unreadable or has a
            malformed line (the message names the file and line).
    """
    for source in real_sources:
        name, path = _source_path(source)
        if not path.is_file():
            raise InvalidInputError(f"real source {name}: no worked-solution file at {path}")
    if chat_file is not None:
        read_chat_examples(chat_file)


def real_problems(sources: list[str], n: int, seed: int, iteration: int, home: Path,
                  exclude: list[Problem], progress: Any = None,
                  offset: int = 0, variants: int = 0,
                  originals: bool = True) -> tuple[list[Problem], dict]:
    """`n` problems of worked-solution sources for one iteration, new ones each iteration.

    Each source is compiled, run in the sandbox and decontaminated once
    (`agentrt.data_synth.worked.worked_problems`, cached under `<home>/data/worked/`); the pooled
    problems are shuffled once per run seed and iteration k takes the k-th slice of `n` after
    the first `offset` (those a starting model already saw), so no problem is trained on twice.
    With `variants`, each problem of the slice adds up to that many number variants
    (`agentrt.data_synth.variants`: new numbers, the answer its program computes), each run in
    the sandbox and decontaminated like the originals; `originals` False keeps the variants
    alone (for problems a starting model has already trained on).
    Returns the problems and each source's report (variants under `<source>-variant`).

    Raises:
        InvalidInputError: a source file is missing, or fewer problems remain than asked.
    """
    banned = {_norm(p.text) for p in exclude}
    pool: list[Problem] = []
    reports: dict[str, Any] = {}
    for source in sources:
        name, path = _source_path(source)
        ps, report = worked_problems(path, source=name, cache_dir=home / "data" / "worked",
                                     progress=progress)
        reports[name] = report.model_dump()
        pool += [p for p in ps if _norm(p.text) not in banned]
    random.Random(seed * 131 + 7).shuffle(pool)
    start = offset + (iteration - 1) * n
    if len(pool) < start + n:
        skipped = f" after skipping {offset}" if offset else ""
        raise InvalidInputError(f"only {len(pool)} real problems for {iteration} iterations "
                                f"of {n}{skipped}")
    picked = pool[start:start + n]
    if not variants:
        return picked, reports
    extra, more = verified_variants(picked, variants, seed=seed * 1000 + iteration,
                                    index=build_index(None), progress=progress,
                                    keep=lambda v: _norm(v.text) not in banned)
    return (picked if originals else []) + extra, {**reports, **more}


def write_problems(problems: list[Problem], path: Path) -> Path:
    """Problems as JSONL rows the evaluation harness reads (`jsonl:<path>`), atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for p in problems:
            f.write(json.dumps({"id": p.id, "problem": p.text, "answer": p.answer,
                                "grader": p.grader, "family": p.family,
                                "difficulty": p.difficulty, "seed": p.seed,
                                "meta": p.meta}) + "\n")
    tmp.replace(path)
    return path


def read_problems(path: Path) -> list[Problem]:
    lines = path.read_text(encoding="utf-8").split("\n")  # not splitlines: U+2028 is text
    rows = [json.loads(line) for line in lines if line.strip()]
    return [Problem(id=r["id"], text=r["problem"], answer=r["answer"], grader=r["grader"],
                    family=r["family"], difficulty=r["difficulty"], seed=r.get("seed"),
                    meta=r.get("meta") or {})
            for r in rows]


def _verdict_reply(verdict: str, answer: str, structured: bool) -> str:
    if verdict == "yes":
        reason = render_text("gold/check_reason", answer=answer)
    else:
        reason = (f"The proposed answer {answer} was not worked out exactly, so it cannot be "
                  "trusted.")
    if structured:
        return json.dumps({"reason": reason, "verdict": verdict}, ensure_ascii=False)
    return f"{reason}\nVerdict: {verdict}"


def relabelled_checks(judges: list[Any]) -> list[dict[str, Any]]:
    """SFT rows: each graded fast self-check of the model's own traces, with the right verdict."""
    rows = []
    for judge in judges:
        if judge.source != "model":
            continue
        anatomy = dissect(judge)
        if anatomy.fast_correct is None or anatomy.fast_answer is None:
            continue
        verdict = "yes" if anatomy.fast_correct else "no"
        for call in anatomy.calls:
            if call.name != "fast_check":
                continue
            structured = bool(call.step.inputs.get("json_schema"))
            reply = _verdict_reply(verdict, anatomy.fast_answer, structured)
            rows.append(sft_row(judge, call.messages, reply, step="fast_check_relabelled",
                                step_id=call.step.id, template=call.step.template,
                                template_hash=call.step.template_hash, ok=True,
                                prompt_tokens=call.step.prompt_tokens))
    return rows


def existing_dataset(store: Any, name: str, out: Path) -> Any | None:
    """A dataset already registered under `name`, or None (an unregistered `out` is removed)."""
    try:
        record = get_dataset(store, name)
    except NotFoundError:
        if out.exists():
            shutil.rmtree(out)  # saved by a killed build, never registered: build it again
        return None
    return record if Path(record.path).is_dir() else None


def cap_steps(rows: list[dict[str, Any]], caps: dict[str, int | dict[str, int]]
              ) -> list[dict[str, Any]]:
    """At most `caps[step]` rows of each step kind, taken in turn from each problem family (so
    a cap never drops a whole family), the rest in trace order. A cap may also be a mapping
    from family to its own cap (`{"word": 200, "arithmetic": 80}`), to weight the families a
    model finds hard; a family it does not name keeps all its rows."""
    keep: set[int] = set()
    for step, cap in caps.items():
        by_family: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            if row["step"] == step:
                by_family.setdefault(str(row.get("family")), []).append(i)
        if isinstance(cap, dict):
            for family, group in by_family.items():
                keep.update(group[:cap.get(family, len(group))])
            continue
        turns = [i for group in zip_longest(*by_family.values()) for i in group if i is not None]
        keep.update(turns[:cap])
    return [row for i, row in enumerate(rows) if row["step"] not in caps or i in keep]


def build_sft_dataset(store: Any, *, tags: dict[str, str], out: Path, name: str,
                      tokenizer: str, max_tokens: int, relabel: bool,
                      caps: dict[str, int | dict[str, int]] | None = None,
                      general: list[list[dict[str, str]]] | None = None,
                      general_mix: float = 0.0, seed: int = 0, home: Any = None) -> Any:
    """Build, save and register the iteration's SFT dataset (see the module docstring).

    Args:
        caps: most rows per step kind (`design`, `reflect`, ...), to spend a small training
            budget where the model has the most to learn; absent kinds are not capped.
        general: general chat conversations to mix in (`agentrt.data_synth.compile.mix`), so that
            general_mix of the rows are general chat (step "general"), drawn with `seed`.
    """
    found = existing_dataset(store, name, out)
    if found is not None:
        return found
    spec = BuildSpec(kind="sft", out=out, name=name, tags=tags, tokenizer=tokenizer,
                     max_tokens=max_tokens)
    judges = select_traces(store, spec)
    rows, used, skipped = sft_rows(judges, verified_only=True)
    if relabel:
        rows = [r for r in rows if not (r["source"] == "gold" and r["step"] in _GOLD_ONLY_RIGHT)]
        checks = relabelled_checks(judges)
        rows += checks
        used = sorted(set(used) | {r["trace_id"] for r in checks})
    rows = cap_steps(rows, caps or {})
    mixed = None
    if general and general_mix > 0:
        chosen, mixed = mix_rows(len(rows), general, general_mix, seed)
        rows += [general_row("sft", m) for m in chosen]
    counter = TokenCounter(tokenizer, home)
    for row in rows:
        row["tokens"] = counter.chat(row["messages"])
    kept = [r for r in rows if r["tokens"] <= max_tokens]
    if not kept:
        raise InvalidInputError(f"no SFT rows from {len(judges)} traces (skipped: {skipped})")
    digest, created = content_hash("sft", kept), utcnow()
    meta = {"selected_traces": len(judges), "used_traces": len(used), "skipped": skipped,
            "over_token_cap": len(rows) - len(kept), "relabelled_checks": relabel,
            "step_caps": caps or {}, "general_mix": mixed,
            "tokenizer": tokenizer, "composition": composition("sft", kept)}
    manifest = {"name": name, "kind": "sft", "content_hash": digest, "rows": len(kept),
                "filters": spec.filters(), "created_at": created.isoformat(), **meta}
    path = save_atomic(kept, out, manifest)
    try:
        return register_dataset(store, name=name, kind="sft", path=str(path),
                                content_hash=digest, rows=len(kept), filters=spec.filters(),
                                meta=meta, trace_ids=used, created_at=created)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise


def build_dpo_dataset(store: Any, *, tags: dict[str, str], out: Path, name: str,
                      tokenizer: str, max_tokens: int, home: Any = None) -> Any | None:
    """Build, save and register the iteration's preference pairs; None when there are none."""
    found = existing_dataset(store, name, out)
    if found is not None:
        return found
    spec = BuildSpec(kind="dpo", out=out, name=name, tags=tags, tokenizer=tokenizer,
                     max_tokens=max_tokens)
    try:
        return build_dataset(store, spec, home=home)
    except InvalidInputError as e:
        if "none yields" in str(e) or "no finished traces" in str(e) or "longer than" in str(e):
            return None
        raise


def record_summary(record: Any) -> dict[str, Any]:
    """What a model version records about a dataset it was trained on."""
    return {"name": record.name, "id": record.id, "kind": record.kind, "path": record.path,
            "content_hash": record.content_hash, "rows": record.rows}
