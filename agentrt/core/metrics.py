"""Prometheus metrics: every agentrt metric, defined once, on agentrt's own registry.

The metrics live on `REGISTRY`, a `prometheus_client.CollectorRegistry` of agentrt's own (not
the library's global default), so several apps in one process, or a host application with its
own metrics, do not clash. Values accumulate per process from its start. The layer that knows a
fact records it: the server (requests, latency, tokens, requests in flight), the hf backend
(decode queue, running rows, joins), the prefix cache, the runtime (solves) and the sandbox
(runs). Levels that already exist as state (requests in flight, rows waiting or decoding,
prefix-cache bytes) are `LiveGauge`s: read from their owners at scrape time, so nothing is
counted twice.

With several worker processes, set `PROMETHEUS_MULTIPROC_DIR` (an empty directory, the same for
every worker, before they start): `render()` then sums the counters and histograms of every
worker; the live gauges are always the answering worker's own.

This module knows prometheus_client only: nothing about HTTP, models or traces.
"""

from __future__ import annotations

import functools
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from agentrt.core.errors import AgentrtError

__all__ = [
    "REGISTRY", "LiveGauge", "render", "observe_solve", "sandbox_status",
    "HTTP_REQUESTS", "HTTP_LATENCY", "PROMPT_TOKENS", "COMPLETION_TOKENS", "REQUESTS_IN_FLIGHT",
    "DECODE_QUEUE", "DECODE_RUNNING", "DECODE_BATCH_ROWS", "DECODE_JOINS",
    "PREFIX_LOOKUPS", "PREFIX_HITS", "PREFIX_TOKENS_REUSED", "PREFIX_BYTES",
    "SOLVES", "SOLVE_LATENCY", "SANDBOX_RUNS", "SANDBOX_LATENCY",
]

REGISTRY = CollectorRegistry()

_SLOW_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                 120.0, 300.0, 900.0)
_ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class LiveGauge(Collector):
    """A gauge read at scrape time: the sum of what its live owners report.

    Owners are held weakly: one that is garbage collected stops counting by itself.

    Args:
        name: the metric name.
        documentation: its help text.
        registry: where it is exposed.
    """

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry = REGISTRY):
        self.name, self.documentation = name, documentation
        self._owners: weakref.WeakKeyDictionary[Any, Callable[[Any], float]] = \
            weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        registry.register(self)

    def track(self, owner: Any, read: Callable[[Any], float]) -> None:
        """Count `read(owner)` while `owner` lives (`read` must not hold `owner` itself)."""
        with self._lock:
            self._owners[owner] = read

    def untrack(self, owner: Any) -> None:
        with self._lock:
            self._owners.pop(owner, None)

    def value(self) -> float:
        with self._lock:
            owners = list(self._owners.items())
        return float(sum(read(owner) for owner, read in owners))

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.name, self.documentation)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.name, self.documentation, value=self.value())


def _counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
    return Counter(name, doc, labels, registry=REGISTRY)


def _histogram(name: str, doc: str, labels: tuple[str, ...], buckets: tuple) -> Histogram:
    return Histogram(name, doc, labels, buckets=buckets, registry=REGISTRY)


# ---- server -------------------------------------------------------------------------------
HTTP_REQUESTS = _counter("agentrt_http_requests_total", "HTTP requests answered, by served "
                         "model, route and status code.", ("model", "route", "status"))
HTTP_LATENCY = _histogram("agentrt_http_request_duration_seconds", "Time from a request's "
                          "arrival to the end of its response (a stream's last byte).",
                          ("model", "route"), _SLOW_BUCKETS)
PROMPT_TOKENS = _counter("agentrt_prompt_tokens_total", "Prompt tokens of completed requests "
                         "(for solver models: of every LLM call of their solves).", ("model",))
COMPLETION_TOKENS = _counter("agentrt_completion_tokens_total", "Completion tokens of completed "
                             "requests (for solver models: of every LLM call of their solves).",
                             ("model",))
REQUESTS_IN_FLIGHT = LiveGauge("agentrt_requests_in_flight", "Requests admitted and not yet "
                               "finished (what the concurrency limit counts).")

# ---- the hf backend: continuous batching and the prefix cache -----------------------------
DECODE_QUEUE = LiveGauge("agentrt_decode_queue_depth", "Rows (sequences) submitted to the hf "
                         "backend that wait for a place in a decode.")
DECODE_RUNNING = LiveGauge("agentrt_decode_running_rows", "Rows decoding in the hf backend now.")
DECODE_BATCH_ROWS = _histogram("agentrt_decode_batch_rows", "Rows in the batch at each decode "
                               "step of the hf backend.", (), _ROW_BUCKETS)
DECODE_JOINS = _counter("agentrt_decode_joins_total", "Requests that joined a decode already "
                        "running (continuous batching).")
PREFIX_LOOKUPS = _counter("agentrt_prefix_cache_lookups_total", "Prompts looked up in the "
                          "prefix cache.")
PREFIX_HITS = _counter("agentrt_prefix_cache_hits_total", "Prompts that reused a cached start.")
PREFIX_TOKENS_REUSED = _counter("agentrt_prefix_cache_reused_tokens_total", "Prompt tokens "
                                "taken from the prefix cache instead of prefilled.")
PREFIX_BYTES = LiveGauge("agentrt_prefix_cache_bytes", "Memory held by prefix-cache keys and "
                         "values.")

# ---- the runtime and the sandbox ----------------------------------------------------------
SOLVES = _counter("agentrt_solves_total", "Finished solves, by requested mode and trace status "
                  "(ok, budget_exceeded:<limit>, error, cancelled, interrupted).",
                  ("mode", "status"))
SOLVE_LATENCY = _histogram("agentrt_solve_duration_seconds", "Wall time of a solve (of its "
                           "resumed part, for a resume).", ("mode",), _SLOW_BUCKETS)
SANDBOX_RUNS = _counter("agentrt_sandbox_runs_total", "Sandboxed program runs, by status (ok, "
                        "exit_nonzero, or the reason the run was killed).", ("status",))
SANDBOX_LATENCY = _histogram("agentrt_sandbox_run_duration_seconds", "Wall time of a "
                             "sandboxed run, by status.", ("status",), _SLOW_BUCKETS)

_LIVE = (REQUESTS_IN_FLIGHT, DECODE_QUEUE, DECODE_RUNNING, PREFIX_BYTES)


def render() -> tuple[bytes, str]:
    """The exposition text and its content type (summed over workers in multiprocess mode)."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    for gauge in _LIVE:
        registry.register(gauge)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def observe_solve(run: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate `run(self, trace_id, mode, ...) -> Solution` to count and time its solves.

    The status is the one the trace ends with: the solution's status, `cancelled` or `error` for
    an agentrt error, `interrupted` for Ctrl-C, SIGTERM or SystemExit, `error` for any other
    exception.
    """

    @functools.wraps(run)
    def observed(self: Any, trace_id: str, mode: str, *args: Any, **kwargs: Any) -> Any:
        start, status = time.perf_counter(), "interrupted"
        try:
            solution = run(self, trace_id, mode, *args, **kwargs)
            status = solution.status
            return solution
        except AgentrtError as e:
            status = "cancelled" if e.code == "cancelled" else "error"
            raise
        except Exception:
            status = "error"
            raise
        finally:
            SOLVES.labels(mode, status).inc()
            SOLVE_LATENCY.labels(mode).observe(time.perf_counter() - start)

    return observed


def sandbox_status(ok: bool, timed_out: bool, killed_reason: str | None) -> str:
    """The `status` label of a sandboxed run."""
    if killed_reason:
        return killed_reason
    if timed_out:
        return "timeout"
    return "ok" if ok else "exit_nonzero"
