"""The runtime: `solve()` picks a mode, runs its path, and records the whole run as a trace.

`Runtime` owns one backend and one trace store (both created lazily from `Settings` unless
passed in) and is safe to share between threads. Fast and slow thinking live in `workflows/`
(`run_fast`, `run_slow`), routing between them in `agentrt.router` (`run_auto`); each returns an
`Outcome`. This module only opens the trace, picks the mode, and turns the outcome (or, when a
budget ran out, the error's partial outcome) into a finished trace and a `Solution`.

A solve that fails keeps its trace honest: an agentrt error ends it as "error" (or "cancelled"),
any other exception as "error" with the exception's type and message, and only an interruption
(Ctrl-C, SIGTERM, SystemExit, task cancellation) as "interrupted", the status resumers look
for. That last write waits for the store at most `CLEANUP_WAIT_S` seconds, and when it fails
the solve's own error is raised all the same (the failure to record it is logged).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from agentrt.core.config import Settings, load_settings
from agentrt.core.errors import (AgentrtError, ConfigError, InvalidInputError,
                                 LimitExceededError, StoreError)
from agentrt.core.metrics import observe_solve
from agentrt.core.types import Outcome, Solution, Usage
from agentrt.llm.base import ChatBackend, load_backend
from agentrt.router import policy_for_settings, run_auto
from agentrt.store import StepRecord, TraceStore
from agentrt.store.jsonsafe import clean_text
from agentrt.store.lease import Owner
from agentrt.store.records import utcnow
from agentrt.telemetry import open_export
from agentrt.workflows.checkpoint import SqlCheckpointer
from agentrt.workflows.context import SolveContext
from agentrt.workflows.options import check_options
from agentrt.workflows.fast import run_fast
from agentrt.workflows.profiles import resolve_profile
from agentrt.workflows.recorder import Recorder
from agentrt.workflows.slow.graph import resume_slow, run_slow, superseded_steps
from agentrt.workflows.slow.toolbox import ToolBox
from agentrt.workflows.team import resume_team, run_team, team_spec_from

__all__ = ["Runtime", "solve", "MODES", "CLEANUP_WAIT_S"]

MODES = ("fast", "slow", "auto", "team")
#: How long recording a failed solve's status may wait for the trace store, in seconds.
CLEANUP_WAIT_S = 15.0

log = logging.getLogger(__name__)


class Runtime:
    """A backend, a store and settings: everything needed to solve problems.

    Args:
        settings: defaults to `load_settings()` (environment and config file).
        backend: a ready backend; built from settings on first use when omitted.
        store: a ready trace store; opened from settings on first use when omitted.
        tools: name -> tool for slow thinking; the registry's tools, built on first use, when
            omitted.

    Example:
        >>> from agentrt.llm.fake import FakeBackend
        >>> rt = Runtime(backend=FakeBackend(default="Final answer: 4"))  # doctest: +SKIP
        >>> rt.solve("What is 2+2?", mode="fast").answer  # doctest: +SKIP
        '4'
    """

    def __init__(self, settings: Settings | None = None, *, backend: ChatBackend | None = None,
                 store: TraceStore | None = None, tools: Mapping[str, Any] | None = None):
        if settings is not None and not isinstance(settings, Settings):
            raise ConfigError(f"settings must be a Settings (see load_settings), not "
                              f"{type(settings).__name__}")
        self.settings = settings or load_settings()
        self._backend = backend
        self._store = store
        self._tools: Any = tools
        self._checkpointer: Any = None
        self._lock = threading.Lock()
        self._telemetry = open_export(self.settings)  # None unless OpenTelemetry export is on

    @property
    def backend(self) -> ChatBackend:
        with self._lock:
            if self._backend is None:
                s = self.settings
                self._backend = load_backend(
                    s.backend, s.model, base_url=s.base_url, api_key=s.api_key,
                    device=s.device, dtype=s.dtype, home=s.home, database_url=s.db_url,
                    replica_policy=s.replica_policy, lean_decode=s.lean_decode,
                )
            return self._backend

    @property
    def store(self) -> TraceStore:
        with self._lock:
            if self._store is None:
                self._store = TraceStore.from_settings(self.settings)
            return self._store

    @property
    def tools(self) -> Any:
        """The tools slow thinking may use (a `ToolBox`: each built on first use)."""
        with self._lock:
            if self._tools is None:
                self._tools = ToolBox(strict=self.settings.sandbox_strict)
            return self._tools

    @property
    def checkpointer(self) -> Any:
        """The LangGraph checkpointer in the trace store's database (slow solves resume from it)."""
        store = self.store
        with self._lock:
            if self._checkpointer is None:  # writes only to threads of traces it runs
                self._checkpointer = SqlCheckpointer(store.engine, fence=store.fence)
            return self._checkpointer

    @property
    def profile(self) -> str:
        return resolve_profile(self.backend.model_id, self.settings.prompt_profile)

    def _validate(self, problem: str, mode: str) -> str:
        """The problem as the model will see it and the trace will keep it (NUL characters and
        lone surrogates, which no tokenizer or database takes, become U+FFFD), or an error."""
        if not isinstance(problem, str):
            raise InvalidInputError(f"problem must be a string, not {type(problem).__name__}")
        if not problem.replace("\x00", "").strip():
            raise InvalidInputError("problem is empty")
        if len(problem) > self.settings.limits.max_problem_chars:
            raise InvalidInputError(
                f"problem is {len(problem)} characters; the limit is "
                f"{self.settings.limits.max_problem_chars}"
            )
        if not isinstance(mode, str) or mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
        return clean_text(problem.strip())

    def solve(self, problem: str, mode: str = "auto", *, context: str | None = None,
              tags: dict[str, str] | None = None,
              on_step: Callable[[StepRecord], None] | None = None,
              cancel: threading.Event | None = None,
              **options: Any) -> Solution:
        """Solve one problem and store the run as a trace.

        Args:
            problem: the problem text.
            mode: "fast", "slow", "auto", or "team" (a conversation of agents, shaped by the
                options `agents=[{"role": ..., "private": ...}, ...]`, `rounds`, `pattern`
                and `message_tokens`; see `agentrt.workflows.team`).
            context: earlier conversation to show the model before the problem.
            tags: key/value tags stored with the trace (e.g. an evaluation run id).
            on_step: called with each trace step as it is recorded (progress streaming).
            cancel: an event that, once set, stops the solve before its next LLM or tool call
                (the trace is kept with status "cancelled").
            **options: workflow options: `temperature`, `seed` (`agentrt.workflows.options`).

        Returns:
            The solution, with the trace id, usage and latency.

        Raises:
            InvalidInputError: empty, oversized or non-string problem, an unknown or invalid
                option, context, tag, callback or cancel event, or an invalid team.
            ConfigError: unknown mode or router policy (refused before any trace is started).
            BackendError: the backend failed (the trace is kept with status "error").
            Exception: any other failure is raised as it is, after the trace is kept with
                status "error" and the exception's type and message.
        """
        problem = self._validate(problem, mode)
        options = check_options(mode, options)
        context = _checked_call(context, on_step, cancel)
        if mode == "team":  # a bad team is the caller's error, refused before any trace
            if options.get("pattern") is None:
                options["pattern"] = self.settings.team_pattern
            team_spec_from(options, self.settings.limits)
        if mode == "auto":  # so is a router setting that names no policy
            policy_for_settings(self.settings)

        backend, store = self.backend, self.store
        started = time.perf_counter()
        try:
            trace_id = store.start_trace(
                problem=problem, requested_mode=mode, model_id=backend.model_id,
                backend=backend.name, tags=tags,
                meta={"profile": self.profile, "options": options},
            )
        except ValueError as e:  # a tag that is not a short string (nothing was stored)
            raise InvalidInputError(str(e)) from None
        recorder = Recorder(store, trace_id, self.settings.limits, on_step=on_step, cancel=cancel)
        ctx = SolveContext(backend=backend, recorder=recorder, profile=self.profile,
                           limits=self.settings.limits, tools=self.tools, extra=dict(options))
        return self._run_recorded(trace_id, mode, recorder, started,
                                  lambda: self._run_mode(mode, problem, context, ctx))

    @observe_solve  # agentrt_solves_total{mode,status}, agentrt_solve_duration_seconds
    def _run_recorded(self, trace_id: str, mode: str, recorder, started: float,
                      run: Callable[[], Outcome], *, prior_s: float = 0.0,
                      meta: dict[str, Any] | None = None) -> Solution:
        """Run a solve's graph and finish its trace: outcome, budgets, errors, interruptions."""
        store = self.store

        def spent() -> float:
            return prior_s + time.perf_counter() - started

        result: Outcome | None = None
        status = "ok"
        try:
            result = run()
        except LimitExceededError as e:
            status = f"budget_exceeded:{e.limit}"
            result = e.partial
        except AgentrtError as e:
            self._finish_failed(trace_id, e, "cancelled" if e.code == "cancelled" else "error",
                                f"{e.code}: {e}", recorder, spent())
            raise
        except Exception as e:  # not ours (a bug, CUDA out of memory): a failure, not a pause
            self._finish_failed(trace_id, e, "error", f"{type(e).__name__}: {e}", recorder,
                                spent())
            raise
        except BaseException as e:  # interrupted (Ctrl-C, SIGTERM, cancellation): resumable
            self._finish_failed(trace_id, e, "interrupted", type(e).__name__, recorder, spent())
            raise
        if result is None:  # a budget ran out before any path had an outcome
            result = Outcome(mode={"auto": "fast", "team": "slow"}.get(mode, mode))
        latency = spent()
        answer = result.answer or ""
        store.finish_trace(
            trace_id, answer=answer, status=status, mode=result.mode, verdict=result.verdict,
            usage=recorder.usage, latency_s=latency, llm_calls=recorder.llm_calls,
            tool_runs=recorder.tool_runs,
            meta={"route_reason": result.route_reason, **(meta or {})},
        )
        self._export(trace_id)
        return Solution(
            answer=answer, mode=result.mode, requested_mode=mode, trace_id=trace_id,
            usage=recorder.usage, latency_s=latency, verdict=result.verdict or "unknown",
            status=status, route_reason=result.route_reason,
            llm_calls=recorder.llm_calls, tool_runs=recorder.tool_runs,
        )

    def _finish_failed(self, trace_id: str, error: BaseException, status: str, text: str,
                       recorder: Recorder, latency_s: float) -> None:
        """Keep the trace of a solve that raised `error` with `status`, without hiding `error`.

        The write waits at most `CLEANUP_WAIT_S`; when it fails or times out, that is logged and
        noted on `error` (which the caller re-raises) instead of being raised in its place.
        """
        store = self.store

        def write() -> None:
            store.finish_trace(trace_id, answer=None, status=status, mode=None,
                               usage=recorder.usage, latency_s=latency_s,
                               llm_calls=recorder.llm_calls, tool_runs=recorder.tool_runs,
                               error=text)

        problem = _bounded(write, CLEANUP_WAIT_S)
        if problem is None:
            if not isinstance(error, AgentrtError):  # says where its type and message went
                error.add_note(f"trace {trace_id} was kept with status {status!r}")
            self._export(trace_id)
            return
        log.warning("trace %s could not be marked %r after %s: %s", trace_id, status,
                    type(error).__name__, problem)
        error.add_note(f"trace {trace_id} could not be marked {status!r}: {problem}")

    def _run_mode(self, mode: str, problem: str, context: str | None,
                  ctx: SolveContext) -> Outcome:
        """Run the requested mode's path: fast or slow thinking, or the router's choice."""
        if mode == "fast":
            return run_fast(problem, context, ctx)
        if mode == "slow":
            return run_slow(problem, context, ctx, checkpointer=self.checkpointer)
        if mode == "auto":
            return run_auto(policy_for_settings(self.settings), problem, context, ctx,
                            checkpointer=self.checkpointer)
        if mode == "team":
            return run_team(problem, context, ctx, checkpointer=self.checkpointer)
        raise ConfigError(f"mode {mode!r} is not available yet; use mode='fast'")

    def resume(self, trace_id: str, *, on_step: Callable[[StepRecord], None] | None = None,
               cancel: threading.Event | None = None) -> Solution:
        """Continue an interrupted slow solve from its checkpoint (thread id = trace id).

        The trace must be one nobody runs: stopped ("interrupted", "cancelled", "error") or
        stored as running by a process that is gone (its lease ran out, or it died on this
        host). This process takes it over with a compare-and-set on its owner, so of two
        resumers only one runs it. Stages and workflow nodes whose results were checkpointed
        are not run again; the steps of tasks that run again are marked superseded, and
        budgets count what the interrupted run spent on the rest.

        Args:
            trace_id: the trace id or a unique prefix (6+ characters).
            on_step: called with each new trace step.
            cancel: an event that stops the resumed solve before its next call.

        Returns:
            The solution; the trace is finished as if the solve had never stopped.

        Raises:
            NotFoundError: no such trace.
            ConfigError: the trace already has an outcome, is still running, has no slow solve
                to resume, was made by another model, or another process took it over first.
            StoreError: its checkpoint cannot be read (the trace is then kept as "error", so
                that nothing resumes it again by itself).
        """
        store, backend = self.store, self.backend
        trace = store.get_trace(trace_id, superseded=True)
        _check_resumable(trace)
        checkpointer = self.checkpointer
        if trace.requested_mode != "slow" and not checkpointer.count(trace.id)["checkpoints"]:
            raise ConfigError(f"trace {trace.id} has no slow-thinking checkpoint to resume")
        if trace.model_id != backend.model_id:
            raise ConfigError(f"trace {trace.id} was solved by {trace.model_id!r}; resume it "
                              f"with that model, not {backend.model_id!r}")
        if not store.claim_trace(trace):
            raise ConfigError(f"trace {trace.id} was taken over by another process")
        # Ours now, so its steps are final: a stalled owner may have added some before the claim.
        steps = store.get_trace(trace.id, superseded=True).steps
        stale = set(superseded_steps(steps, checkpointer, trace.id))
        store.supersede_steps(trace.id, sorted(stale))
        recorder = Recorder(store, trace.id, self.settings.limits, on_step=on_step, cancel=cancel)
        prior_s = _spent_before(trace)
        _restore_budgets(recorder, [s for s in steps if not s.superseded and s.id not in stale])
        recorder.started -= prior_s  # the wall-time budget covers both runs
        ctx = SolveContext(backend=backend, recorder=recorder,
                           profile=trace.meta.get("profile") or self.profile,
                           limits=self.settings.limits, tools=self.tools,
                           extra=dict(trace.meta.get("options") or {}))
        resumer = resume_team if trace.requested_mode == "team" else resume_slow
        return self._run_recorded(
            trace.id, trace.requested_mode, recorder, time.perf_counter(),
            lambda: resumer(ctx, checkpointer, trace.id, problem=trace.problem),
            prior_s=prior_s, meta={"resumes": int(trace.meta.get("resumes", 0)) + 1},
        )

    def cancel_trace(self, trace_id: str, reason: str) -> bool:
        """Finish a running trace as "cancelled", with totals from its steps.

        For a solve whose thread cannot be stopped in time (a server shutting down while a call
        that cannot be interrupted runs), or one whose worker was lost; a trace with an outcome
        is left as it is. A trace another process owns is taken over first (`claim_trace`), so
        it is left as it is when that process refreshed its lease or finished it meanwhile.

        Returns:
            True when the trace was marked.
        """
        store = self.store
        trace = store.get_trace(trace_id)
        if trace.status != "running":
            return False
        if trace.owner != Owner.current().key and not store.claim_trace(trace):
            return False
        usage, llm_calls, tool_runs = _totals(trace.steps)
        spent = (utcnow() - trace.created_at).total_seconds()
        try:
            store.finish_trace(trace.id, answer=None, status="cancelled", mode=None, usage=usage,
                               latency_s=max(spent, 0.0), llm_calls=llm_calls,
                               tool_runs=tool_runs, error=f"cancelled: {reason}")
        except StoreError:
            if store.get_trace(trace.id).status != "running":  # its solve finished it meanwhile
                return False
            raise
        self._export(trace.id)
        return True

    def _export(self, trace_id: str) -> None:
        """Queue the finished trace for OpenTelemetry export when it is on (never raises)."""
        if self._telemetry is not None:
            self._telemetry.export(self.store, trace_id)

    def close(self) -> None:
        if self._telemetry is not None:
            self._telemetry.close()  # sends the spans still queued
        close_tools = getattr(self._tools, "close", None)
        if callable(close_tools):
            close_tools()
        if self._backend is not None:
            self._backend.close()
        if self._store is not None:
            self._store.close()


def _checked_call(context: Any, on_step: Any, cancel: Any) -> str | None:
    """The context as the model will see it, once the callback and cancel event are usable."""
    if context is not None and not isinstance(context, str):
        raise InvalidInputError(f"context must be a string, not {type(context).__name__}")
    if on_step is not None and not callable(on_step):
        raise InvalidInputError(f"on_step must be callable, not {type(on_step).__name__}")
    if cancel is not None and not callable(getattr(cancel, "is_set", None)):
        raise InvalidInputError(f"cancel must be a threading.Event, not {type(cancel).__name__}")
    return None if context is None else clean_text(context)


_RESUMABLE = ("interrupted", "cancelled", "error")


def _check_resumable(trace: Any) -> None:
    """Refuse a trace that has an outcome or that a live process still runs."""
    if trace.status == "running":
        beat = trace.heartbeat_at.strftime("%Y-%m-%d %H:%M:%S UTC") if trace.heartbeat_at else "-"
        raise ConfigError(f"trace {trace.id} is still running (owner {trace.owner}, last "
                          f"heartbeat {beat}); resume it once that process has stopped")
    if trace.status not in _RESUMABLE:
        raise ConfigError(f"trace {trace.id} already finished with status {trace.status!r}; "
                          f"only {', '.join(_RESUMABLE)} solves can be resumed")


def _bounded(write: Callable[[], None], timeout_s: float) -> str | None:
    """Run `write` on a daemon thread and wait for it at most `timeout_s` seconds.

    Returns:
        None when it succeeded, else what went wrong (after a timeout it may still succeed).
    """
    failed: list[BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            write()
        except BaseException as e:  # reported to the waiting thread
            failed.append(e)
        finally:
            done.set()

    threading.Thread(target=run, name="agentrt-finish-trace", daemon=True).start()
    if not done.wait(timeout_s):
        return f"the trace store did not answer within {timeout_s:g} s"
    if not failed:
        return None
    e = failed[0]
    return str(e) if isinstance(e, AgentrtError) else f"{type(e).__name__}: {e}"


def _totals(steps: list[StepRecord]) -> tuple[Usage, int, int]:
    """Usage, LLM calls and tool runs of the given steps."""
    llm = [s for s in steps if s.kind == "llm"]
    usage = Usage(prompt_tokens=sum(s.prompt_tokens for s in llm),
                  completion_tokens=sum(s.completion_tokens for s in llm))
    return usage, len(llm), sum(1 for s in steps if s.kind == "tool")


def _restore_budgets(recorder: Any, steps: list[StepRecord]) -> None:
    """Give a resumed solve's recorder what the earlier run spent on the steps that still count."""
    recorder.usage, recorder.llm_calls, recorder.tool_runs = _totals(steps)


def _spent_before(trace: Any) -> float:
    """Wall time of the interrupted run: recorded on interruption, else up to its last step."""
    if trace.latency_s > 0:
        return float(trace.latency_s)
    if not trace.steps:
        return 0.0
    # A step's `started_at` is stamped when it is recorded, that is when it ended.
    last = max(s.started_at for s in trace.steps)
    return max(0.0, (last - trace.created_at).total_seconds())


_DEFAULT: dict[str, Runtime] = {}
_DEFAULT_LOCK = threading.Lock()


def solve(problem: str, mode: str = "auto", **settings: Any) -> Solution:
    """Solve a problem with a runtime built from settings (cached per distinct settings).

    Args:
        problem: the problem text.
        mode: "fast", "slow", "auto" or "team".
        **settings: overrides of `Settings` fields (backend, model, database_url, ...).

    Raises:
        ConfigError: a setting is unknown or invalid, or the mode is unknown.
        InvalidInputError: the problem is empty, too long or not a string.

    Example:
        >>> from agentrt import solve
        >>> sol = solve("What is 17*23+5?", mode="fast")  # doctest: +SKIP
        >>> sol.answer, sol.trace_id  # doctest: +SKIP
    """
    key = repr(sorted(settings.items()))
    with _DEFAULT_LOCK:
        rt = _DEFAULT.get(key)
        if rt is None:
            rt = _DEFAULT[key] = Runtime(load_settings(**settings))
    return rt.solve(problem, mode=mode)
