"""One cancel signal for whatever runs in the current context: `cancel_on(event)`.

A caller that may give up on work (a client went away, a solve was cancelled) runs it inside
`cancel_on(event)`. Code that can stop part-way reads `current_cancel()` when it starts and stops
soon after the event is set: the hf engine ends a request's rows at their next token, the sandbox
kills a running program. Code that cannot stop simply finishes. The signal is a context variable,
so it follows the caller's thread and task and never leaks into unrelated work.
This module knows nothing about what is cancelled.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator

__all__ = ["cancel_on", "current_cancel"]

_cancel: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "agentrt_cancel", default=None)


@contextlib.contextmanager
def cancel_on(event: threading.Event) -> Iterator[None]:
    """Work started in this context may stop early once `event` is set."""
    token = _cancel.set(event)
    try:
        yield
    finally:
        _cancel.reset(token)


def current_cancel() -> threading.Event | None:
    """The cancel event of the innermost `cancel_on` around the current call, if any."""
    return _cancel.get()
