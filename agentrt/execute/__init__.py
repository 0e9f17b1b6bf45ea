"""Executors: run one function over a batch of items, here on threads or on a Ray cluster.

    executor = LocalExecutor(workers=4)                       # today's thread pool
    executor = RayExecutor(factory, address="ray://head:10001")  # or address=None: a local ray.init()
    for done in executor.map(solve_one, problems, context=runtime):
        print(done.index, done.result or done.error)

Evaluation, data synthesis and the training loop hand their batches of solves to an executor.
This package knows nothing of runtimes, problems or traces: the caller passes the function,
the items and (for Ray) a picklable factory that builds the function's context on each worker.
"""

from agentrt.execute.base import Batch, Executor, Finished, LocalExecutor
from agentrt.execute.choose import EXECUTORS, make_executor
from agentrt.execute.ray_executor import RayExecutor

__all__ = ["Batch", "EXECUTORS", "Executor", "Finished", "LocalExecutor", "RayExecutor",
           "make_executor"]
