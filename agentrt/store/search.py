"""Searching traces for browsing: filters on mode, status, tag, model and text, one page at a time.

`search_traces` is `TraceStore.list_traces` plus what a person browsing thousands of traces
asks for: a `key=value` tag, a model (the backend's model id, or the API model a request
named, tag `api_model`), a case-insensitive substring of the problem or the answer, and the
total count of matches so pages can be numbered. `steps_after` gives the steps a trace gained
since the last one seen, for following a running solve. Both run in one read transaction on
the store's engine, with the indexes the store already has (newest first on `created_at`, tags
on `key, value`, steps on `trace_id, id`).

This module knows the tables; it does not know who browses them or how they are shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import exists, func, or_, select

from agentrt.core.errors import InvalidInputError
from agentrt.store import rows
from agentrt.store.models import Step, Trace, TraceTag
from agentrt.store.records import StepRecord, TraceRecord
from agentrt.store.store import TraceStore

__all__ = ["TraceQuery", "TracePage", "search_traces", "steps_after", "parse_tag"]

_MAX_TEXT = 200


@dataclass(frozen=True)
class TraceQuery:
    """What to look for; empty strings mean "any".

    Attributes:
        mode, status: exact values ("interrupted" also finds orphaned running traces).
        tag: `key=value`, or a bare `key` for any value.
        model: the backend's model id or the API model a request named.
        text: a case-insensitive substring of the problem or the answer.
    """

    mode: str = ""
    status: str = ""
    tag: str = ""
    model: str = ""
    text: str = ""

    def __post_init__(self) -> None:
        if len(self.text) > _MAX_TEXT:
            raise InvalidInputError(f"search text is longer than {_MAX_TEXT} characters")
        if self.tag:
            parse_tag(self.tag)


@dataclass
class TracePage:
    """One page of matches (newest first) and how many match in all."""

    traces: list[TraceRecord] = field(default_factory=list)
    total: int = 0


def parse_tag(tag: str) -> tuple[str, str | None]:
    """`key=value` -> (key, value); `key` -> (key, None).

    Raises:
        InvalidInputError: the key is empty.
    """
    key, eq, value = tag.partition("=")
    if not key.strip():
        raise InvalidInputError(f"tag filter {tag!r} has no key (write key=value or key)")
    return key.strip(), (value.strip() if eq else None)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _conditions(store: TraceStore, s, query: TraceQuery) -> list:
    conds = store._filters(s, status=query.status or None, mode=query.mode or None)
    if query.tag:
        key, value = parse_tag(query.tag)
        tagged = exists().where(TraceTag.trace_id == Trace.id, TraceTag.key == key)
        if value is not None:
            tagged = tagged.where(TraceTag.value == value)
        conds.append(tagged)
    if query.model:
        by_api = exists().where(TraceTag.trace_id == Trace.id, TraceTag.key == "api_model",
                                TraceTag.value == query.model)
        conds.append(or_(Trace.model_id == query.model, by_api))
    if query.text:
        pattern = _like(query.text)
        conds.append(or_(Trace.problem.ilike(pattern, escape="\\"),
                         Trace.answer.ilike(pattern, escape="\\")))
    return conds


def search_traces(store: TraceStore, query: TraceQuery, *, limit: int = 50,
                  offset: int = 0) -> TracePage:
    """Traces matching `query`, newest first, `limit` from `offset`, with the total count.

    Raises:
        InvalidInputError: a bad tag filter or search text; ValueError: bad limit or offset.
        StoreError: the database failed.
    """
    limit, offset = rows.count_arg("limit", limit), rows.count_arg("offset", offset)
    with store.transaction("search traces") as s:
        conds = _conditions(store, s, query)
        total = int(s.scalar(select(func.count()).select_from(Trace).where(*conds)) or 0)
        q = (select(Trace).where(*conds).order_by(Trace.created_at.desc(), Trace.id.desc())
             .limit(limit).offset(offset))
        found = list(s.scalars(q))
        tags = rows.tags_of(s, [r.id for r in found])
        return TracePage([rows.trace_record(r, tags.get(r.id, {}), [], lease_s=store.lease_s)
                          for r in found], total)


def steps_after(store: TraceStore, trace_id: str, after: int) -> list[StepRecord]:
    """Steps of the trace with ids above `after`, in order (superseded ones left out).

    Raises:
        NotFoundError: no such trace.
    """
    with store.transaction("read new steps") as s:
        tid = rows.require_trace_id(s, trace_id)
        q = (select(Step).where(Step.trace_id == tid, Step.id > after,
                                Step.superseded.is_(False)).order_by(Step.id))
        return [rows.step_record(r) for r in s.scalars(q)]
