"""Optima-style training of teams (Chen et al., 2024): effective, token-efficient conversations.

One round, on problems whose facts are split between agents (`OptimaSettings.task`: the `infox`
family, GSM8K train problems split sentence by sentence, or both):

1. **Generate**: `samples` team conversations per problem by the current model at
   `temperature`, through the runtime's own team mode (`solve(question, mode="team",
   agents=...)`), so the rows are exactly the prompts the runtime sends and the trained model
   plays every agent. Each conversation is a trace tagged with the round.
2. **Rank**: reward = correct - token_weight * tokens / most tokens of the round +
   readability_weight * readability, where tokens are what the agents wrote and readability is
   exp(-loss per token) of their messages under the base model (plain language scores high;
   Optima's guard against agents drifting into a private code).
3. **Select**: per problem, the best conversation when it is right and its reward reaches
   `threshold`; where none is, a gold team conversation stands in (`gold`, on by default:
   `agentrt.data_synth.team_teacher`, the ideal team in the same prompts: share your facts,
   then calculate and agree), as STaR rationalizes what the model could not solve. A model
   that solves nothing yet still learns the shape of a good conversation.
4. **Train**: SFT on every agent call of the selected conversations (in the pool pattern,
   `pattern="pool"`, also the program call that ran), then DPO on pairs of
   first messages of the same agent from a high- and a low-reward conversation of the same
   problem (in the debate pattern an agent's first prompt holds only the question and its own
   facts, so the two replies answer the same prompt), reward gap at least `min_gap`; and the
   gold team's first messages over the model's worst where gold stood in.

`optima_round` runs one round from a model (usable alone: `python -m agentrt.training.optima`,
which also evaluates the team on the held-out `infox` problems before and after each round);
`training/iterate.py` runs it as the stage `it<k>/optima` when `optima_problems` > 0. Traces
and trained models are reused when a killed round runs again.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any

from agentrt.core.errors import AgentrtError, ConfigError, InvalidInputError
from agentrt.core.types import Problem
from agentrt.data_synth.decontaminate import build_index, decontaminate
from agentrt.data_synth.generators import generate
from agentrt.data_synth.infox import drop_heldout
from agentrt.data_synth.split import gsm8k_infox
from agentrt.data_synth.team_teacher import gold_team_trace
from agentrt.data_synth.verify import SYNTHETIC_TAG, grade_text, problem_tags
from agentrt.eval.harness import team_inputs
from agentrt.llm.hf_load import load_model
from agentrt.llm.models import resolve_model
from agentrt.training.dpo import train_dpo
from agentrt.training.dpo_config import DPOSettings
from agentrt.training.optima_config import OptimaSettings
from agentrt.training.sft import train_sft
from agentrt.training.sft_config import SFTSettings

__all__ = ["OptimaSettings", "Conversation", "optima_problems", "generate_conversations",
           "readability", "rank", "select", "gold_conversations", "optima_round"]

Progress = Callable[[str, int, int], None]


@dataclass
class Conversation:
    """One generated team conversation and its score."""

    problem: Problem
    sample: int
    trace_id: str
    answer: str
    correct: bool
    tokens: int  # completion tokens the agents wrote
    calls: list[dict[str, Any]] = field(default_factory=list)  # agent, turn, messages, reply
    readability: float = 0.0
    reward: float = 0.0


def optima_problems(n: int, seed: int, task: str = "infox",
                    data: Path | str | None = None) -> list[Problem]:
    """`n` information-exchange problems for training, drawn by `seed`: generated ones
    (`task="infox"`, held-out texts removed), GSM8K train problems split sentence by sentence
    between two agents (`"gsm8k"`, from the data folder `data`; never the test split, and
    decontaminated against every test set), or half of each, alternating (`"mixed"`).

    Raises:
        ConfigError: an unknown task, or (for GSM8K) a missing data folder or file.
    """
    if task == "infox":
        kept, _ = drop_heldout(generate("infox", n + n // 4 + 8, seed=seed))
        return kept[:n]
    if task == "gsm8k":
        load, _ = gsm8k_infox(data, "train")
        rows = list(load.problems)
        random.Random(seed).shuffle(rows)
        clean, _, _ = decontaminate(rows[:n + n // 4 + 8], build_index(data))
        return clean[:n]
    if task == "mixed":
        real = optima_problems(n // 2, seed, "gsm8k", data)
        made = optima_problems(n - len(real), seed, "infox")
        return [p for pair in zip_longest(made, real) for p in pair if p is not None]
    raise ConfigError(f"unknown Optima task {task!r}; choose infox, gsm8k or mixed")


def _calls(store: Any, trace_id: str) -> list[dict[str, Any]]:
    """The calls of a team trace: each message's prompt and reply, in order, and (in the pool
    pattern) the tool call whose program ran (`agent` None). Agents of one round speak at
    once, so a message is paired with the last call of its own graph task (the agent node's
    run), not with the step before it; a tool call likewise with its run."""
    calls, last, wrote = [], {}, {}
    for step in sorted(store.get_trace(trace_id).steps, key=lambda s: s.id or 0):
        if step.superseded or step.kind not in ("llm", "decision", "tool"):
            continue
        if step.kind == "llm" and step.status == "ok":
            if step.name in ("agent", "agent_repair"):
                last[step.task] = step
            elif step.name in ("tool_input", "tool_repair"):
                wrote[step.task] = step
        elif step.kind == "decision" and step.name == "message" and step.task in last:
            calls.append(_call(last.pop(step.task), step.inputs.get("agent"),
                               step.inputs.get("turn")))
        elif step.kind == "tool" and step.status == "ok" and step.task in wrote:
            calls.append(_call(wrote.pop(step.task), None, None))
    return calls


def _call(step: Any, agent: Any, turn: Any) -> dict[str, Any]:
    return {"agent": agent, "turn": turn,
            "messages": [{"role": str(m.get("role")), "content": str(m.get("content", ""))}
                         for m in step.inputs.get("messages") or []],
            "reply": str((step.outputs or {}).get("text", "")),
            "tokens": int(step.completion_tokens or 0)}


def generate_conversations(rt: Any, problems: list[Problem], s: OptimaSettings, *,
                           tags: dict[str, str], progress: Progress | None = None,
                           ) -> list[Conversation]:
    """`s.samples` team conversations per problem (finished ones of an earlier try reused)."""
    jobs = [(p, k) for p in problems for k in range(s.samples)]
    out: list[Conversation | None] = [None] * len(jobs)

    def one(i: int) -> None:
        problem, k = jobs[i]
        run_tags = {**problem_tags(problem), **tags, "role": "optima", "sample": str(k)}
        found = [t for t in rt.store.list_traces(limit=5, tags=run_tags) if t.status == "ok"]
        if found:
            trace_id, answer = found[0].id, found[0].answer or ""
        else:
            if not problem.meta.get("agents"):
                raise InvalidInputError(f"problem {problem.id} has no agents to split it between")
            text, team = team_inputs(problem)
            try:
                sol = rt.solve(text, mode="team", tags=run_tags, temperature=s.temperature,
                               rounds=s.rounds, pattern=s.pattern,
                               message_tokens=s.message_tokens, **team)
            except AgentrtError:
                return
            trace_id, answer = sol.trace_id, sol.answer
        calls = _calls(rt.store, trace_id)
        out[i] = Conversation(problem=problem, sample=k, trace_id=trace_id, answer=answer,
                              correct=grade_text(answer, problem), calls=calls,
                              tokens=sum(c["tokens"] for c in calls))

    with ThreadPoolExecutor(max_workers=s.workers, thread_name_prefix="optima") as pool:
        for n, _ in enumerate(pool.map(one, range(len(jobs))), 1):
            if progress is not None:
                progress("optima conversations", n, len(jobs))
    return [c for c in out if c is not None]


def readability(texts: list[str], model: str, *, home: Any = None, batch: int = 8) -> list[float]:
    """exp(-mean loss per token) of each text under `model` (1.0: fully predictable; an empty
    text scores 0)."""
    import torch  # heavy: torch

    if not texts:
        return []
    lm, tok = load_model(str(resolve_model(str(model), home)), "cpu", home, torch.float32)
    tok.padding_side = "right"
    scores: list[float] = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch):
            chunk = [t if t.strip() else tok.eos_token for t in texts[start:start + batch]]
            enc = tok(chunk, return_tensors="pt", padding=True, truncation=True, max_length=512)
            logits = lm(**enc).logits[:, :-1]
            target, mask = enc["input_ids"][:, 1:], enc["attention_mask"][:, 1:].float()
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target,
                                                    reduction="none")
            per = (nll * mask).sum(1) / mask.sum(1).clamp(min=1)
            scores += [math.exp(-float(v)) for v in per]
    return [0.0 if not t.strip() else v for t, v in zip(texts, scores)]


def rank(conversations: list[Conversation], s: OptimaSettings, *, base_model: str,
         home: Any = None) -> None:
    """Set each conversation's readability and reward (in place)."""
    texts = ["\n".join(c["reply"] for c in conv.calls if c["agent"] is not None)
             for conv in conversations]
    for conv, r in zip(conversations, readability(texts, base_model, home=home)):
        conv.readability = r
    most = max((c.tokens for c in conversations), default=0) or 1
    for conv in conversations:
        conv.reward = (float(conv.correct) - s.token_weight * conv.tokens / most
                       + s.readability_weight * conv.readability)


def _by_problem(conversations: list[Conversation]) -> Iterator[list[Conversation]]:
    groups: dict[str, list[Conversation]] = {}
    for conv in conversations:
        groups.setdefault(conv.problem.id, []).append(conv)
    for group in groups.values():
        yield sorted(group, key=lambda c: (-c.reward, c.sample))


def _rows(conv: Conversation) -> list[dict[str, Any]]:
    return [{"messages": [*c["messages"], {"role": "assistant", "content": c["reply"]}],
             "trace_id": conv.trace_id, "step": "agent" if c["agent"] is not None else "tool",
             "problem_id": conv.problem.id}
            for c in conv.calls]


def _pairs(good: Conversation, bad: Conversation) -> list[dict[str, Any]]:
    """DPO rows: each agent's first message in `good` over its first message in `bad`, where
    the two answer the same prompt and differ."""
    firsts = {c["agent"]: c for c in bad.calls if c["turn"] == 1}
    rows = []
    for call in (c for c in good.calls if c["turn"] == 1):
        other = firsts.get(call["agent"])
        if other and other["messages"] == call["messages"] and other["reply"] != call["reply"]:
            rows.append({"prompt": call["messages"],
                         "chosen": [{"role": "assistant", "content": call["reply"]}],
                         "rejected": [{"role": "assistant", "content": other["reply"]}],
                         "problem_id": good.problem.id, "chosen_trace_id": good.trace_id,
                         "rejected_trace_id": bad.trace_id})
    return rows


def select(conversations: list[Conversation], s: OptimaSettings,
           gold: dict[str, Conversation] | None = None,
           ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Conversation]]:
    """(SFT rows, DPO rows, selected conversations) of ranked conversations.

    `gold` (problem id -> a gold team conversation) stands in for problems where no
    conversation of the model was selected: its calls are SFT rows, and its first messages are
    preferred over those of the model's lowest-reward conversation.
    """
    sft_rows, dpo_rows, chosen = [], [], []
    for group in _by_problem(conversations):
        best, worst = group[0], group[-1]
        if best.correct and best.reward >= s.threshold:
            chosen.append(best)
            sft_rows += _rows(best)
            if best.reward - worst.reward >= s.min_gap:
                dpo_rows += _pairs(best, worst)
        elif gold and best.problem.id in gold:
            sft_rows += _rows(gold[best.problem.id])
            dpo_rows += _pairs(gold[best.problem.id], worst)
    return sft_rows, dpo_rows, chosen


def gold_conversations(rt: Any, problems: list[Problem], *, tags: dict[str, str],
                       pattern: str | None = None) -> dict[str, Conversation]:
    """Gold team conversations (`agentrt.data_synth.team_teacher`) of `problems`, in the
    prompts of `rt`'s profile and in `pattern` (None: `rt`'s); earlier ones with the same tags
    are reused."""
    settings = rt.settings.model_copy(update={
        "prompt_profile": rt.profile, "team_pattern": pattern or rt.settings.team_pattern})
    out = {}
    for problem in problems:
        found = [t for t in rt.store.list_traces(
            limit=5, tags={**problem_tags(problem), **tags, SYNTHETIC_TAG: "gold"})
            if t.status == "ok"]
        trace_id, why = (found[0].id, None) if found else gold_team_trace(
            problem, store=rt.store, settings=settings, tags=tags, tools=rt.tools)
        if why is None and trace_id is not None:
            calls = _calls(rt.store, trace_id)
            out[problem.id] = Conversation(problem=problem, sample=-1, trace_id=trace_id,
                                           answer=problem.answer, correct=True, calls=calls,
                                           tokens=sum(c["tokens"] for c in calls))
    return out


def _summary(conversations: list[Conversation]) -> dict[str, Any]:
    n = max(len(conversations), 1)
    right = [c for c in conversations if c.correct]
    return {"conversations": len(conversations), "correct": len(right),
            "accuracy": len(right) / n, "tokens_per_conversation": sum(c.tokens for c in
                                                                      conversations) / n,
            "tokens_per_solved": (sum(c.tokens for c in conversations) / len(right)
                                  if right else None),
            "reward_mean": sum(c.reward for c in conversations) / n,
            "readability_mean": sum(c.readability for c in conversations) / n}


def optima_round(rt: Any, model: str, problems: list[Problem], out: Path,
                 s: OptimaSettings, *, base_model: str, tags: dict[str, str],
                 home: Any = None, progress: Progress | None = None,
                 callbacks: list[Any] | None = None) -> dict[str, Any]:
    """One round from `model` (which `rt` serves): generate, rank, select, train.

    Returns:
        Figures of the round and `path`, the trained model (`model` itself when no
        conversation was selected: nothing to learn from).
    """
    out = Path(out)
    convs = generate_conversations(rt, problems, s, tags=tags, progress=progress)
    rank(convs, s, base_model=base_model, home=home)
    gold = {}
    if s.gold:
        _, _, chosen = select(convs, s)
        solved = {c.problem.id for c in chosen}
        gold = gold_conversations(rt, [p for p in problems if p.id not in solved], tags=tags,
                                  pattern=s.pattern)
    sft_rows, dpo_rows, chosen = select(convs, s, gold)
    out.mkdir(parents=True, exist_ok=True)
    (out / "conversations.jsonl").write_text("".join(
        json.dumps({"problem_id": c.problem.id, "sample": c.sample, "trace_id": c.trace_id,
                    "correct": c.correct, "tokens": c.tokens, "readability": c.readability,
                    "reward": c.reward, "selected": c in chosen}) + "\n" for c in convs))
    result: dict[str, Any] = {**_summary(convs), "selected": len(chosen), "gold": len(gold),
                              "sft_rows": len(sft_rows), "dpo_pairs": len(dpo_rows),
                              "path": model}
    if not sft_rows:
        return {**result, "skipped": "no conversation was right and above the threshold"}
    random.Random(0).shuffle(sft_rows)
    sft_out = out / "sft"
    if not (sft_out / "agentrt-version.json").is_file():
        train_sft(model, sft_rows, sft_out, SFTSettings(**s.sft), home=home, callbacks=callbacks)
    result["path"] = str(sft_out.resolve())
    if dpo_rows:
        dpo_out = out / "dpo"
        if not (dpo_out / "agentrt-version.json").is_file():
            train_dpo(result["path"], dpo_rows, dpo_out, DPOSettings(**s.dpo), home=home,
                      callbacks=callbacks)
        result["path"] = str(dpo_out.resolve())
    return result
