"""Prefix caching for the hf backend: the KV of recent prompts, reused by prompts that start alike.

Requests of one kind share long starts: the chat template's system text, a solver stage's
instructions. The keys and values of a prompt's first L tokens depend only on those tokens, so a
new prompt whose first L tokens equal a remembered prompt's needs only its remaining tokens
prefilled. `PrefixCache` remembers each prefilled prompt's KV (per layer, `(heads, tokens,
head_dim)`), least recently used dropped past a memory budget, and finds the longest start a new
prompt shares with any of them. Reused values come from another forward pass, so they can differ
from recomputed ones by float rounding (as in any prefix cache).

This module knows tensors and token ids only (and counts its lookups in `agentrt.core.metrics`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from agentrt.core import metrics

__all__ = ["PrefixCache", "PrefixStats"]


@dataclass
class PrefixStats:
    """Lookups made, lookups that found a reusable start, and prompt tokens not prefilled."""

    lookups: int = 0
    hits: int = 0
    tokens_reused: int = 0


class PrefixCache:
    """The KV of recently prefilled prompts.

    Args:
        max_bytes: memory budget for stored keys and values.
        min_tokens: shortest shared start worth reusing (and shortest prompt worth storing).
    """

    def __init__(self, max_bytes: int = 256 << 20, min_tokens: int = 16):
        if max_bytes < 0 or min_tokens < 1:
            raise ValueError("max_bytes must be >= 0 and min_tokens >= 1")
        self.max_bytes, self.min_tokens = max_bytes, min_tokens
        self.stats = PrefixStats()
        self._entries: OrderedDict[tuple[int, ...], list[tuple[Any, Any]]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        metrics.PREFIX_BYTES.track(self, lambda cache: cache.bytes)

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, ids: list[int]) -> tuple[int, list[tuple[Any, Any]] | None]:
        """(L, per-layer (keys, values) of at least L tokens) for the longest start of `ids` that
        a stored prompt shares, leaving at least one token of `ids` to prefill; (0, None) when
        none reaches `min_tokens`."""
        key = tuple(ids)
        best, found = 0, None
        with self._lock:
            self.stats.lookups += 1
            metrics.PREFIX_LOOKUPS.inc()
            for stored, layers in self._entries.items():
                n = _common(stored, key, len(key) - 1)
                if n > best:
                    best, found = n, stored
            if found is None or best < self.min_tokens:
                return 0, None
            self._entries.move_to_end(found)
            self.stats.hits += 1
            self.stats.tokens_reused += best
            metrics.PREFIX_HITS.inc()
            metrics.PREFIX_TOKENS_REUSED.inc(best)
            return best, self._entries[found]

    def store(self, ids: list[int], layers: list[tuple[Any, Any]]) -> None:
        """Remember the KV of prompt `ids` (per layer (keys, values), `(heads, len(ids), dim)`)."""
        if len(ids) < self.min_tokens:
            return
        size = _size(layers)
        if size > self.max_bytes:
            return
        key = tuple(ids)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= _size(old)
            self._entries[key] = layers
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= _size(dropped)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


def _common(a: tuple[int, ...], b: tuple[int, ...], limit: int) -> int:
    """Length of the common start of `a` and `b`, at most `limit`."""
    n = min(len(a), len(b), limit)
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo] and a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def _size(layers: list[tuple[Any, Any]]) -> int:
    return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in layers)
