"""Model-written problems (after HDFlow): a model writes new problems from seed problems or a
topic, and only problems whose answers are verified are kept.

    problems, report = model_problems(writer, seeds=seed_problems, runtime=rt,
                                      config=WriterConfig(n=50, k=3))

Pipeline: the writer (any `ChatBackend`, typically a strong teacher behind an
OpenAI-compatible endpoint) is asked, in batched calls, for problems with an exact answer and a
short Python program (`data_synth/prompts/write_problems.jinja`; JSON-schema constrained on
backends that enforce schemas). Drafts are deduplicated among themselves and against the seeds
(`decontaminate.dedupe`), decontaminated against every test set (`decontaminate.decontaminate`,
n-gram overlap), and then verified:

- program check: the draft's program runs in the sandbox and what it prints passes the grader
  against the stated answer;
- independent solves: `k` solves through the runtime (sampled, so they are independent) agree
  on one answer in at least `min_agreement` of the cases, and that answer matches the stated
  one.

`verify="any"` (default) keeps a problem that passes the program check, else tries the solves;
"program" or "solves" require that check. The report gives every count: calls, unparseable
replies, duplicates and contaminated drafts removed (with the thresholds), verified by which
check, rejected by reason. Model-written text is never executed in this process: programs run
in the sandbox only.

Verification runs on an executor (`agentrt.execute`), in chunks of the candidates still needed
(or more, up to the local executor's workers); each chunk's results are taken in candidate order
and verification stops once `n` are kept, so the kept problems and the counts are the same
whatever order the checks finish in, and the same as checking one at a time.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import threading
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from agentrt.core.errors import AgentrtError, ConfigError, ToolError
from agentrt.core.types import ChatRequest, Problem, SamplingParams
from agentrt.data_synth.decontaminate import (
    DEFAULT_THRESHOLD,
    ContaminationIndex,
    DecontaminationReport,
    DedupeReport,
    build_index,
    decontaminate,
    dedupe,
)
from agentrt.data_synth.templates import render_prompt
from agentrt.data_synth.verify import grade_text
from agentrt.eval.graders import GRADERS
from agentrt.eval.numbers import parse_number
from agentrt.execute import Executor, Finished, LocalExecutor
from agentrt.router.signals import answers_agree
from agentrt.tools import get_tool
from agentrt.workflows.answers import parse_json_object
from agentrt.workflows.slow.toolcall import run_failure, tool_answer

__all__ = ["WriterConfig", "ModelProblemsReport", "Draft", "model_problems", "parse_drafts",
           "writer_schema"]

_MAX_TEXT, _MAX_ANSWER, _MAX_PROGRAM = 4000, 300, 8000


class WriterConfig(BaseModel):
    """How many problems to write and how to verify them."""

    n: int = Field(ge=1)
    per_call: int = Field(5, ge=1, le=50)
    max_calls: int | None = Field(None, ge=1)
    seeds_per_call: int = Field(4, ge=1)
    with_program: bool = True
    temperature: float = Field(0.8, ge=0.0, le=2.0)
    max_tokens: int = Field(1024, ge=16)
    verify: Literal["any", "program", "solves"] = "any"
    k: int = Field(3, ge=0, le=16)
    min_agreement: float = Field(0.6, gt=0.0, le=1.0)
    solve_mode: Literal["fast", "slow"] = "fast"
    solve_temperature: float = Field(0.7, ge=0.0, le=2.0)
    program_timeout_s: float = Field(10.0, gt=0)
    grader: str | None = None
    family: str | None = None
    difficulty: int = Field(2, ge=1, le=3)
    dedupe_threshold: float = Field(0.8, gt=0.0, le=1.0)
    contamination_threshold: float = Field(DEFAULT_THRESHOLD, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _check(self) -> "WriterConfig":
        if self.grader is not None and self.grader not in GRADERS:
            raise ValueError(f"unknown grader {self.grader!r}; known: {', '.join(GRADERS)}")
        if self.verify in ("any", "solves") and self.k == 0 and not self.with_program:
            raise ValueError("nothing could verify a problem: ask for programs or k >= 1 solves")
        if self.verify == "program" and not self.with_program:
            raise ValueError("verify='program' needs with_program")
        return self


class Draft(BaseModel):
    """A problem as the writer wrote it, before any check."""

    text: str = Field(min_length=1, max_length=_MAX_TEXT)
    answer: str = Field("", max_length=_MAX_ANSWER)
    program: str | None = Field(None, max_length=_MAX_PROGRAM)


class ModelProblemsReport(BaseModel):
    """Everything the pipeline counted."""

    writer: str
    calls: int = 0
    unparseable_replies: int = 0
    invalid_items: int = 0
    drafts: int = 0
    dedupe: DedupeReport | None = None
    decontamination: DecontaminationReport | None = None
    verified: dict[str, int] = Field(default_factory=dict)
    rejected: dict[str, int] = Field(default_factory=dict)
    kept: int = 0
    unused: int = 0  # checked beside the last kept one, after `n` were kept: results dropped


def writer_schema(n: int, with_program: bool) -> dict[str, Any]:
    """JSON schema of the writer's reply (for backends that enforce schemas)."""
    props: dict[str, Any] = {"text": {"type": "string", "minLength": 1, "maxLength": 1200},
                             "answer": {"type": "string", "minLength": 1, "maxLength": 120}}
    if with_program:
        props["program"] = {"type": "string", "minLength": 1, "maxLength": 1200}
    item = {"type": "object", "properties": props, "required": list(props),
            "additionalProperties": False}
    return {"type": "object", "properties": {"problems": {"type": "array", "minItems": 1,
                                                          "maxItems": n, "items": item}},
            "required": ["problems"], "additionalProperties": False}


def parse_drafts(text: str) -> tuple[list[Draft], int] | None:
    """Drafts in a writer reply and how many items were invalid; None when no JSON is found."""
    obj = parse_json_object(text)
    items = obj.get("problems") if isinstance(obj, dict) else None
    if not isinstance(items, list):
        return None
    drafts, invalid = [], 0
    for item in items:
        if not isinstance(item, dict):
            invalid += 1
            continue
        answer = item.get("answer", "")
        fields = {"text": str(item.get("text", "")).strip(),
                  "answer": str(answer).strip() if isinstance(answer, (str, int, float)) else "",
                  "program": item.get("program") if isinstance(item.get("program"), str) else None}
        try:
            drafts.append(Draft(**fields))
        except ValueError:
            invalid += 1
    return drafts, invalid


def _requests(backend: Any, seeds: Sequence[Problem], topic: str | None,
              cfg: WriterConfig) -> list[ChatRequest]:
    calls = cfg.max_calls or 2 * -(-cfg.n // cfg.per_call)
    schema = (writer_schema(cfg.per_call, cfg.with_program)
              if getattr(backend, "supports_json_schema", False) else None)
    ring = itertools.cycle(seeds) if seeds else None
    out = []
    for i in range(calls):
        shown = [next(ring) for _ in range(min(cfg.seeds_per_call, len(seeds)))] if ring else []
        prompt = render_prompt("write_problems", seeds=shown, topic=topic or "", n=cfg.per_call,
                               with_program=cfg.with_program)
        params = SamplingParams(temperature=cfg.temperature, max_tokens=cfg.max_tokens, seed=i)
        out.append(ChatRequest(messages=list(prompt.messages), params=params, json_schema=schema))
    return out


def _grader_for(draft: Draft, seeds: Sequence[Problem], cfg: WriterConfig) -> str:
    if cfg.grader:
        return cfg.grader
    kinds = {s.grader for s in seeds}
    if len(kinds) == 1:
        return kinds.pop()
    return "numeric" if parse_number(draft.answer) is not None else "exact"


def _as_problem(draft: Draft, seeds: Sequence[Problem], cfg: WriterConfig,
                writer: str) -> Problem:
    families = {s.family for s in seeds if s.family}
    family = cfg.family or (families.pop() if len(families) == 1 else "model")
    digest = hashlib.sha256(" ".join(draft.text.split()).casefold().encode()).hexdigest()[:12]
    meta: dict[str, Any] = {"source": "model", "writer": writer}
    if draft.program:
        meta["draft_program"] = draft.program
    return Problem(id=f"model-{digest}", text=draft.text, answer=draft.answer,
                   grader=_grader_for(draft, seeds, cfg), family=family,
                   difficulty=cfg.difficulty, meta=meta)


def _program_check(problem: Problem, tool: Any, cfg: WriterConfig) -> tuple[str | None, str]:
    """(what the program printed, or None when the check failed; why it failed)."""
    program = problem.meta.get("draft_program")
    if not program:
        return None, "no program"
    try:
        out = tool.run({"code": program, "timeout_s": cfg.program_timeout_s})
    except ToolError as e:
        return None, f"program rejected ({e.code})"
    failure = run_failure(tool, out)
    if failure:
        return None, "program failed"
    printed = tool_answer(out)
    if problem.answer and not grade_text(printed, problem):
        return None, "program disagrees with the stated answer"
    return printed, ""


def _solve_check(problem: Problem, runtime: Any, cfg: WriterConfig,
                 cancel: threading.Event | None = None) -> tuple[str | None, float, str]:
    """(the agreed answer or None, share of solves agreeing with it, why it failed)."""
    answers: list[str] = []
    for _ in range(cfg.k):
        try:
            sol = runtime.solve(problem.text, mode=cfg.solve_mode,
                                temperature=cfg.solve_temperature, cancel=cancel,
                                tags={"synth_check": "model_problem", "problem_id": problem.id})
            answers.append(sol.answer)
        except AgentrtError:
            answers.append("")
    groups: list[list[str]] = []
    for a in answers:
        home = next((g for g in groups if answers_agree(g[0], a)), None)
        if home is not None:
            home.append(a)
        elif a.strip():
            groups.append([a])
    if not groups:
        return None, 0.0, "no solve produced an answer"
    top = max(groups, key=len)
    share = len(top) / max(cfg.k, 1)
    if share < cfg.min_agreement:
        return None, share, "solves disagree"
    if problem.answer and not grade_text(top[0], problem):
        return None, share, "solves agree on another answer"
    return top[0], share, ""


def _verify(problem: Problem, cfg: WriterConfig, runtime: Any, tool: Any,
            cancel: threading.Event | None = None) -> tuple[Problem | None, str]:
    """The verified problem (answer settled, meta updated) or None, and the method or reason."""
    meta = {k: v for k, v in problem.meta.items() if k != "draft_program"}
    reason = "not checked"
    if cfg.verify in ("any", "program") and cfg.with_program:
        printed, reason = _program_check(problem, tool, cfg)
        if printed is not None:
            meta.update(verified_by="program", program=problem.meta["draft_program"])
            answer = problem.answer or printed
            return problem.model_copy(update={"answer": answer, "meta": meta}), "program"
        if cfg.verify == "program":
            return None, reason
    if cfg.k > 0 and runtime is not None:
        agreed, share, reason = _solve_check(problem, runtime, cfg, cancel)
        if agreed is not None:
            meta.update(verified_by="solves", agreement=round(share, 4), solves=cfg.k)
            return problem.model_copy(update={"answer": problem.answer or agreed,
                                              "meta": meta}), "solves"
    return None, reason


def _verify_item(cfg: WriterConfig, tool: Any, runtime: Any, problem: Problem,
                 cancel: threading.Event) -> tuple[Problem | None, str]:
    """The executor's work function (module level, so it pickles for Ray workers): `_verify`
    with the caller's python tool, or, where none was handed over (a Ray worker), this
    process's own."""
    if tool is None and _needs_program(cfg):
        tool = get_tool("python")
    return _verify(problem, cfg, runtime, tool, cancel)


def _checked(executor: Executor, work: Any, problems: list[Problem], runtime: Any
             ) -> list[tuple[Problem | None, str]]:
    """Every problem's (verified problem or None, method or reason), in problem order."""
    results: list[tuple[Problem | None, str]] = [(None, "not checked")] * len(problems)
    batch = executor.map(work, problems, context=runtime)
    try:
        for done in batch:
            results[done.index] = _result(done)
    finally:
        batch.close()
    return results


def _result(done: Finished) -> tuple[Problem | None, str]:
    if done.error is None:
        return done.result
    return None, f"check failed ({type(done.error).__name__})"  # a lost worker, a bug


def _verify_all(clean: list[Problem], cfg: WriterConfig, runtime: Any, tool: Any,
                executor: Executor, report: ModelProblemsReport) -> list[Problem]:
    """The first `cfg.n` problems of `clean` that verify, checked a chunk at a time."""
    width = getattr(executor, "workers", 1)
    work = functools.partial(_verify_item, cfg, tool)
    out: list[Problem] = []
    start = 0
    while start < len(clean) and len(out) < cfg.n:
        chunk = clean[start:start + max(cfg.n - len(out), width)]
        start += len(chunk)
        results = _checked(executor, work, chunk, runtime)
        for i, (verified, how) in enumerate(results):
            if len(out) >= cfg.n:
                report.unused += len(results) - i
                break
            bucket = report.verified if verified is not None else report.rejected
            bucket[how] = bucket.get(how, 0) + 1
            if verified is not None:
                out.append(verified)
    return out


def model_problems(writer: Any, *, config: WriterConfig, seeds: Sequence[Problem] = (),
                   topic: str | None = None, runtime: Any = None,
                   index: ContaminationIndex | None = None, data: Any = None,
                   python_tool: Any = None, executor: Executor | None = None
                   ) -> tuple[list[Problem], ModelProblemsReport]:
    """Have `writer` write problems; keep the verified, new and uncontaminated ones.

    Args:
        writer: the chat backend that writes problems.
        config: how many, and how to verify them.
        seeds: example problems to imitate (or give `topic`).
        topic: a topic to write about (or give `seeds`).
        runtime: the `Runtime` whose solves verify answers (needed for solve checks); with a
            Ray executor the workers solve with runtimes of their own (the executor's factory).
        index: the test-set index to decontaminate against (built from `data` when omitted).
        data: the benchmark data folder (default `$AGENTRT_DATA` or `../shared/data`).
        python_tool: the sandboxed python tool for program checks (the registry's by default;
            a Ray worker always uses its own registry tool).
        executor: where candidates are verified (default: `LocalExecutor(1)`, one at a time).

    Returns:
        (at most `config.n` verified problems, the report).

    Raises:
        ConfigError: neither or both of seeds and topic, solve checks without a runtime, or
            a missing data folder.
        BackendError: the writer failed.
    """
    if bool(seeds) == bool(topic and topic.strip()):
        raise ConfigError("give seed problems or a topic, not both and not neither")
    if _needs_runtime(config) and runtime is None:
        raise ConfigError("verifying by independent solves needs a runtime")
    report = ModelProblemsReport(writer=getattr(writer, "model_id", ""))
    requests = _requests(writer, seeds, topic, config)
    report.calls = len(requests)
    drafts: list[Draft] = []
    for response in writer.chat_batch(requests):
        parsed = parse_drafts(response.text)
        if parsed is None:
            report.unparseable_replies += 1
            continue
        drafts.extend(parsed[0])
        report.invalid_items += parsed[1]
    report.drafts = len(drafts)
    candidates = [_as_problem(d, seeds, config, report.writer) for d in drafts]
    kept, _, report.dedupe = dedupe([*seeds, *candidates], threshold=config.dedupe_threshold)
    seed_ids = {s.id for s in seeds}
    fresh = [p for p in kept if p.id not in seed_ids]
    index = index if index is not None else build_index(data)
    clean, _, report.decontamination = decontaminate(fresh, index,
                                                     config.contamination_threshold)
    executor = executor or LocalExecutor(1, thread_name_prefix="verify")
    if not isinstance(executor, LocalExecutor):
        python_tool = None  # never pickled to a worker: each builds its own
    elif python_tool is None and _needs_program(config):
        python_tool = get_tool("python")
    out = _verify_all(clean, config, runtime, python_tool, executor, report)
    report.kept = len(out)
    return out, report


def _needs_program(config: WriterConfig) -> bool:
    """Whether a config checks programs (so a python tool is required)."""
    return config.with_program and config.verify != "solves"


def _needs_runtime(config: WriterConfig) -> bool:
    """Whether a config verifies through solves (so a runtime is required)."""
    return config.verify in ("any", "solves") and config.k > 0
