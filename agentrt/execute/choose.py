"""Pick an executor by name, as the command line and the training settings name them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agentrt.core.errors import ConfigError
from agentrt.execute.base import Executor, LocalExecutor
from agentrt.execute.ray_executor import RayExecutor

__all__ = ["EXECUTORS", "make_executor"]

EXECUTORS = ("local", "ray")


def make_executor(name: str, *, workers: int = 1, factory: Callable[[], Any] | None = None,
                  address: str | None = None) -> Executor:
    """The executor called `name`.

    Args:
        name: "local" (threads here, `workers` at a time) or "ray" (tasks on a cluster).
        workers: concurrent items of the local executor.
        factory: for "ray", a picklable callable that builds the context on each worker.
        address: for "ray", the cluster address (None: a local `ray.init()`).

    Raises:
        ConfigError: an unknown name, or "ray" without a factory.
    """
    if name == "local":
        return LocalExecutor(workers)
    if name == "ray":
        if factory is None:
            raise ConfigError("the ray executor needs a factory that builds the runtime")
        return RayExecutor(factory, address=address)
    raise ConfigError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
