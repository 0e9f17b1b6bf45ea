"""Between records and rows: argument checks, record <-> ORM row mapping, filters, id lookup.

Everything here runs inside a session the caller (`TraceStore`) opened; nothing here opens
connections or transactions, handles database errors or knows which database it talks to.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.orm import Session

from agentrt.core.errors import NotFoundError, StoreError
from agentrt.store.jsonsafe import clean_text, json_safe
from agentrt.store.lease import orphaned
from agentrt.store.models import Step, Trace, TraceTag
from agentrt.store.records import INTERRUPTED, RUNNING, StepRecord, TraceRecord, as_utc, utcnow
from agentrt.core.types import Usage

__all__ = [
    "MIN_PREFIX",
    "new_trace_id",
    "trace_id_arg",
    "text_arg",
    "count_arg",
    "tags_arg",
    "meta_arg",
    "step_row",
    "step_record",
    "trace_record",
    "filters",
    "orphan_ids",
    "resolve",
    "require_trace",
    "require_trace_id",
    "require_running",
    "tags_of",
]

MIN_PREFIX = 6
_HEX = re.compile(r"[0-9a-f]+")


def new_trace_id() -> str:
    """A fresh trace id: uuid4 as 32 lowercase hex characters."""
    return uuid.uuid4().hex


def trace_id_arg(value: Any) -> str:
    """Normalize a full trace id (hex or dashed uuid); ValueError if it is not one."""
    if not isinstance(value, str):
        raise ValueError(f"trace_id must be a string, got {type(value).__name__}")
    try:
        return uuid.UUID(value.strip()).hex
    except ValueError:
        raise ValueError(f"trace_id must be a uuid (32 hex characters), got {value!r}") from None


def text_arg(name: str, value: Any, column: Any, *, optional: bool = False) -> str | None:
    """Check a text argument against its column (type, emptiness, length) and clean it."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    limit = getattr(column.type, "length", None)
    if limit is not None:
        if not value.strip():
            raise ValueError(f"{name} must not be empty")
        if len(value) > limit:
            raise ValueError(f"{name} is {len(value)} characters long; at most {limit} fit")
    return clean_text(value)


def count_arg(name: str, value: Any, *, real: bool = False) -> Any:
    """Check that a count (or, with `real`, a duration) is a number >= 0."""
    kinds = (int, float) if real else (int,)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < 0:
        what = "a number" if real else "an integer"
        raise ValueError(f"{name} must be {what} >= 0, got {value!r}")
    return float(value) if real else int(value)


def tags_arg(tags: Mapping[str, str] | None) -> dict[str, str]:
    """Check tag keys and values (non-empty strings up to the column lengths)."""
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise ValueError(f"tags must be a mapping of str to str, got {type(tags).__name__}")
    key_col, value_col = TraceTag.__table__.c.key, TraceTag.__table__.c.value
    return {
        text_arg("tag key", k, key_col): text_arg(f"tag {k!r}", v, value_col)  # type: ignore[misc]
        for k, v in tags.items()
    }


def meta_arg(meta: Any) -> dict[str, Any]:
    """Check that `meta` is a dict (or None) and make it JSON-safe."""
    if meta is None:
        return {}
    if not isinstance(meta, Mapping):
        raise ValueError(f"meta must be a dict, got {type(meta).__name__}")
    return json_safe(dict(meta))


def step_row(trace_id: str, step: StepRecord) -> Step:
    """An ORM row for `step`, its text cleaned and its JSON made safe."""
    return Step(
        trace_id=trace_id,
        kind=step.kind,
        name=clean_text(step.name),
        node=None if step.node is None else clean_text(step.node),
        round=step.round,
        status=step.status,
        inputs=json_safe(step.inputs),
        outputs=json_safe(step.outputs),
        prompt_tokens=step.prompt_tokens,
        completion_tokens=step.completion_tokens,
        latency_s=step.latency_s,
        error=None if step.error is None else clean_text(step.error),
        template=None if step.template is None else clean_text(step.template),
        template_hash=step.template_hash,
        started_at=step.started_at,
        task=step.task,
        superseded=step.superseded,
    )


def step_record(row: Step) -> StepRecord:
    """The record of a stored step."""
    return StepRecord.model_validate({c: getattr(row, c) for c in StepRecord.model_fields})


def trace_record(row: Trace, tags: dict[str, str], steps: list[StepRecord], *,
                 lease_s: float) -> TraceRecord:
    """The record of a stored trace with its tags and (possibly no) steps; a running trace whose
    owner is gone reads as interrupted (`orphaned`)."""
    lost = row.status == RUNNING and orphaned(row.owner, row.heartbeat_at, now=utcnow(),
                                              lease_s=lease_s)
    return TraceRecord(
        id=row.id,
        problem=row.problem,
        requested_mode=row.requested_mode,
        mode=row.mode,
        answer=row.answer,
        status=INTERRUPTED if lost else row.status,
        verdict=row.verdict,
        model_id=row.model_id,
        backend=row.backend,
        usage=Usage(prompt_tokens=row.prompt_tokens, completion_tokens=row.completion_tokens),
        llm_calls=row.llm_calls,
        tool_runs=row.tool_runs,
        latency_s=row.latency_s,
        error=row.error,
        meta=row.meta or {},
        tags=tags,
        created_at=row.created_at,
        finished_at=row.finished_at,
        owner=row.owner,
        heartbeat_at=row.heartbeat_at,
        orphaned=lost,
        steps=steps,
    )


def filters(
    *,
    status: str | None = None,
    mode: str | None = None,
    tags: Mapping[str, str] | None = None,
    since: datetime | None = None,
    orphans: list[str] | None = None,
) -> list[ColumnElement[bool]]:
    """WHERE clauses for `list_traces` and `count_traces`; all of them must hold.

    `orphans` (see `orphan_ids`) are running traces nobody runs: status "interrupted" finds
    them too, status "running" leaves them out.
    """
    conds: list[ColumnElement[bool]] = []
    if status == INTERRUPTED and orphans:
        conds.append(or_(Trace.status == INTERRUPTED, Trace.id.in_(orphans)))
    elif status == RUNNING and orphans:
        conds.extend([Trace.status == RUNNING, Trace.id.not_in(orphans)])
    elif status is not None:
        conds.append(Trace.status == status)
    if mode is not None:
        conds.append(Trace.mode == mode)
    if since is not None:
        if not isinstance(since, datetime):
            raise ValueError(f"since must be a datetime, got {type(since).__name__}")
        conds.append(Trace.created_at >= as_utc(since))
    for key, value in tags_arg(tags).items():
        tagged = exists().where(
            TraceTag.trace_id == Trace.id, TraceTag.key == key, TraceTag.value == value
        )
        conds.append(tagged)
    return conds


def orphan_ids(session: Session, *, lease_s: float) -> list[str]:
    """Ids of the traces stored as running whose owner is gone (see `agentrt.store.lease`)."""
    now = utcnow()
    stmt = select(Trace.id, Trace.owner, Trace.heartbeat_at).where(Trace.status == RUNNING)
    return [tid for tid, owner, beat in session.execute(stmt)
            if orphaned(owner, beat, now=now, lease_s=lease_s)]


def resolve(session: Session, ident: Any) -> Trace:
    """The trace whose id is `ident` or starts with it (>= 6 hex characters, unique).

    Raises:
        NotFoundError: no trace matches, or the prefix is too short or ambiguous (then
            `details["candidates"]` lists the first matching ids).
    """
    key = ident.strip().lower().replace("-", "") if isinstance(ident, str) else ""
    if len(key) == 32 and _HEX.fullmatch(key):
        row = session.get(Trace, key)
        if row is None:
            raise NotFoundError(f"no trace with id {key}", id=key)
        return row
    if not (MIN_PREFIX <= len(key) < 32 and _HEX.fullmatch(key)):
        raise NotFoundError(
            f"no trace with id {ident!r}: give the full id or a prefix of "
            f"{MIN_PREFIX} to 31 hex characters",
            id=str(ident),
        )
    # The range lets the primary-key index do the work; LIKE keeps the match exact.
    stmt = (
        select(Trace)
        .where(Trace.id >= key, Trace.id < key + "g", Trace.id.like(key + "%"))
        .order_by(Trace.id)
        .limit(3)
    )
    rows = list(session.scalars(stmt))
    if not rows:
        raise NotFoundError(f"no trace id starts with {key}", id=key)
    if len(rows) > 1:
        shown = ", ".join(r.id for r in rows[:2]) + (", ..." if len(rows) > 2 else "")
        raise NotFoundError(
            f"trace id prefix {key} is ambiguous: it matches {shown}; give more characters",
            id=key,
            candidates=[r.id for r in rows],
        )
    return rows[0]


def require_trace(session: Session, trace_id: Any, *, lock: bool = False) -> Trace:
    """The trace with exactly this id (row-locked on PostgreSQL with `lock`), or NotFoundError."""
    tid = _exact_id(trace_id)
    row = session.get(Trace, tid, with_for_update=True if lock else None)
    if row is None:
        raise NotFoundError(f"no trace with id {tid}", id=tid)
    return row


def require_trace_id(session: Session, trace_id: Any) -> str:
    """The normalized id of an existing trace, without loading the row; else NotFoundError."""
    tid = _exact_id(trace_id)
    if session.scalar(select(Trace.id).where(Trace.id == tid)) is None:
        raise NotFoundError(f"no trace with id {tid}", id=tid)
    return tid


def require_running(session: Session, trace_id: Any, owner: str, action: str, *,
                    update: bool = False, missing_ok: bool = False) -> Trace | None:
    """The trace with exactly this id, when `owner` runs it: stored as running, owned by `owner`.

    The row stays locked until the transaction ends (on PostgreSQL `FOR SHARE`, or `FOR UPDATE`
    with `update`; a SQLite write transaction holds the database's write lock already), so a
    takeover (`claim_trace`) cannot slip in between this check and the caller's write.

    Args:
        owner: the owner key of the process that wants to write.
        action: what the write does, for the error message ("cannot <action>: ...").
        update: the caller changes the trace row itself.
        missing_ok: no trace with this id (or an id that is not a trace id) gives None.

    Raises:
        NotFoundError: no trace has this id (unless `missing_ok`).
        StoreError: the trace already finished, or another process owns it.
    """
    if missing_ok:
        try:
            tid = trace_id_arg(trace_id)
        except ValueError:
            return None
    else:
        tid = _exact_id(trace_id)
    row = session.get(Trace, tid, with_for_update={"read": not update})
    if row is None:
        if missing_ok:
            return None
        raise NotFoundError(f"no trace with id {tid}", id=tid)
    if row.owner != owner:
        done = f" that finished it with status {row.status!r}" if row.status != RUNNING else ""
        raise StoreError(f"cannot {action}: trace {tid} is owned by another process "
                         f"({row.owner or 'no owner'}){done}, not this one; a process that "
                         f"stalls past its lease loses its trace to a resumer",
                         id=tid, owner=row.owner, status=row.status)
    if row.status != RUNNING:
        raise StoreError(f"cannot {action}: trace {tid} already finished with status "
                         f"{row.status!r}", id=tid, owner=row.owner, status=row.status)
    return row


def _exact_id(trace_id: Any) -> str:
    try:
        return trace_id_arg(trace_id)
    except ValueError:
        raise NotFoundError(f"no trace with id {trace_id!r}", id=str(trace_id)) from None


def tags_of(session: Session, trace_ids: list[str]) -> dict[str, dict[str, str]]:
    """Tags of each trace in `trace_ids` (traces without tags are absent)."""
    out: dict[str, dict[str, str]] = {}
    if not trace_ids:
        return out
    stmt = select(TraceTag).where(TraceTag.trace_id.in_(trace_ids)).order_by(TraceTag.key)
    for tag in session.scalars(stmt):
        out.setdefault(tag.trace_id, {})[tag.key] = tag.value
    return out
