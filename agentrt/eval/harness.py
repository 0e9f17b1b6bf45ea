"""The evaluation harness: solve every problem of a benchmark, grade it, and keep it all.

    run = run_eval(runtime, EvalSpec(bench="gsm8k", limit=50, mode="auto", workers=2))

Problems run concurrently on an executor (`agentrt.execute`): by default a thread pool of
`workers` (the hf backend batches concurrent calls), or Ray tasks on a cluster whose workers each
build their own runtime and write their traces to the shared store.
Each solve is a trace tagged with the run (`eval_run`, `eval_bench`, `eval_problem`), and after
grading with `eval_correct` and `fast_correct` / `slow_correct`, the labels the learned router
trains on (an escalated `auto` trace has its fast attempt graded too). Results are appended to
the run directory as they finish. A malformed row is reported and skipped; a problem whose solve
fails is recorded with its error and counted wrong; the run goes on. Ctrl-C cancels running
solves, keeps what finished, and marks the run interrupted; `resume_eval` finishes an
interrupted or crashed run in its own directory (unfinished slow solves continue from their
checkpoints). A trace left "running" by a worker that died (its problem was solved again) is
marked cancelled at the end of the run; a worker that died after storing its solve but before
returning it leaves a finished trace, which the retried item takes instead of solving again
(one trace per problem).

This module wires runtime, loaders and graders together; the metrics, reports and the on-disk
format live in `metrics.py`, `report.py` and `runs.py`.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentrt.core.errors import ConfigError
from agentrt.core.types import Problem, Solution
from agentrt.eval.benchmarks import BenchmarkLoad, load_benchmark
from agentrt.eval.extract import extract_answer
from agentrt.eval.graders import grade
from agentrt.eval.runs import (
    EvalRun,
    EvalSpec,
    ProblemResult,
    RunManifest,
    append_result,
    load_run,
    new_run_id,
    runs_root,
    utc_now,
    write_manifest,
)
from agentrt.execute import Batch, Executor, Finished, LocalExecutor

__all__ = ["run_eval", "resume_eval", "grade_answer", "EvalSpec", "ProblemResult"]


def grade_answer(answer: str, problem: Problem) -> tuple[str, bool, str]:
    """Extract the final answer the grader expects from `answer`, then grade it.

    Returns:
        (extracted answer, correct, reason).
    """
    extracted = extract_answer(answer, problem.grader) or answer.strip()
    try:
        g = grade(extracted, problem)
    except Exception as e:  # a grader bug must not stop the run; the reason records it
        return extracted, False, f"grader failed: {type(e).__name__}: {e}"
    return extracted, g.correct, g.reason


def team_inputs(problem: Problem) -> tuple[str, dict[str, Any]]:
    """(shared text, team options) of a problem solved in team mode: with agents of its own,
    each agent gets its facts and the shared task is the question alone."""
    if not problem.meta.get("agents"):
        return problem.text, {}
    return str(problem.meta.get("question") or problem.text), {"agents": problem.meta["agents"]}


def _fast_attempt(store: Any, trace_id: str) -> str | None:
    """The fast answer an auto solve reviewed (None when it went slow without one)."""
    for step in store.get_trace(trace_id).steps:
        if step.kind == "decision" and step.name == "review":
            return str(step.inputs.get("answer", ""))
    return None


def _stored_solve(rt: Any, tags: dict[str, str], cancel: threading.Event) -> Solution | None:
    """This run's problem as an earlier attempt left it, looked up once by its tags (None: solve
    it now). A finished solve (its worker died after storing it, before its result came back)
    is taken as it is, so a problem keeps one trace. A solve left unfinished by a process that
    is gone (a crashed driver or worker) continues from its checkpoint; one that cannot (a fast
    solve keeps no checkpoint) is marked cancelled, and the problem is solved anew."""
    traces = rt.store.list_traces(limit=10, tags=tags)
    for trace in traces:
        finished = trace.status == "ok" or trace.status.startswith("budget_exceeded")
        if finished and trace.answer is not None and trace.mode in ("fast", "slow"):
            return Solution(
                answer=trace.answer, mode=trace.mode, requested_mode=trace.requested_mode,
                trace_id=trace.id, usage=trace.usage, latency_s=max(trace.latency_s, 0.0),
                verdict=trace.verdict or "unknown", status=trace.status,
                route_reason=str(trace.meta.get("route_reason", "")),
                llm_calls=trace.llm_calls, tool_runs=trace.tool_runs)
    for trace in traces:
        if trace.status != "interrupted":  # also how a running trace whose owner is gone reads
            continue
        slow = trace.requested_mode in ("slow", "team") or \
            rt.checkpointer.count(trace.id)["checkpoints"] > 0
        if slow and trace.model_id == rt.backend.model_id:
            try:
                return rt.resume(trace.id, cancel=cancel)
            except ConfigError:  # another process took it over first
                return None
        if trace.orphaned and rt.store.claim_trace(trace):
            rt.cancel_trace(trace.id, "its process was lost; the problem was solved again")
    return None


def _solve_one(rt: Any, spec: EvalSpec, run_id: str, index: int, problem: Problem,
               cancel: threading.Event) -> ProblemResult:
    base = dict(index=index, problem_id=problem.id, family=problem.family, grader=problem.grader,
                reference=problem.answer, requested_mode=spec.mode)
    tags = {"eval_run": run_id, "eval_bench": spec.bench[:200], "eval_problem": problem.id[:200]}
    started = time.perf_counter()
    try:
        text, team = team_inputs(problem) if spec.mode == "team" else (problem.text, {})
        sol = _stored_solve(rt, tags, cancel) or rt.solve(text, mode=spec.mode, tags=tags,
                                                          cancel=cancel, **team)
    except Exception as e:  # reported per problem; the run goes on
        found = rt.store.list_traces(limit=1, tags=tags)
        return ProblemResult(**base, status="error", error=f"{type(e).__name__}: {e}",
                             trace_id=found[0].id if found else None,
                             latency_s=time.perf_counter() - started)
    extracted, correct, reason = grade_answer(sol.answer, problem)
    result = ProblemResult(
        **base, answer=sol.answer, extracted=extracted, correct=correct, grade_reason=reason,
        trace_id=sol.trace_id, status=sol.status, mode=sol.mode, verdict=sol.verdict,
        route_reason=sol.route_reason, prompt_tokens=sol.usage.prompt_tokens,
        completion_tokens=sol.usage.completion_tokens, llm_calls=sol.llm_calls,
        tool_runs=sol.tool_runs, latency_s=sol.latency_s,
    )
    mark = "1" if correct else "0"
    labels = {"eval_correct": mark, f"{sol.mode}_correct": mark}
    if sol.mode == "fast":
        result.fast_answer, result.fast_correct = sol.answer, correct
    elif spec.mode == "auto":
        fast = _fast_attempt(rt.store, sol.trace_id)
        if fast is not None:
            _, fast_ok, _ = grade_answer(fast, problem)
            result.fast_answer, result.fast_correct = fast, fast_ok
            labels["fast_correct"] = "1" if fast_ok else "0"
    rt.store.tag(sol.trace_id, **labels)
    return result


def _solve_item(spec: EvalSpec, run_id: str, rt: Any, item: tuple[int, Problem],
                cancel: threading.Event) -> ProblemResult:
    """The executor's work function (module level, so it pickles for Ray workers)."""
    return _solve_one(rt, spec, run_id, item[0], item[1], cancel)


def _outcome(done: Finished, index: int, problem: Problem, spec: EvalSpec) -> ProblemResult:
    """The item's result, or an error result when grading or tagging itself failed."""
    e = done.error
    if e is None:
        return done.result
    return ProblemResult(index=index, problem_id=problem.id, family=problem.family,
                         grader=problem.grader, reference=problem.answer,
                         requested_mode=spec.mode, status="error",
                         error=f"{type(e).__name__}: {e}")


def _mark_lost(rt: Any, run_id: str, results: list[ProblemResult]) -> None:
    """Traces of this run still "running" whose problem has another trace: a worker died."""
    kept = {r.trace_id for r in results}
    for trace in rt.store.list_traces(limit=10_000, status="running", tags={"eval_run": run_id}):
        if trace.id not in kept:
            rt.cancel_trace(trace.id, "its worker was lost; the problem was solved again")


def _prepare(rt: Any, spec: EvalSpec,
             out: Path | str | None) -> tuple[BenchmarkLoad, Path, RunManifest]:
    load = load_benchmark(spec.bench, spec.data, spec.limit, grader=spec.grader)
    if not load.problems:
        raise ConfigError(f"benchmark {spec.bench!r} has no readable problems at {load.path}"
                          + (f" ({len(load.errors)} malformed rows)" if load.errors else ""))
    run_id = new_run_id(spec)
    run_dir = runs_root(rt.settings.home, out) / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    manifest = RunManifest(
        run_id=run_id, spec=spec, created_at=utc_now(), backend=rt.backend.name,
        model_id=rt.backend.model_id, device=str(getattr(rt.backend, "device", "") or ""),
        router=rt.settings.router if spec.mode == "auto" else None,
        profile=rt.profile, limits=rt.settings.limits.model_dump(), data_path=load.path,
        problems=len(load.problems), row_errors=load.errors,
    )
    write_manifest(run_dir, manifest)
    return load, run_dir, manifest


def run_eval(runtime: Any, spec: EvalSpec, *, out: Path | str | None = None,
             on_result: Callable[[ProblemResult], None] | None = None,
             on_start: Callable[[RunManifest], None] | None = None,
             executor: Executor | None = None) -> EvalRun:
    """Run a benchmark through `runtime.solve`, grade every answer, and persist the run.

    Args:
        runtime: an `agentrt.runtime.Runtime` (its settings' router is used for `auto`); with
            a Ray executor it writes the manifest and reads the store, and the workers build
            their own runtimes with the executor's factory (same settings, same store).
        spec: benchmark, data folder, limit, mode, workers.
        out: folder for run directories (default `<home>/eval_runs`).
        on_result: called with each result as it finishes (progress display).
        on_start: called once with the manifest (problem count, row errors) before solving.
        executor: where the solves run (default: `LocalExecutor(spec.workers)`, threads here).

    Returns:
        The finished (or interrupted) run, with results in problem order.

    Raises:
        ConfigError: unknown benchmark, missing data path, or no readable problem at all.

    Example:
        >>> run = run_eval(Runtime(), EvalSpec(bench="gsm8k", limit=5))  # doctest: +SKIP
        >>> sum(r.correct for r in run.results)  # doctest: +SKIP
    """
    load, run_dir, manifest = _prepare(runtime, spec, out)
    if on_start is not None:
        on_start(manifest)
    executor = executor or LocalExecutor(spec.workers, thread_name_prefix="eval")
    return _execute(runtime, spec, load, run_dir, manifest, [], executor, on_result)


def resume_eval(runtime: Any, run: Path | str, *, workers: int | None = None,
                on_result: Callable[[ProblemResult], None] | None = None,
                on_start: Callable[[RunManifest], None] | None = None,
                executor: Executor | None = None) -> EvalRun:
    """Finish a run that was interrupted or whose driver died: solve the problems it has no
    result for, in the same run directory, with the run's own benchmark, limit and mode.

    A problem whose slow solve was left unfinished by the dead process continues from its
    checkpoint; a solve that finished after its result was lost is taken as it is; the rest
    are solved anew. A finished run is returned as it is.

    Args:
        runtime: as for `run_eval`; its model and limits must be the run's.
        run: the run directory.
        workers: concurrent solves (default: the run's).
        on_result, on_start, executor: as for `run_eval` (`on_result` sees only new results).

    Raises:
        NotFoundError: no run there. ConfigError: another model or other limits than the
            run's, or the benchmark no longer has the run's problems.
    """
    run_dir = Path(run)
    earlier = load_run(run_dir)
    manifest = earlier.manifest
    if manifest.status == "done":
        return earlier
    if manifest.model_id != runtime.backend.model_id:
        raise ConfigError(f"run {manifest.run_id} was made with {manifest.model_id!r}; resume "
                          f"it with that model, not {runtime.backend.model_id!r}")
    limits = runtime.settings.limits.model_dump()
    changed = sorted(k for k in set(limits) | set(manifest.limits)
                     if limits.get(k) != manifest.limits.get(k))
    if manifest.router is not None and runtime.settings.router != manifest.router:
        changed.append("router")
    if changed:
        raise ConfigError(f"run {manifest.run_id} was made with other settings "
                          f"({', '.join(changed)}); resume it with the run's settings")
    spec = manifest.spec.model_copy(update={"workers": workers or manifest.spec.workers})
    load = load_benchmark(spec.bench, spec.data, spec.limit, grader=spec.grader)
    if len(load.problems) != manifest.problems or any(
            r.index >= len(load.problems) or load.problems[r.index].id != r.problem_id
            for r in earlier.results):
        raise ConfigError(f"benchmark {spec.bench!r} no longer holds run {manifest.run_id}'s "
                          "problems; start a new run")
    _rewrite_results(run_dir, earlier.results)  # drops a line torn by the crash
    manifest.status, manifest.note = "running", ""
    manifest.resumes += 1
    manifest.done = len(earlier.results)
    manifest.errors = sum(bool(r.error) for r in earlier.results)
    write_manifest(run_dir, manifest)
    if on_start is not None:
        on_start(manifest)
    executor = executor or LocalExecutor(spec.workers, thread_name_prefix="eval")
    return _execute(runtime, spec, load, run_dir, manifest, earlier.results, executor, on_result)


def _rewrite_results(run_dir: Path, results: list[ProblemResult]) -> None:
    tmp = run_dir / ".results.jsonl.tmp"
    tmp.write_text("".join(r.model_dump_json() + "\n" for r in results), encoding="utf-8")
    tmp.replace(run_dir / "results.jsonl")


def _execute(runtime: Any, spec: EvalSpec, load: BenchmarkLoad, run_dir: Path,
             manifest: RunManifest, earlier: list[ProblemResult], executor: Executor,
             on_result: Callable[[ProblemResult], None] | None) -> EvalRun:
    """Solve the problems without a result in `earlier`; append, and keep the manifest."""
    results = list(earlier)
    started, before_s = time.perf_counter(), manifest.wall_s or 0.0
    have = {r.index for r in earlier}

    def finished(result: ProblemResult, notify: bool = True) -> None:
        append_result(run_dir, result)
        results.append(result)
        manifest.done += 1
        manifest.errors += 1 if result.error else 0
        if notify and on_result is not None:
            on_result(result)

    work = functools.partial(_solve_item, spec, manifest.run_id)
    todo = [(i, p) for i, p in enumerate(load.problems) if i not in have]
    batch: Batch | None = None
    try:  # Ctrl-C while the executor connects or starts the batch interrupts the run too
        batch = executor.map(work, todo, context=runtime)
        for done in batch:
            index = todo[done.index][0]
            finished(_outcome(done, index, load.problems[index], spec))
        manifest.status = "done"
    except KeyboardInterrupt:
        # Marked first: a second Ctrl-C while running solves stop escapes from here.
        manifest.status = "interrupted"
        manifest.note = "interrupted: unfinished problems were cancelled"
        if batch is None:  # before any solve started: nothing to keep
            raise
        for done in batch.interrupt():  # keep what finished; drop solves the interruption cancelled
            index = todo[done.index][0]
            r = _outcome(done, index, load.problems[index], spec)
            if not (r.error or "").startswith("CancelledError"):
                finished(r, notify=False)
    except BaseException:
        manifest.status = "failed"
        raise
    finally:
        if batch is not None:
            batch.close()
        _mark_lost(runtime, manifest.run_id, results)
        manifest.finished_at = utc_now()
        manifest.wall_s = before_s + time.perf_counter() - started
        write_manifest(run_dir, manifest)
    return load_run(run_dir)
