"""The continuous-batching scheduler, on counting sessions (the model side is tested in test_hf)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

from agentrt.llm.engine import ContinuousEngine


@dataclass(eq=False)
class Job:
    kind: str
    steps: int  # decode steps until it ends
    fail: bool = False


class CountingSession:
    """A decode where each job ends after its own number of steps; records what happened."""

    log: list = []

    def __init__(self, first: Job, step_s: float = 0.0):
        self.kind, self.step_s = first.kind, step_s
        self.left: dict[Job, int] = {}
        self.steps = 0
        self.closed = False
        CountingSession.log.append(self)
        self.admitted: list[tuple[int, Job]] = []

    def accepts(self, job: Job) -> bool:
        if job.kind == "poison":
            raise RuntimeError("accepts broke")
        return job.kind == self.kind

    def add(self, job: Job) -> None:
        if job.kind == "refused":
            raise ValueError("refused job")
        self.left[job] = job.steps
        self.admitted.append((self.steps, job))
        self.peak = max(getattr(self, "peak", 0), self.load)

    @property
    def load(self) -> int:
        return len(self.left)

    def step(self) -> list:
        time.sleep(self.step_s)
        if any(job.fail for job in self.left) and len(self.left) > 1:
            raise RuntimeError("batch failed")
        if any(job.fail for job in self.left):
            raise RuntimeError("bad job")
        self.steps += 1
        done = []
        for job in list(self.left):
            self.left[job] -= 1
            if not self.left[job]:
                del self.left[job]
                done.append((job, f"{job.kind}:{job.steps}@{self.steps}"))
        return done

    def close(self) -> None:
        self.closed = True
        if self.kind == "bad-close":
            raise OSError("close failed")


@pytest.fixture(autouse=True)
def fresh_log():
    CountingSession.log = []


def test_jobs_arriving_mid_decode_join_and_leave_on_their_own_step():
    engine = ContinuousEngine(lambda job: CountingSession(job, step_s=0.01), max_rows=8, wait_s=0)
    long = engine.submit(Job("greedy", 40))
    time.sleep(0.1)  # the long job is decoding
    short = engine.submit(Job("greedy", 3))
    assert short.result(timeout=5).startswith("greedy:3@")
    assert not long.done()  # the short one came back while the long one still runs
    assert long.result(timeout=5) == "greedy:40@40"
    (session,) = CountingSession.log
    assert [steps > 0 for steps, _ in session.admitted] == [False, True]
    assert engine.stats.joined == 1 and engine.stats.batches == 1 and engine.stats.items == 2
    assert session.closed
    engine.close()


def test_an_incompatible_job_stops_admission_so_it_is_not_starved():
    engine = ContinuousEngine(lambda job: CountingSession(job, step_s=0.005), max_rows=8, wait_s=0)
    first = engine.submit(Job("greedy", 20))
    time.sleep(0.03)
    other = engine.submit(Job("sampled", 2))
    time.sleep(0.02)
    later = engine.submit(Job("greedy", 2))  # compatible, but queued behind `other`
    for fut in (first, other, later):
        fut.result(timeout=5)
    kinds = [(s.kind, len(s.admitted)) for s in CountingSession.log]
    assert kinds == [("greedy", 1), ("sampled", 1), ("greedy", 1)]
    engine.close()


def test_admission_stops_at_max_rows():
    engine = ContinuousEngine(lambda job: CountingSession(job), max_rows=2, wait_s=0.2)
    futures = engine.submit_many([Job("greedy", 5) for _ in range(5)])
    assert all(f.result(timeout=5).startswith("greedy:5@") for f in futures)
    (session,) = CountingSession.log  # later jobs joined as earlier ones left
    assert session.peak == 2 and len(session.admitted) == 5 and session.load == 0
    engine.close()


def test_a_failing_job_fails_alone_and_the_others_are_rerun():
    engine = ContinuousEngine(lambda job: CountingSession(job), max_rows=8, wait_s=0.2)
    good, bad, refused, good2 = engine.submit_many(
        [Job("greedy", 3), Job("greedy", 3, fail=True), Job("refused", 1), Job("greedy", 4)])
    assert good.result(timeout=5) == "greedy:3@3" and good2.result(timeout=5) == "greedy:4@4"
    with pytest.raises(RuntimeError, match="bad job"):
        bad.result(timeout=5)
    with pytest.raises(ValueError, match="refused"):
        refused.result(timeout=5)
    assert all(s.closed for s in CountingSession.log)
    engine.close()


def test_close_finishes_queued_jobs_then_refuses_new_ones():
    engine = ContinuousEngine(lambda job: CountingSession(job, step_s=0.01), max_rows=1, wait_s=0)
    futures = engine.submit_many([Job("greedy", 3), Job("sampled", 3), Job("greedy", 2)])
    engine.close()
    assert [f.result(timeout=0) for f in futures] == ["greedy:3@3", "sampled:3@3", "greedy:2@2"]
    with pytest.raises(RuntimeError, match="closed"):
        engine.submit(Job("greedy", 1))


def test_cancelled_futures_are_skipped_and_threads_get_their_own_results():
    engine = ContinuousEngine(lambda job: CountingSession(job, step_s=0.002), max_rows=8, wait_s=0.05)
    blocker = engine.submit(Job("sampled", 30))
    skipped = engine.submit(Job("greedy", 1))
    assert skipped.cancel()  # still queued behind the sampled session
    results: dict[int, str] = {}

    def call(i: int) -> None:
        results[i] = engine.submit(Job("greedy", i + 1)).result(timeout=10)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert blocker.result(timeout=5) == "sampled:30@30"
    assert {i: r.split("@")[0] for i, r in results.items()} == {i: f"greedy:{i + 1}" for i in range(6)}
    assert sum(len(s.admitted) for s in CountingSession.log) == 7  # the cancelled job never ran
    engine.close()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        ContinuousEngine(lambda job: CountingSession(job), max_rows=0)


def test_a_job_that_must_not_run_twice_fails_with_the_step_error():
    engine = ContinuousEngine(lambda job: CountingSession(job), max_rows=8, wait_s=0.2,
                              retry=lambda job: job.steps != 5)
    once, bad, again = engine.submit_many([Job("greedy", 5), Job("greedy", 3, fail=True),
                                           Job("greedy", 4)])
    with pytest.raises(RuntimeError, match="batch failed"):
        once.result(timeout=5)
    with pytest.raises(RuntimeError, match="bad job"):
        bad.result(timeout=5)
    assert again.result(timeout=5) == "greedy:4@4"
    engine.close()


def test_a_failing_close_or_a_broken_worker_never_leaves_a_caller_waiting(caplog):
    engine = ContinuousEngine(lambda job: CountingSession(job), max_rows=8, wait_s=0)
    assert engine.submit(Job("bad-close", 2)).result(timeout=5) == "bad-close:2@2"
    assert engine.submit(Job("greedy", 1)).result(timeout=5) == "greedy:1@1"  # worker alive
    assert "closing a decode session failed" in caplog.text
    engine = ContinuousEngine(lambda job: CountingSession(job, step_s=0.01), max_rows=8, wait_s=0)
    running = engine.submit(Job("greedy", 20))
    time.sleep(0.05)
    broken, queued = engine.submit_many([Job("poison", 1), Job("greedy", 1)])
    for fut in (running, broken, queued):
        with pytest.raises(RuntimeError):
            fut.result(timeout=5)
    with pytest.raises(RuntimeError, match="closed"):
        engine.submit(Job("greedy", 1))
    engine.close()
