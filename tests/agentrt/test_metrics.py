"""agentrt.core.metrics: live gauges, solve statuses, sandbox statuses, multiprocess sums."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from agentrt.core import metrics
from agentrt.core.errors import BackendUnavailableError, CancelledError
from agentrt.core.types import Solution


class _Owner:
    level = 3


def test_a_live_gauge_sums_its_owners_and_forgets_collected_ones():
    registry = CollectorRegistry()
    gauge = metrics.LiveGauge("agentrt_test_level", "A level.", registry=registry)
    a, b = _Owner(), _Owner()
    gauge.track(a, lambda owner: owner.level)
    gauge.track(b, lambda owner: owner.level * 2)
    assert registry.get_sample_value("agentrt_test_level") == 9
    del b
    gc.collect()
    assert registry.get_sample_value("agentrt_test_level") == 3
    gauge.untrack(a)
    assert registry.get_sample_value("agentrt_test_level") == 0


class _Runtime:
    @metrics.observe_solve
    def run(self, trace_id: str, mode: str, outcome):
        if isinstance(outcome, BaseException):
            raise outcome
        return Solution(answer="4", mode=mode, requested_mode=mode, trace_id=trace_id,
                        status=outcome)


def _solves(mode: str, status: str) -> float:
    return metrics.REGISTRY.get_sample_value("agentrt_solves_total",
                                             {"mode": mode, "status": status}) or 0.0


@pytest.mark.parametrize("outcome, status", [
    ("ok", "ok"),
    ("budget_exceeded:llm_calls", "budget_exceeded:llm_calls"),
    (BackendUnavailableError("down"), "error"),
    (CancelledError("gone"), "cancelled"),
    (KeyboardInterrupt(), "interrupted"),
])
def test_solves_are_counted_with_the_status_their_trace_ends_with(outcome, status):
    before = _solves("slow", status)
    timed = metrics.REGISTRY.get_sample_value("agentrt_solve_duration_seconds_count",
                                              {"mode": "slow"}) or 0.0
    if isinstance(outcome, BaseException):
        with pytest.raises(type(outcome)):
            _Runtime().run("t1", "slow", outcome)
    else:
        assert _Runtime().run("t1", "slow", outcome).status == status
    assert _solves("slow", status) == before + 1
    assert metrics.REGISTRY.get_sample_value("agentrt_solve_duration_seconds_count",
                                             {"mode": "slow"}) == timed + 1


def test_sandbox_status_names_the_way_a_run_ended():
    assert metrics.sandbox_status(True, False, None) == "ok"
    assert metrics.sandbox_status(False, False, None) == "exit_nonzero"
    assert metrics.sandbox_status(False, True, None) == "timeout"
    assert metrics.sandbox_status(False, True, "memory_limit") == "memory_limit"


_COUNT = """
import sys
from agentrt.core import metrics
metrics.SOLVES.labels("fast", "ok").inc(int(sys.argv[1]))
metrics.REQUESTS_IN_FLIGHT.track(metrics, lambda _m: 5)
if sys.argv[2] == "render":
    sys.stdout.write(metrics.render()[0].decode())
"""


def test_multiprocess_mode_sums_the_counters_of_every_process(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}

    def run(count: int, action: str) -> str:
        return subprocess.run([sys.executable, "-c", _COUNT, str(count), action], env=env,
                              check=True, capture_output=True, text=True, timeout=60).stdout

    run(2, "exit")
    run(3, "exit")
    text = run(4, "render")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("agentrt_solves_total", (("mode", "fast"), ("status", "ok")))] == 9
    assert samples[("agentrt_requests_in_flight", ())] == 5  # the answering process's own
