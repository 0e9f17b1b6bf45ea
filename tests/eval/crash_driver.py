"""An evaluation driver for the resume test: slow-thinking solves of sums on the scripted backend
(each expert call sleeps), in a process the test kills with SIGKILL mid-run.

    python crash_driver.py RUNS_DIR DATABASE_URL BENCH DELAY_S [MODE]
"""

from __future__ import annotations

import json
import re
import sys

from agentrt.core.config import Limits, load_settings
from agentrt.eval.harness import EvalSpec, run_eval
from agentrt.llm.fake import FakeBackend
from agentrt.runtime import Runtime

DESIGN = json.dumps({"nodes": [{"id": "add", "kind": "llm", "role": "adder",
                                "instruction": "add the numbers", "inputs": []}],
                     "final": "add"})


def backend(delay_s: float = 0.0) -> FakeBackend:
    def add(request):
        a, b = map(int, re.search(r"What is (\d+) \+ (\d+)", request.messages[-1].content).groups())
        return f"{a} + {b} = {a + b}.\nFinal answer: {a + b}"

    return FakeBackend(rules=[(r"Proposed (final )?answer", '{"verdict": "yes", "reason": "ok"}'),
                              (r"Reflect on the following problem", "Add the two numbers."),
                              (r"Design a workflow of experts", DESIGN),
                              (r"Judge whether its final answer",
                               '{"reason": "ok", "verdict": "yes"}'),
                              (r"Expert: add |What is \d+ \+ \d+", add)], delay_s=delay_s)


def runtime(db_url: str, home: str, delay_s: float = 0.0) -> Runtime:
    settings = load_settings(backend="fake", model="fake", home=home, database_url=db_url,
                             limits=Limits(max_rounds=1))
    return Runtime(settings, backend=backend(delay_s))


if __name__ == "__main__":
    runs_dir, db_url, bench, delay = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    mode = sys.argv[5] if len(sys.argv) > 5 else "slow"
    rt = runtime(db_url, runs_dir + "/home", delay)
    run_eval(rt, EvalSpec(bench=bench, mode=mode, workers=2), out=runs_dir)
