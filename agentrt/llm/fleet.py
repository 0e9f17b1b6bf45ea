"""A set of model-server replicas: which to try, in what order, and which are down.

`ReplicaSet` keeps, per replica, the requests in flight and a passive health record: a replica
that failed (connection error, timeout, 5xx) is down for a backoff period that doubles with
each consecutive failure (`backoff_s` up to `max_backoff_s`); once the period is over the next
request may try it again, and a success clears the record. Nothing probes replicas in the
background.

`plan(key)` returns every replica in the order a request should try them: the healthy ones
first, arranged by the policy, then the down ones, soonest back first, as a last resort.
Policies:

- `least-busy`: fewest requests in flight first; ties rotate so equal replicas share the load.
- `round-robin`: strict rotation.
- `prefix`: rendezvous hashing of `key` (see `prefix_key`), so the same prompt start goes to
  the same replica while it is healthy, and to the same next one while it is not; a replica
  that comes back gets its prompts back. Without a key it behaves as `least-busy`.

This module knows no HTTP and no client: the backend (`agentrt.llm.openai_compat`) decides which
failures mark a replica down and which requests may be resent.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agentrt.core.errors import ConfigError
from agentrt.core.types import Message

__all__ = ["POLICIES", "Replica", "ReplicaSet", "prefix_key"]

POLICIES = ("least-busy", "round-robin", "prefix")


@dataclass
class Replica:
    """One server: its URL, the client that talks to it, its load and its health record."""

    url: str
    client: Any = None
    in_flight: int = 0
    served: int = 0
    failures: int = 0  # consecutive
    down_until: float = 0.0
    last_error: str = ""


def prefix_key(messages: Sequence[Message], chars: int = 2048) -> str:
    """The part of a prompt that affinity routing hashes: the messages up to and including the
    first user message (the system prompt and the problem), cut to `chars` characters."""
    parts = []
    for m in messages:
        parts.append(f"{m.role}\n{m.content}\n")
        if m.role == "user":
            break
    return "".join(parts)[:chars]


def _score(key: str, url: str) -> int:
    digest = hashlib.blake2b(f"{url}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class ReplicaSet:
    """The replicas of one backend, thread-safe.

    Args:
        urls: distinct server URLs.
        clients: one client per URL (opaque here), same order.
        policy: one of `POLICIES`.
        backoff_s: how long a replica is down after its first consecutive failure.
        max_backoff_s: the cap as the period doubles (default: 30 s, or `backoff_s` if longer).
        clock: monotonic seconds (tests pass a fake).

    Raises:
        ConfigError: an unknown policy, no replicas, or a non-positive backoff.
    """

    def __init__(
        self,
        urls: Sequence[str],
        clients: Sequence[Any] | None = None,
        policy: str = "least-busy",
        backoff_s: float = 2.0,
        max_backoff_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if policy not in POLICIES:
            raise ConfigError(f"unknown replica policy {policy!r}; choose one of: {', '.join(POLICIES)}")
        if not urls:
            raise ConfigError("a replica set needs at least one URL")
        max_backoff_s = max(30.0, backoff_s) if max_backoff_s is None else max_backoff_s
        if not (0 < backoff_s <= max_backoff_s):
            raise ConfigError("backoff_s must be > 0 and at most max_backoff_s")
        clients = list(clients) if clients is not None else [None] * len(urls)
        if len(clients) != len(urls):
            raise ConfigError("one client per replica URL is needed")
        self.replicas = [Replica(url=u, client=c) for u, c in zip(urls, clients)]
        self.policy = policy
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._clock = clock
        self._turn = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.replicas)

    def plan(self, key: str | None = None) -> list[Replica]:
        """Every replica, in the order a request should try them (see the module docstring)."""
        with self._lock:
            now = self._clock()
            up = [r for r in self.replicas if r.down_until <= now]
            down = sorted((r for r in self.replicas if r.down_until > now), key=lambda r: r.down_until)
            if self.policy == "prefix" and key is not None:
                up.sort(key=lambda r: _score(key, r.url), reverse=True)
            elif up:
                turn, self._turn = self._turn, self._turn + 1
                shift = turn % len(up)
                up = up[shift:] + up[:shift]
                if self.policy == "least-busy":
                    up.sort(key=lambda r: r.in_flight)  # stable: ties keep the rotation
            return up + down

    def start(self, replica: Replica) -> None:
        """A request is now in flight on `replica`."""
        with self._lock:
            replica.in_flight += 1

    def finish(self, replica: Replica, error: str | None = None, *, down: bool = False) -> None:
        """The request on `replica` ended: served, failed without harm to its health (`down`
        False with an error, e.g. a 4xx), or failed so that the replica counts as down."""
        with self._lock:
            replica.in_flight -= 1
            if error is None:
                replica.served += 1
                replica.failures, replica.down_until, replica.last_error = 0, 0.0, ""
            elif down:
                replica.failures += 1
                period = min(self.backoff_s * 2 ** (replica.failures - 1), self.max_backoff_s)
                replica.down_until = self._clock() + period
                replica.last_error = error

    def healthy(self) -> list[str]:
        """URLs of the replicas not marked down now."""
        with self._lock:
            now = self._clock()
            return [r.url for r in self.replicas if r.down_until <= now]

    def snapshot(self) -> list[dict[str, Any]]:
        """Per replica: url, up, in_flight, served, failures, last_error."""
        with self._lock:
            now = self._clock()
            return [
                {"url": r.url, "up": r.down_until <= now, "in_flight": r.in_flight, "served": r.served,
                 "failures": r.failures, "last_error": r.last_error}
                for r in self.replicas
            ]
