"""Choosing the traces a dataset is built from, and judging each one.

Traces are read page by page through `TraceStore.list_traces` (tag and date filters run in the
database; the model filter here), newest first up to the limit, only those created before the
build started, deduplicated and put in creation order, so that a rebuild over the same store
yields the same rows. Running traces are skipped; every selected trace is loaded with its steps
and judged (`agentrt.data_synth.verify.judge_trace`). An empty selection is an error naming the filters.
This module builds no rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from agentrt.core.errors import InvalidInputError
from agentrt.store.records import RUNNING, utcnow
from agentrt.core.types import Problem
from agentrt.data_synth.compile.spec import BuildSpec
from agentrt.data_synth.verify import TraceJudge, judge_trace

__all__ = ["select_traces", "describe_filters"]

_PAGE = 500


def _pages(store: Any, tags: dict[str, str], since: datetime | None) -> Iterator[Any]:
    """Matching traces, newest first (a trace added meanwhile may repeat one: callers dedupe)."""
    offset = 0
    while True:
        page = store.list_traces(limit=_PAGE, offset=offset, tags=tags or None, since=since)
        yield from page
        if len(page) < _PAGE:
            return
        offset += len(page)


def describe_filters(spec: BuildSpec) -> str:
    """The selection filters in words, for error messages."""
    parts = [f"{k}={v}" for k, v in (("family", spec.family), ("model_id", spec.model_id),
                                     ("since", spec.since)) if v is not None]
    parts += [f"tag {k}={v}" for k, v in sorted(spec.tags.items())]
    return ", ".join(parts) or "no filters"


def select_traces(store: Any, spec: BuildSpec,
                  problems: Mapping[str, Problem] | None = None) -> list[TraceJudge]:
    """The finished traces matching the spec's filters, oldest first, judged, with steps.

    Raises:
        InvalidInputError: no finished trace matches the filters.
    """
    tags = dict(spec.tags)
    if spec.family:
        tags["family"] = spec.family
    started = utcnow()
    seen: dict[str, Any] = {}
    for trace in _pages(store, tags, spec.since):
        if trace.id in seen or trace.status == RUNNING or trace.created_at > started:
            continue
        if spec.model_id is not None and trace.model_id != spec.model_id:
            continue
        seen[trace.id] = trace
        if len(seen) >= spec.limit:  # the newest `limit` matching traces
            break
    chosen = sorted(seen.values(), key=lambda t: (t.created_at, t.id))
    if not chosen:
        raise InvalidInputError(f"no finished traces match the selection ({describe_filters(spec)})"
                                f" in {getattr(store, 'url', 'the store')}")
    return [judge_trace(store.get_trace(t.id), problems) for t in chosen]
