"""Solving inside a run: teacher traces, the model's own solves, and evaluation on held-out sets.

All three go through the real runtime (`agentrt.runtime.Runtime`) with the run's settings: the
prompt profile and the limits of the config, the hf backend batching concurrent solves. Every
trace is tagged with the run and the iteration (`iterate_run`, `iteration`), its `split`
(`train` for teacher and own solves, `eval` for evaluation: datasets select `split=train`
only, so no evaluation solve can leak into training) and, for training problems, the problem's
reference (`agentrt.data_synth.verify.problem_tags`), so the dataset compilers can find and grade
them. Teacher and self-solve stages resume per problem: work whose trace already finished
(found by its tags) is not done again.

Evaluation is the evaluation harness (`agentrt.eval.harness.run_eval`) on the frozen held-out
JSONL and on GSM8K, once per mode; its metrics are reduced to accuracy overall and per family.
This module knows the runtime, the teacher and the harness; not training or the registry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentrt.core.config import Settings, load_settings
from agentrt.core.errors import AgentrtError, ConfigError
from agentrt.core.types import Problem
from agentrt.data_synth.teacher import gold_traces, teacher_traces
from agentrt.data_synth.verify import grade_text, problem_tags
from agentrt.eval.harness import EvalSpec, run_eval
from agentrt.eval.metrics import compute_metrics
from agentrt.execute import Executor, LocalExecutor, make_executor
from agentrt.llm.hf import HFBackend
from agentrt.runtime import Runtime
from agentrt.training.config import IterateConfig

__all__ = ["run_settings", "open_runtime", "VersionRuntime", "stage_executor", "teacher_stage",
           "self_solve_stage", "evaluate"]

Progress = Callable[[str, int, int], None]


def run_settings(cfg: IterateConfig, model_label: str, home: Path, db_url: str,
                 **limits: Any) -> Settings:
    """Settings every solve of the run uses (the label names the model in traces); `limits`
    override the preset's for one stage (self-solves vote with `solve_tool_votes`)."""
    return load_settings(backend="hf", model=model_label, prompt_profile=cfg.prompt_profile,
                         limits={**cfg.runtime_limits().model_dump(), **limits}, home=home,
                         database_url=db_url, device=cfg.device)


@contextlib.contextmanager
def open_runtime(cfg: IterateConfig, path: str, label: str, *, store: Any, tools: Any,
                 home: Path, db_url: str, **limits: Any) -> Iterator[Any]:
    """A runtime on the model at `path`, its traces naming the model `label`."""
    backend = HFBackend(path, device=cfg.device, home=home, max_batch_size=cfg.max_batch_size)
    backend.model_id = label
    rt = Runtime(run_settings(cfg, label, home, db_url, **limits), backend=backend, store=store,
                 tools=tools)
    try:
        yield rt
    finally:
        backend.close()


@dataclass(frozen=True)
class VersionRuntime:
    """Picklable factory of a runtime on the model at `path` (what a Ray worker calls): the
    run's settings and `limits`, traces naming the model `label`, the store at `db_url`.
    The path must be readable on every worker (a shared filesystem on a cluster)."""

    cfg: IterateConfig
    path: str
    label: str
    home: Path
    db_url: str
    limits: dict[str, Any] = field(default_factory=dict)

    def __call__(self) -> Runtime:
        backend = HFBackend(self.path, device=self.cfg.device, home=self.home,
                            max_batch_size=self.cfg.max_batch_size)
        backend.model_id = self.label
        return Runtime(run_settings(self.cfg, self.label, self.home, self.db_url, **self.limits),
                       backend=backend)


def stage_executor(cfg: IterateConfig, factory: VersionRuntime) -> Executor:
    """Where a stage's solves run: threads sharing the stage's runtime (`local`), or Ray tasks
    whose workers build their own with `factory` (`ray`)."""
    if cfg.executor == "local":
        return LocalExecutor(cfg.workers, thread_name_prefix="solve")
    return make_executor("ray", factory=factory, address=cfg.ray_address)


def _finished(store: Any, tags: dict[str, str]) -> bool:
    return any(t.status not in ("running", "interrupted", "cancelled", "error")
               for t in store.list_traces(limit=5, tags=tags))


def teacher_stage(cfg: IterateConfig, problems: list[Problem], *, store: Any, tools: Any,
                  home: Path, db_url: str, run_tags: dict[str, str],
                  progress: Progress) -> dict[str, Any]:
    """Gold (or teacher-model) traces of the problems, tagged with the run; resumable."""
    if cfg.teacher == "none":
        return {"stored": {}, "rejected": 0, "skipped": len(problems)}
    settings = run_settings(cfg, cfg.base_model, home, db_url)
    teacher_rt = None
    if cfg.teacher == "model":
        teacher_settings = settings.model_copy(update={
            "backend": cfg.teacher_backend, "model": cfg.teacher_model,
            "base_url": cfg.teacher_base_url})
        teacher_rt = Runtime(teacher_settings, store=store, tools=tools)
    stored: dict[str, int] = {}
    rejected = 0
    try:
        for i, problem in enumerate(problems):
            progress("teacher", i, len(problems))
            mine = {**run_tags, "problem_id": problem.id, "role": "teacher", "split": "train"}
            if _finished(store, mine):
                stored["resumed"] = stored.get("resumed", 0) + 1
                continue
            if teacher_rt is None:
                report = gold_traces([problem], store=store, settings=settings,
                                     mode=cfg.teacher_mode, easy_max=3, tools=tools)
            else:
                report = teacher_traces(teacher_rt, [problem], mode=cfg.teacher_mode, easy_max=3)
            for trace_id in report.trace_ids:
                store.tag(trace_id, **mine)
            for mode, count in report.stored.items():
                stored[mode] = stored.get(mode, 0) + count
            rejected += len(report.rejected)
        progress("teacher", len(problems), len(problems))
    finally:
        if teacher_rt is not None:
            teacher_rt.backend.close()
    return {"stored": stored, "rejected": rejected}


def _self_solve(rt: Any, job: tuple[Problem, dict[str, str], float], cancel: Any) -> str:
    """One sample of one problem (the executor's work function; module level, so it pickles):
    "resumed", "error", or "right"/"wrong" with "/slow" when it escalated."""
    problem, tags, temperature = job
    if _finished(rt.store, tags):
        return "resumed"
    try:
        sol = rt.solve(problem.text, mode="auto", tags=tags, temperature=temperature,
                       cancel=cancel)
    except AgentrtError:
        return "error"
    outcome = "right" if grade_text(sol.answer, problem) else "wrong"
    return f"{outcome}/slow" if sol.mode == "slow" else outcome


def _lost(error: BaseException) -> bool:
    """A solve that failed as solves do, or whose Ray worker was lost past its retries."""
    return isinstance(error, AgentrtError) or type(error).__module__.startswith("ray")


def self_solve_stage(cfg: IterateConfig, problems: list[Problem], rt: Any, *,
                     run_tags: dict[str, str], progress: Progress,
                     executor: Executor | None = None) -> dict[str, Any]:
    """The current model solves each problem `samples` times in auto mode; resumable.

    `executor` runs the solves (default: `cfg.workers` threads sharing `rt`); a Ray executor's
    workers build their own runtimes on the same model and store."""
    jobs = [(p, {**problem_tags(p), **run_tags, "role": "self", "split": "train",
                 "sample": str(k)}, cfg.temperature)
            for p in problems for k in range(cfg.samples)]
    done = {"n": 0, "correct": 0, "slow": 0, "errors": 0, "resumed": 0}
    executor = executor or LocalExecutor(cfg.workers, thread_name_prefix="self-solve")
    with executor.map(_self_solve, jobs, context=rt) as batch:
        for finished in batch:
            if finished.error is not None and not _lost(finished.error):
                raise finished.error  # a bug, not a failed solve
            outcome = finished.result if finished.error is None else "error"
            done["n"] += 1
            done["resumed"] += outcome == "resumed"
            done["errors"] += outcome == "error"
            done["correct"] += outcome.startswith("right")
            done["slow"] += outcome.endswith("/slow")
            progress("solve", done["n"], len(jobs))
    return {**done, "jobs": len(jobs)}


def _summary(run: Any) -> dict[str, Any]:
    m = compute_metrics(run.results)
    out = {"accuracy": m.overall.accuracy, "correct": m.overall.correct, "n": m.overall.n,
           "ci": [m.overall.ci_low, m.overall.ci_high], "errors": m.overall.errors,
           "slow_fraction": m.overall.slow_fraction,
           "tokens_per_problem": m.overall.tokens_per_problem,
           "wall_s": run.manifest.wall_s, "run_id": run.manifest.run_id,
           "per_family": {k: {"accuracy": g.accuracy, "correct": g.correct, "n": g.n}
                          for k, g in m.by_task.items()}}
    if m.router is not None:
        out["router"] = {"escalated": m.router.escalated, "precision": m.router.precision,
                         "recall": m.router.recall}
    return out


def evaluate(cfg: IterateConfig, rt: Any, *, heldout: Path, out: Path,
             run_tags: dict[str, str], progress: Progress,
             executor: Executor | None = None) -> dict[str, Any]:
    """Held-out accuracy per mode (and GSM8K per its modes) of the runtime's model; the
    evaluation harness runs the solves on `executor` (default: `cfg.workers` threads each)."""
    results: dict[str, Any] = {"heldout": {}, "gsm8k": {}}
    benches = [("heldout", f"jsonl:{heldout}", m, None) for m in cfg.eval_modes]
    if cfg.gsm8k:
        benches += [("gsm8k", "gsm8k", m, cfg.gsm8k) for m in cfg.gsm8k_modes]
    bar = f"eval {rt.backend.model_id}"
    done = 0
    progress(bar, done, len(benches))

    def one(job: tuple[str, str, str, int | None]) -> tuple[str, str, Any]:
        name, bench, mode, limit = job
        spec = EvalSpec(bench=bench, mode=mode, workers=cfg.workers, limit=limit)
        try:
            return name, mode, run_eval(rt, spec, out=out, executor=executor)
        except ConfigError as e:
            if name != "gsm8k":
                raise
            return name, mode, str(e)  # no benchmark data on this machine

    # All benches at once: their solves share the backend's batches, so no bench's slow tail
    # runs at a batch of one while the others wait.
    with ThreadPoolExecutor(max_workers=len(benches)) as pool:
        for name, mode, run in pool.map(one, benches):
            done += 1
            progress(bar, done, len(benches))
            if isinstance(run, str):
                results[name][mode] = {"skipped": run}
                continue
            results[name][mode] = _summary(run)
            for r in run.results:
                if r.trace_id:
                    rt.store.tag(r.trace_id, **run_tags, role="eval", split="eval")
    progress(bar, len(benches), len(benches))
    return results
