"""The training loop's self-solves and evaluations on a real local Ray cluster (2 CPUs).

The tiny preset end to end with `executor = "ray"`: every solve of the run is a Ray task whose
worker loads the model version itself (`VersionRuntime`), and the traces land in the run's store.
"""

import socket
import time

import pytest

from agentrt.store import TraceStore
from agentrt.training.config import load_config

ray = pytest.importorskip("ray")
from ray.util.state import list_tasks  # noqa: E402 - only once ray is known to be installed

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    with socket.socket() as sock:  # the state API (which tasks ran) is served by the dashboard
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ray.init(num_cpus=2, include_dashboard=True, dashboard_port=port, log_to_driver=False)
    yield f"http://127.0.0.1:{port}"
    ray.shutdown()


def test_a_tiny_run_solves_and_evaluates_on_ray(cluster, tmp_path, embedded_home):
    from agentrt.training.iterate import run

    db_url = f"sqlite:///{tmp_path / 'agentrt.db'}"
    cfg = load_config("tiny", executor="ray", preference="none", eval_modes=["auto"],
                      gate_modes=["auto"], sft={"max_steps": 1})
    summary = run(cfg, tmp_path / "run", home=embedded_home, database_url=db_url, quiet=True)
    assert summary["table"]
    assert ray.is_initialized()  # the run joined this process's cluster and left it running

    store = TraceStore(db_url)
    selves = store.list_traces(limit=100, tags={"role": "self"})
    evals = store.list_traces(limit=100, tags={"split": "eval"})
    store.close()
    assert len(selves) == cfg.n_solve * cfg.samples  # one trace per self-solve
    assert len(evals) == 2 * cfg.eval_per_family * len(cfg.families)  # base and candidate
    assert all(t.status not in ("running", "cancelled") for t in selves + evals)
    deadline = time.monotonic() + 30  # the state API learns of finished tasks a little later
    while True:
        ran = [t for t in list_tasks(address=cluster, filters=[("state", "=", "FINISHED")],
                                     limit=1000)
               if t.func_or_class_name.endswith("_run_item")]
        if len(ran) >= len(selves) + len(evals) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(ran) >= len(selves) + len(evals)  # every solve was a task on the cluster

    # Where solves run is not part of the experiment: the finished run resumes on threads.
    local = cfg.model_copy(update={"executor": "local"})
    again = run(local, tmp_path / "run", home=embedded_home, database_url=db_url, quiet=True)
    assert again["table"] == summary["table"]
