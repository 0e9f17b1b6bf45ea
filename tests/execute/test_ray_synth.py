"""Data synthesis through the Ray executor on a real local Ray cluster (2 CPUs) started here.

The fake backend is the only stand-in: each worker builds its runtime with a picklable factory
that makes a scripted teacher, and writes traces to a fresh PostgreSQL database the test and
the workers share. Ray's results must be the ones the local executor gives.
"""

import json
import re
import sys

import pytest

from agentrt.cli import main
from agentrt.core.config import load_settings
from agentrt.core.types import Problem
from agentrt.data_synth.decontaminate import ContaminationIndex
from agentrt.data_synth.model_problems import WriterConfig, model_problems
from agentrt.data_synth.teacher import teacher_traces
from agentrt.execute import LocalExecutor, RayExecutor
from agentrt.llm.fake import FakeBackend
from agentrt.runtime import Runtime

ray = pytest.importorskip("ray")

N = 8


def answer_times(request):
    """Right, except for multiples of 3."""
    text = "\n".join(m.content for m in request.messages)
    a = int(re.search(r"(\d+) times 3", text).group(1))
    return f"Final answer: {3 * a + (a % 3 == 0)}"


class Teacher:
    """Picklable factory: a runtime on the scripted teacher."""

    def __init__(self, settings):
        self.settings = settings

    def __call__(self):
        backend = FakeBackend(rules=[(r"Proposed", "Verdict: yes"), (r"times 3", answer_times)],
                              default="Final answer: 7", model_id="teacher-7b")
        return Runtime(self.settings, backend=backend)


@pytest.fixture(scope="module")
def cluster():
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def setup(tmp_path, pg_url):
    settings = load_settings(backend="fake", model="teacher-7b", prompt_profile="compact",
                             home=tmp_path / "home", database_url=pg_url)
    driver = Runtime(settings, backend=FakeBackend(default=None))  # solves nothing itself
    yield Teacher(settings), driver
    driver.close()


def test_teacher_traces_through_ray_equal_local(cluster, setup):
    factory, driver = setup
    problems = [Problem(id=f"p{a}", text=f"What is {a} times 3?", answer=str(3 * a),
                        grader="numeric") for a in range(1, N + 1)]

    def summary(report):
        return (report.requested, report.stored,
                [(r["problem_id"], r["mode"], r["reason"]) for r in report.rejected],
                [driver.store.get_trace(t).tags["problem_id"] for t in report.trace_ids])

    local_runtime = factory()
    local = teacher_traces(local_runtime, problems, mode="fast", executor=LocalExecutor(2))
    local_runtime.close()
    remote = teacher_traces(driver, problems, mode="fast", executor=RayExecutor(factory))
    assert summary(remote) == summary(local)
    assert remote.stored == {"fast": 6} and [r["problem_id"] for r in remote.rejected] == \
        ["p3", "p6"]
    assert not driver.backend.requests  # every solve ran on a worker
    for r in remote.rejected:  # tagged by the driver
        assert driver.store.get_trace(r["trace_id"]).tags["synthetic"] == "rejected"


def test_model_problems_checked_through_ray_equal_local(cluster, setup):
    factory, driver = setup
    items = [{"text": "Liam packs 8 crates of 15 jars. How many jars does he pack?",
              "answer": "120", "program": "print(8 * 15)"},  # its program, on a worker
             {"text": "Noor buys 4 times 3 eggs. How many eggs?", "answer": "13",
              "program": "print(4 * 3)"},  # the program and the solves disagree with 13
             {"text": "Omar reads 5 times 3 pages. How many pages?", "answer": "15"}]
    writer = FakeBackend(default=json.dumps({"problems": items}), model_id="writer")
    config = WriterConfig(n=5, per_call=3, max_calls=1, k=2, grader="numeric")

    def check(runtime, executor):
        return model_problems(writer, topic="counting", runtime=runtime, config=config,
                              index=ContaminationIndex(n=13), executor=executor)

    local_runtime = factory()
    local_kept, local_report = check(local_runtime, LocalExecutor(2))
    local_runtime.close()
    kept, report = check(driver, RayExecutor(factory))
    assert [p.model_dump() for p in kept] == [p.model_dump() for p in local_kept]
    assert report.model_dump() == local_report.model_dump()
    assert report.verified == {"program": 1, "solves": 1}
    assert report.rejected == {"solves agree on another answer": 1}
    assert not driver.backend.requests


def test_cli_stores_teacher_traces_from_the_cluster(cluster, tmp_path, pg_url, monkeypatch,
                                                    capsys):
    monkeypatch.setenv("AGENTRT_HOME", str(tmp_path / "home"))
    source = tmp_path / "p.jsonl"
    source.write_text("".join(json.dumps({"id": f"p{i}", "text": f"What is {i} + 40?",
                                          "answer": str(i + 40), "grader": "numeric"}) + "\n"
                              for i in (1, 2, 3)))
    main(["synth", "traces", "--from", str(source), "--mode", "fast", "--teacher-backend", "fake",
          "--teacher-model", "fake", "--executor", "ray", "--database-url", pg_url, "--json"])
    report = json.loads(capsys.readouterr().out)  # the fake teacher answers 42 to everything
    assert report["stored"] == {"fast": 1}
    assert [r["problem_id"] for r in report["rejected"]] == ["p1", "p3"]
