"""`TraceStore`: write and read traces and their steps in SQLite or PostgreSQL.

One store per process and database; it is thread-safe (each call runs in its own session and
transaction on a pooled connection), and many processes may share one database. Opening it
migrates the schema to the newest revision. Writes are atomic per call: a trace is created with
its tags in one transaction, `add_steps` writes all of its steps or none.

A running trace has a lease (`agentrt.store.lease`): the store that starts or claims it is its
owner and refreshes its heartbeat from a daemon thread (one UPDATE for all of its running
traces every `lease_s / 4` seconds, from the first trace it starts until `close`). A running
trace whose owner is gone reads as "interrupted"; `claim_trace` takes it over atomically.
Writes that belong to a run (`add_steps`, `finish_trace`, `supersede_steps`, and checkpoint
writes through `fence`) are fenced: they succeed only for the process that owns the trace and
only while it is running, checked in the write's own transaction; any other writer gets a
StoreError and nothing changes. So a process that stalled past its lease, and lost its trace to
a resumer, cannot add to or finish the resumer's run.

This module does not know what a solve is or what steps mean; the runtime decides what to write.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic.util import CommandError
from filelock import Timeout as LockTimeout
from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from agentrt.core.errors import StoreError
from agentrt.store import rows
from agentrt.store.engine import (make_engine, mask_url, parse_url, reason, sqlite_path,
                                  transaction, upsert)
from agentrt.store.lease import Heartbeat, Owner
from agentrt.store.migrate import upgrade_to_head
from agentrt.store.models import Step, Trace, TraceTag
from agentrt.store.records import INTERRUPTED, RUNNING, StepRecord, TraceRecord, utcnow
from agentrt.core.types import Usage

__all__ = ["TraceStore"]

_COL = Trace.__table__.c
_STEPS = Step.__table__
# Setting a tag a trace has already overwrites its value.
_TAG_UPSERT = {d: upsert(d, TraceTag.__table__, ["trace_id", "key"], update=["value"])
               for d in ("sqlite", "postgresql")}


class TraceStore:
    """Traces and steps in a SQL database (SQLite file by default, PostgreSQL by URL).

    Attributes:
        url: the database URL with its password masked (safe to print).
        dialect: "sqlite" or "postgresql".
        lease_s: how long a running trace's owner may stay silent before it counts as gone.
        engine: the SQLAlchemy engine (full URL in `engine.url`), for modules that add tables.

    Example:
        >>> store = TraceStore("sqlite:///traces.db")  # doctest: +SKIP
        >>> tid = store.start_trace(problem="2+2?", requested_mode="fast",
        ...                         model_id="smollm2-135m", backend="hf")  # doctest: +SKIP
        >>> store.add_step(tid, StepRecord(kind="llm", name="answer"))  # doctest: +SKIP
        >>> store.finish_trace(tid, answer="4", status="ok", mode="fast")  # doctest: +SKIP
        >>> store.get_trace(tid[:8]).answer  # doctest: +SKIP
        '4'
    """

    def __init__(self, url: str, *, busy_timeout_s: float = 30.0, lease_s: float = 60.0) -> None:
        """Open the database at `url`, migrating its schema to the newest revision.

        Args:
            url: `sqlite:///path/to.db`, `sqlite://` (in memory, one process) or
                `postgresql://user@host/db` (psycopg 3 is used for `postgresql://`).
            busy_timeout_s: how long a SQLite writer waits for another writer.
            lease_s: a running trace whose heartbeat is older than this reads as interrupted
                (every process sharing the database should use the same value).

        Raises:
            ValueError: `busy_timeout_s` or `lease_s` is not a positive number.
            StoreError: the URL is invalid, or the database cannot be opened or migrated.
        """
        for name, value in (("busy_timeout_s", busy_timeout_s), ("lease_s", lease_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
        self.lease_s = float(lease_s)
        self._heartbeat: Heartbeat | None = None
        parsed = parse_url(url)
        self.url = mask_url(parsed)
        self.dialect = parsed.get_backend_name()
        path = sqlite_path(parsed)
        if path is not None and not path.parent.is_dir():
            raise StoreError(f"cannot open trace store at {self.url}: no directory "
                             f"{path.parent} (create it first; only the agentrt home is "
                             f"created automatically)")
        self._closed = False
        self._pid = os.getpid()
        self._fork_lock = threading.Lock()
        self.engine: Engine = make_engine(parsed, busy_timeout_s=busy_timeout_s)
        try:
            upgrade_to_head(self.engine, lock_timeout_s=max(busy_timeout_s * 4, 60.0))
        except (StoreError, SQLAlchemyError, CommandError, LockTimeout, OSError) as e:
            self.engine.dispose()
            raise StoreError(f"cannot open trace store at {self.url}: {reason(e)}"
                             f"{_read_only_hint(path)}") from e

    @classmethod
    def from_settings(cls, settings: Any) -> "TraceStore":
        """Open the store named by `settings.db_url`.

        The agentrt home (`settings.home`, where the default SQLite file lives) is created when
        missing; any other missing directory of a SQLite URL is an error, never created: a typo
        in a URL must not leave directories around, least of all at the filesystem root.

        Raises:
            StoreError: as `TraceStore()`, or the home cannot be created.
        """
        url = settings.db_url
        path = sqlite_path(parse_url(url))
        home = Path(settings.home)
        if path is not None and path.parent.absolute() == home.absolute():
            try:
                home.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(f"cannot create the agentrt home {home} for trace store "
                                 f"{path}: {e.strerror or e}") from None
        return cls(url)

    # ---------------------------------------------------------------- writing

    def start_trace(
        self,
        *,
        problem: str,
        requested_mode: str,
        model_id: str,
        backend: str,
        tags: Mapping[str, str] | None = None,
        meta: Mapping[str, Any] | None = None,
        trace_id: str | None = None,
    ) -> str:
        """Create a running trace (with its tags) and return its id.

        Args:
            problem: the problem text.
            requested_mode: the mode the caller asked for ("fast", "slow", "auto", ...).
            model_id: the model that will answer.
            backend: the chat backend's name.
            tags: labels such as {"eval_run": "r12", "dataset": "gsm8k"}.
            meta: any JSON-able details (odd values are converted, see `jsonsafe`).
            trace_id: a uuid chosen by the caller; a fresh uuid4 hex by default.

        Returns:
            The trace id (32 hex characters).

        Raises:
            ValueError: an argument has the wrong type or does not fit its column.
            StoreError: the id exists already, or the database failed.
        """
        row = Trace(
            id=rows.trace_id_arg(trace_id) if trace_id is not None else rows.new_trace_id(),
            problem=rows.text_arg("problem", problem, _COL.problem),
            requested_mode=rows.text_arg("requested_mode", requested_mode, _COL.requested_mode),
            model_id=rows.text_arg("model_id", model_id, _COL.model_id),
            backend=rows.text_arg("backend", backend, _COL.backend),
            status=RUNNING,
            meta=rows.meta_arg(meta),
            created_at=utcnow(),
            owner=self._lease(),
            heartbeat_at=utcnow(),
        )
        tag_rows = [
            TraceTag(trace_id=row.id, key=k, value=v) for k, v in rows.tags_arg(tags).items()
        ]
        with self.transaction("start a trace", write=True) as s:
            if s.get(Trace, row.id) is not None:
                raise StoreError(f"cannot start trace {row.id}: a trace with this id exists")
            s.add(row)
            s.flush()  # the trace before its tags: foreign keys
            s.add_all(tag_rows)
        return row.id

    def add_step(self, trace_id: str, step: StepRecord) -> int:
        """Append one step to a trace and return the step's id."""
        return self.add_steps(trace_id, [step])[0]

    def add_steps(self, trace_id: str, steps: list[StepRecord]) -> list[int]:
        """Append steps to a trace in one transaction (all or none); return their ids in order.

        Raises:
            ValueError: an item is not a StepRecord (or a dict that validates as one).
            NotFoundError: no trace has this id.
            StoreError: the trace already finished, another process owns it, or the database
                failed.
        """
        records = [s if isinstance(s, StepRecord) else StepRecord.model_validate(s) for s in steps]
        with self.transaction("add steps", write=True) as s:
            tid = self._running(s, trace_id, "add steps").id
            new = [rows.step_row(tid, r) for r in records]
            s.add_all(new)
            s.flush()
            return [r.id for r in new]

    def finish_trace(
        self,
        trace_id: str,
        *,
        answer: str | None,
        status: str,
        mode: str | None,
        verdict: str | None = None,
        usage: Usage | None = None,
        latency_s: float = 0.0,
        llm_calls: int = 0,
        tool_runs: int = 0,
        error: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a trace's outcome and totals; `meta` is merged into the stored meta (top level).

        Only the process that runs the trace can finish it, once.

        Raises:
            ValueError: an argument has the wrong type or does not fit its column.
            NotFoundError: no trace has this id.
            StoreError: the trace already finished, another process owns it, or the database
                failed.
        """
        if usage is not None and not isinstance(usage, Usage):
            raise ValueError(f"usage must be an agentrt.core.types.Usage, got {type(usage).__name__}")
        usage = usage or Usage()
        values = {
            "answer": rows.text_arg("answer", answer, _COL.answer, optional=True),
            "status": rows.text_arg("status", status, _COL.status),
            "mode": rows.text_arg("mode", mode, _COL.mode, optional=True),
            "verdict": rows.text_arg("verdict", verdict, _COL.verdict, optional=True),
            "error": rows.text_arg("error", error, _COL.error, optional=True),
            "prompt_tokens": rows.count_arg("usage.prompt_tokens", usage.prompt_tokens),
            "completion_tokens": rows.count_arg("usage.completion_tokens", usage.completion_tokens),
            "latency_s": rows.count_arg("latency_s", latency_s, real=True),
            "llm_calls": rows.count_arg("llm_calls", llm_calls),
            "tool_runs": rows.count_arg("tool_runs", tool_runs),
        }
        extra = rows.meta_arg(meta)
        with self.transaction("finish a trace", write=True) as s:
            row = self._running(s, trace_id, "finish a trace", update=True)
            for name, value in values.items():
                setattr(row, name, value)
            row.finished_at = utcnow()
            if extra:
                row.meta = {**(row.meta or {}), **extra}

    def claim_trace(self, seen: TraceRecord) -> bool:
        """Take over a trace if it is still as `seen` (a compare-and-set on its lease).

        The trace becomes running again, owned by this process with a fresh heartbeat, only
        while its stored status, owner and heartbeat are those of `seen` (read earlier with
        `get_trace`): of several processes claiming one trace at once, exactly one wins. Which
        traces may be taken over (finished ones, `orphaned` ones) is the caller's decision.

        Returns:
            True when this process now owns the trace; False when it changed since `seen`.

        Raises:
            StoreError: the database failed.
        """
        stored = RUNNING if seen.orphaned else seen.status
        table = Trace.__table__
        stmt = (update(table)
                .where(table.c.id == seen.id, table.c.status == stored,
                       table.c.owner.is_not_distinct_from(seen.owner),
                       table.c.heartbeat_at.is_not_distinct_from(seen.heartbeat_at))
                .values(status=RUNNING, owner=self._lease(), heartbeat_at=utcnow(),
                        finished_at=None))
        with self.transaction("claim a trace", write=True) as s:
            return s.execute(stmt).rowcount == 1

    def supersede_steps(self, trace_id: str, step_ids: list[int]) -> int:
        """Mark steps of a trace as superseded (their task ran again); return how many changed.

        Raises:
            NotFoundError: no trace has this id.
            StoreError: the trace already finished, another process owns it, or the database
                failed.
        """
        ids = [rows.count_arg("step id", i) for i in step_ids]
        with self.transaction("supersede steps", write=True) as s:
            tid = self._running(s, trace_id, "supersede steps").id
            if not ids:
                return 0
            stmt = (update(_STEPS).where(_STEPS.c.trace_id == tid, _STEPS.c.id.in_(ids),
                                         _STEPS.c.superseded.is_(False))
                    .values(superseded=True))
            return s.execute(stmt).rowcount

    def tag(self, trace_id: str, **tags: str) -> None:
        """Set tags on a trace; a key it already has gets the new value.

        Raises:
            ValueError: a tag value is not a non-empty string.
            NotFoundError: no trace has this id.
        """
        clean = rows.tags_arg(tags)
        if not clean:
            return
        with self.transaction("tag a trace", write=True) as s:
            tid = rows.require_trace_id(s, trace_id)
            s.execute(_TAG_UPSERT[self.dialect],
                      [{"trace_id": tid, "key": k, "value": v} for k, v in clean.items()])

    def fence(self, session: Session, trace_id: str, action: str) -> None:
        """Refuse a write in `session` that belongs to the run of trace `trace_id` unless this
        process runs it (for tables written beside a trace, such as graph checkpoints).

        Call it inside the write's transaction (`transaction(..., write=True)`): the trace row
        stays locked until that transaction ends. An id that names no trace passes, so the same
        writer serves ids that are not traces.

        Raises:
            StoreError: the trace already finished, or another process owns it.
        """
        rows.require_running(session, trace_id, Owner.current().key, action, missing_ok=True)

    def _running(self, s: Session, trace_id: str, action: str, *, update: bool = False) -> Trace:
        row = rows.require_running(s, trace_id, Owner.current().key, action, update=update)
        assert row is not None  # only `missing_ok` gives None
        return row

    # ---------------------------------------------------------------- reading

    def get_trace(self, trace_id: str, *, steps: bool = True,
                  superseded: bool = False) -> TraceRecord:
        """The trace with this id, or with this unique id prefix (at least 6 characters).

        Args:
            trace_id: the id or a unique prefix.
            steps: load its steps.
            superseded: include steps a resumed solve superseded (left out by default, so
                that whatever counts or learns from steps sees each call once).

        Raises:
            NotFoundError: no trace matches, or the prefix is too short or ambiguous.
        """
        with self.transaction("read a trace") as s:
            row = rows.resolve(s, trace_id)
            tags = rows.tags_of(s, [row.id]).get(row.id, {})
            found: list[StepRecord] = []
            if steps:
                q = select(Step).where(Step.trace_id == row.id).order_by(Step.id)
                if not superseded:
                    q = q.where(Step.superseded.is_(False))
                found = [rows.step_record(r) for r in s.scalars(q)]
            return rows.trace_record(row, tags, found, lease_s=self.lease_s)

    def list_traces(
        self,
        *,
        limit: int = 20,
        offset: int = 0,
        status: str | None = None,
        mode: str | None = None,
        tags: Mapping[str, str] | None = None,
        since: datetime | None = None,
    ) -> list[TraceRecord]:
        """Traces matching every given filter, newest first, without their steps.

        Args:
            limit: at most this many; offset: skip this many (for paging).
            status, mode: exact values; tags: every key=value must be present;
            since: created at or after this time (naive means UTC).
                Status "interrupted" also finds running traces whose owner is gone (the
                query for work nobody owns); "running" finds only those still owned.
        """
        limit, offset = rows.count_arg("limit", limit), rows.count_arg("offset", offset)
        with self.transaction("list traces") as s:
            conds = self._filters(s, status=status, mode=mode, tags=tags, since=since)
            q = select(Trace).where(*conds).order_by(Trace.created_at.desc(), Trace.id.desc())
            found = list(s.scalars(q.limit(limit).offset(offset)))
            tags_by_id = rows.tags_of(s, [r.id for r in found])
            return [rows.trace_record(r, tags_by_id.get(r.id, {}), [], lease_s=self.lease_s)
                    for r in found]

    def count_traces(
        self,
        *,
        status: str | None = None,
        mode: str | None = None,
        tags: Mapping[str, str] | None = None,
        since: datetime | None = None,
    ) -> int:
        """How many traces `list_traces` would find with the same filters and no limit."""
        with self.transaction("count traces") as s:
            conds = self._filters(s, status=status, mode=mode, tags=tags, since=since)
            return int(s.scalar(select(func.count()).select_from(Trace).where(*conds)) or 0)

    def _filters(self, s: Session, *, status: str | None, **kw: Any) -> list[Any]:
        orphans = (rows.orphan_ids(s, lease_s=self.lease_s)
                   if status in (RUNNING, INTERRUPTED) else None)
        return rows.filters(status=status, orphans=orphans, **kw)

    # ---------------------------------------------------------------- leases

    def _lease(self) -> str:
        """This process's owner key; starts the heartbeat on the first running trace."""
        self._after_fork()
        with self._fork_lock:
            if self._heartbeat is None:
                self._heartbeat = Heartbeat(self._beat, self.lease_s / 4)
        return Owner.current().key

    def _beat(self) -> None:
        """Refresh the heartbeat of every running trace this process owns (one UPDATE)."""
        table = Trace.__table__
        stmt = (update(table).where(table.c.owner == Owner.current().key,
                                    table.c.status == RUNNING)
                .values(heartbeat_at=utcnow()))
        with self.transaction("refresh trace leases", write=True) as s:
            s.execute(stmt)

    # ---------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Stop the heartbeat and close every pooled connection; the store cannot be used
        afterwards (traces it still runs read as interrupted once their lease runs out)."""
        with self._fork_lock:
            beat, self._heartbeat = self._heartbeat, None
        if beat is not None and self._pid == os.getpid():
            beat.stop()
        self._closed = True
        self.engine.dispose()

    def __enter__(self) -> "TraceStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TraceStore({self.url!r})"

    @contextmanager
    def transaction(self, action: str, *, write: bool = False) -> Iterator[Session]:
        """A session in one transaction on this store's database (`engine.transaction`).

        Args:
            action: what it does, for error messages ("cannot <action> in <url>: ...").
            write: a write transaction (`BEGIN IMMEDIATE` on SQLite).

        Raises:
            StoreError: the store is closed, or the database failed.
        """
        if self._closed:
            raise StoreError(f"cannot {action}: the trace store {self.url} is closed")
        self._after_fork()
        with transaction(self.engine, action, write=write, where=self.url) as s:
            yield s

    def _after_fork(self) -> None:
        # Pooled connections must not cross a fork; a child starts its own pool.
        if os.getpid() != self._pid:
            with self._fork_lock:
                if os.getpid() != self._pid:
                    self.engine.dispose(close=False)
                    self._heartbeat = None  # the parent's thread did not come along
                    self._pid = os.getpid()


def _read_only_hint(path: Path | None) -> str:
    """Why a SQLite file in a directory this process cannot write may not open, when so."""
    if path is None or not path.is_file() or os.access(path.parent, os.W_OK):
        return ""
    if Path(f"{path}-shm").exists():
        return ""
    return (f" (its directory {path.parent} is not writable, and to read a WAL database SQLite "
            f"must create {path.name}-wal and {path.name}-shm beside it: read it while a process "
            f"that can write there has it open, or from a copy)")
