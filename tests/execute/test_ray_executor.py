"""Evaluation through the Ray executor on a real local Ray cluster (2 CPUs) started here.

The fake backend is the only stand-in: each worker builds its runtime with a picklable factory
that makes a scripted backend, and writes traces to a fresh PostgreSQL database the test and the
workers share. For Ctrl-C, `agentrt eval` runs in a process of its own (`slow_eval_driver.py`:
the command, with the scripted backend slowed down) that joins this cluster, and gets SIGINT.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentrt.cli import main
from agentrt.core.config import load_settings
from agentrt.eval.harness import EvalSpec, run_eval
from agentrt.execute import LocalExecutor, RayExecutor
from agentrt.llm.fake import FakeBackend
from agentrt.runtime import Runtime

ray = pytest.importorskip("ray")
from ray.util.state import list_jobs, list_tasks  # noqa: E402 - only once ray is installed

N = 40
DRIVER = Path(__file__).with_name("slow_eval_driver.py")
ENDED = ("FINISHED", "FAILED")  # a task in any other state is queued or running


def answer_sums(request):
    """Right for even first operands, off by one otherwise."""
    a, b = map(int, re.search(r"(\d+) \+ (\d+)", request.messages[-1].content).groups())
    got = a + b if a % 2 == 0 else a + b + 1
    return f"{a} + {b} is {got}.\nFinal answer: {got}"


def checker(request):
    text = request.messages[-1].content
    a, b = map(int, re.search(r"(\d+) \+ (\d+)", text).groups())
    proposed = re.search(r"Proposed (?:final )?answer: (\S+)", text).group(1)
    return '{"verdict": "%s", "reason": "re-added"}' % ("yes" if proposed == str(a + b) else "no")


class FakeRuntime:
    """Picklable factory: a runtime on the scripted backend; notes its process id in `pids`."""

    def __init__(self, settings, delay_s=0.0, pids=None):
        self.settings, self.delay_s, self.pids = settings, delay_s, pids

    def __call__(self):
        if self.pids:
            with open(os.path.join(self.pids, str(os.getpid())), "w") as f:
                f.write("worker")
        backend = FakeBackend(rules=[(r"Proposed (final )?answer", checker), (r".*", answer_sums)],
                              delay_s=self.delay_s)
        return Runtime(self.settings, backend=backend)


@pytest.fixture(scope="module")
def cluster():
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with socket.socket() as sock:  # the state API (which tasks run) is served by the dashboard
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ray.init(num_cpus=2, include_dashboard=True, dashboard_port=port, log_to_driver=False)
    yield
    ray.shutdown()


def gcs():
    """This test's cluster, named: the state API would otherwise pick the newest one on the host."""
    return ray.get_runtime_context().gcs_address


def sums(path, n=N):
    path.write_text("".join(json.dumps({"id": f"s{i}", "question": f"What is {i + 2} + {3 * i}?",
                                        "answer": str(4 * i + 2), "grader": "numeric"}) + "\n"
                            for i in range(n)))
    return f"jsonl:{path}"


def setup(tmp_path, pg_url, **kw):
    settings = load_settings(backend="fake", model="fake", home=tmp_path / "home",
                             database_url=pg_url)
    factory = FakeRuntime(settings, **kw)
    return factory, Runtime(settings, backend=FakeBackend()), sums(tmp_path / "sums.jsonl")


def comparable(run):
    return [(r.index, r.problem_id, r.answer, r.extracted, r.correct, r.status, r.mode,
             r.verdict, r.prompt_tokens, r.completion_tokens, r.llm_calls, r.error)
            for r in run.results]


def running(store, bench):
    return store.list_traces(limit=500, status="running", tags={"eval_bench": bench})


def test_ray_gives_the_same_results_as_local(cluster, tmp_path, pg_url):
    factory, rt, bench = setup(tmp_path, pg_url)
    spec = EvalSpec(bench=bench, mode="fast", workers=2)
    local = run_eval(factory(), spec, executor=LocalExecutor(2))
    seen = []
    remote = run_eval(rt, spec, executor=RayExecutor(factory), on_result=seen.append)
    assert remote.manifest.status == "done" and remote.manifest.done == N and len(seen) == N
    assert comparable(remote) == comparable(local)
    assert [r.correct for r in remote.results] == [i % 2 == 0 for i in range(N)]
    traces = rt.store.list_traces(limit=500, tags={"eval_run": remote.run_id})
    assert len(traces) == N and all(t.status == "ok" for t in traces)
    assert {t.tags.get("eval_correct") for t in traces} == {"0", "1"}


def test_a_killed_worker_loses_no_trace(cluster, tmp_path, pg_url):
    pids = tmp_path / "pids"
    pids.mkdir()
    factory, rt, bench = setup(tmp_path, pg_url, delay_s=0.1, pids=str(pids))
    killed = []

    def kill_one(result):
        if not killed and os.listdir(pids):
            pid = int(sorted(os.listdir(pids))[0])
            os.kill(pid, signal.SIGKILL)  # a Ray worker process this test's cluster started
            killed.append(pid)

    run = run_eval(rt, EvalSpec(bench=bench, mode="fast"), executor=RayExecutor(factory),
                   on_result=kill_one)
    assert killed and run.manifest.status == "done"
    assert [r.index for r in run.results] == list(range(N))
    assert all(r.error is None and r.status == "ok" for r in run.results)  # retried, not lost
    assert [r.correct for r in run.results] == [i % 2 == 0 for i in range(N)]
    assert not running(rt.store, bench)  # the dead worker's trace is marked, not left running
    ok = rt.store.list_traces(limit=500, status="ok", tags={"eval_run": run.run_id})
    assert sorted(t.tags["eval_problem"] for t in ok) == sorted(f"s{i}" for i in range(N))


def eventually(probe, timeout_s):
    """`probe()` polled until it is truthy or `timeout_s` has passed; its last value."""
    deadline = time.monotonic() + timeout_s
    while not (value := probe()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return value


def job_of(pid):
    """The Ray job id of the driver process `pid` (None until it has joined the cluster)."""
    jobs = list_jobs(address=gcs(), raise_on_missing_output=False)
    return next((j.job_id for j in jobs if j.driver_info and j.driver_info.pid == str(pid)), None)


def tasks_of(job_id):
    return list_tasks(address=gcs(), filters=[("job_id", "=", job_id), ("name", "=", "_run_item")],
                      limit=1000, raise_on_missing_output=False)


def unfinished(job_id):
    return [(t.task_id, t.state) for t in tasks_of(job_id) if t.state not in ENDED]


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_of_the_driver_leaves_no_ray_task_running(cluster, tmp_path, pg_url, presses):
    """`agentrt eval --executor ray` in its own process joins this cluster; SIGINT to it alone
    (pressed once, or again while the running solves stop) ends the run as interrupted."""
    # A solve's call sleeps, and Ray's interruption is seen only once the sleep returns: pressed
    # once, the solves stop within 2 s; pressed twice, the second press finds them still going.
    delay_s = 2.0 if presses == 1 else 8.0
    bench = sums(tmp_path / "sums.jsonl", n=20)  # 2 at a time: 20 s or more if not stopped
    home = tmp_path / "home"
    driver = subprocess.Popen(
        [sys.executable, str(DRIVER), str(delay_s), "eval", "--bench", bench, "--executor", "ray",
         "--ray-address", gcs(), "--json", "--no-report", "--backend", "fake", "--model", "fake",
         "--database-url", pg_url],
        env=dict(os.environ, AGENTRT_HOME=str(home)), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    store = Runtime(load_settings(database_url=pg_url)).store
    try:
        # Generous waits: on a loaded machine a worker's first task spends tens of seconds
        # importing the runtime and opening the store before its solve starts.
        job = eventually(lambda: job_of(driver.pid), 90)
        assert job, "the driver did not join the cluster"
        assert eventually(lambda: [t for t in tasks_of(job) if t.state == "RUNNING"], 90)
        assert eventually(lambda: running(store, bench), 90), "no solve started"  # past setup
        os.kill(driver.pid, signal.SIGINT)  # Ctrl-C, to the driver alone
        if presses == 2:  # again once the driver is cancelling (queued tasks are dropped)
            assert eventually(lambda: [t for t in tasks_of(job)
                                       if t.error_type == "TASK_CANCELLED"], 10)
            os.kill(driver.pid, signal.SIGINT)
        out, err = driver.communicate(timeout=25)  # grace 10 s, then workers are killed
    finally:
        if driver.poll() is None:  # the driver this test started ignored Ctrl-C
            driver.kill()
            driver.wait()
    # Once, the run ends and is reported; pressed again, the command stops with 130.
    assert driver.returncode == (0 if presses == 1 else 130), err
    [path] = (home / "eval_runs").glob("*/manifest.json")
    manifest = json.loads(path.read_text())
    assert manifest["status"] == "interrupted" and manifest["done"] < 20
    if presses == 1:
        assert json.loads(out)["status"] == "interrupted"
    assert eventually(lambda: not unfinished(job), 10), unfinished(job)
    assert eventually(lambda: ray.available_resources().get("CPU", 0) == 2, 10)
    time.sleep(1.0)  # and none queued behind the interruption starts later
    assert ray.available_resources().get("CPU", 0) == 2
    assert eventually(lambda: not running(store, bench), 10)  # no solve goes on either
    traces = store.list_traces(limit=50, tags={"eval_bench": bench})
    seen = [(t.status, t.orphaned) for t in traces]
    if presses == 1:  # each solve it stopped recorded that itself (its worker was not killed)
        assert traces and all(t.status in ("ok", "interrupted") and not t.orphaned
                              for t in traces), seen
    else:  # the second press killed the solves still in their call instead of waiting for them
        assert traces and ("interrupted", False) not in seen, seen


def test_cli_runs_an_evaluation_on_the_cluster(cluster, tmp_path, pg_url, monkeypatch, capsys):
    monkeypatch.setenv("AGENTRT_HOME", str(tmp_path / "home"))
    bench = sums(tmp_path / "sums.jsonl", n=6)
    main(["eval", "--bench", bench, "--executor", "ray", "--json", "--no-report",
          "--backend", "fake", "--model", "fake", "--database-url", pg_url])
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "done" and result["metrics"]["overall"]["n"] == 6
    store = Runtime(load_settings(database_url=pg_url)).store
    traces = store.list_traces(limit=50, tags={"eval_run": result["run_id"]})
    assert len(traces) == 6 and all(t.status == "ok" for t in traces)
    with pytest.raises(SystemExit):
        main(["eval", "--bench", bench, "--executor", "slurm", "--backend", "fake"])
    assert "invalid --executor" in capsys.readouterr().err
