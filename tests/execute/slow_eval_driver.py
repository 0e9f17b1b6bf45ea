"""`agentrt eval` on the scripted backend, slowed down: a driver that a test starts and interrupts.

    python tests/execute/slow_eval_driver.py DELAY_S eval --bench jsonl:... --executor ray ...

Everything after DELAY_S is the `agentrt eval` command line, run by the real entry point. The one
change is the runtime the command builds, here and on the Ray workers: a runtime on a scripted
backend that sleeps DELAY_S per call, so that solves are still running when the test presses
Ctrl-C. Defined in this script, the factory pickles by value, so workers need no import of it.
"""

import functools
import signal
import sys

import agentrt.cli.eval as cli_eval
from agentrt.cli.app import main
from agentrt.llm.fake import FakeBackend
from agentrt.runtime import Runtime


def slow_runtime(settings, delay_s):
    verdict = '{"verdict": "yes", "reason": "scripted"}'
    backend = FakeBackend(rules=[(r"Proposed (final )?answer", verdict)],
                          default="Final answer: 42", delay_s=delay_s)
    return Runtime(settings, backend=backend)


if __name__ == "__main__":
    # Ctrl-C reaches this driver as it reaches a command typed in a terminal, even when the
    # test run was started where SIGINT is ignored (a background job of a shell), which its
    # child processes would inherit.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    cli_eval.Runtime = functools.partial(slow_runtime, delay_s=float(sys.argv[1]))
    main(sys.argv[2:])
