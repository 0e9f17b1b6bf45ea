"""Registered model versions as models: `promoted`, `v3` or `mv-1a2b3c` instead of a path.

`resolve_version` reads the model registry (the `model_versions` and `model_pointers` tables
of the trace store's database) and returns the version a reference names. `VersionedBackend`
wraps a local engine (hf, vllm) built from that version's directory; for `promoted` it looks
at the pointer again between requests (at most every `poll_s` seconds) and, when the pointer
moved, loads the new version and swaps it in. Requests already running finish on the old
engine, which is closed once the last of them is done, so a server picks up a newly promoted
model without a restart and without failing a request.

Its `model_id` is `<base model>@<reference>` (`smollm2-135m@promoted`), stable across swaps
so clients keep one name; `version` (an `agentrt.store.records.ModelVersion`) says which version
answers now. This module reads the registry through the store's queries
(`agentrt.store.model_versions`); writing it (registering, gating, promoting) is
`agentrt.training.registry`'s job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentrt.core.config import default_home
from agentrt.core.errors import ModelNotFoundError
from agentrt.core.types import ChatRequest, ChatResponse
from agentrt.llm.base import _NUMBER, PROMOTED, is_version_ref, load_backend
from agentrt.store import TraceStore
from agentrt.store.model_versions import find_versions
from agentrt.store.records import ModelVersion

__all__ = ["PROMOTED", "ModelVersion", "VersionRef", "is_version_ref", "find_version",
           "resolve_version", "default_db_url", "VersionedBackend"]

#: The former name of what `resolve_version` returns; the registry's `ModelVersion` itself.
VersionRef = ModelVersion


def default_db_url(home: str | Path | None = None) -> str:
    """The default trace store URL (as `Settings.db_url` without a `database_url`)."""
    root = Path(home).expanduser() if home is not None else default_home()
    return f"sqlite:///{root / 'agentrt.db'}"


def _open(database_url: str) -> Any:
    return TraceStore(database_url)


def find_version(ref: str, *, store: Any) -> ModelVersion:
    """The registered version a reference names, without checking its directory.

    Args:
        ref: `promoted`, `v<N>` or a version id (a unique prefix is enough).
        store: an open `TraceStore`.

    Raises:
        ModelNotFoundError: nothing promoted, no such version, or an ambiguous prefix.
    """
    if ref == PROMOTED:
        found = find_versions(store.engine, pointer=PROMOTED)
        if found is None:
            raise ModelNotFoundError("no model version is promoted yet; train one with "
                                     "`agentrt iterate` or promote one with "
                                     "`agentrt iterate promote`", model=ref)
    elif (m := _NUMBER.match(ref)) is not None:
        found = find_versions(store.engine, number=int(m.group(1)))
    else:
        found = find_versions(store.engine, prefix=ref)
    if len(found) != 1:
        why = "no such version" if not found else "ambiguous version id prefix"
        raise ModelNotFoundError(f"model version {ref!r}: {why}", model=ref)
    return found[0]


def resolve_version(ref: str, database_url: str | None = None,
                    home: str | Path | None = None, *, store: Any = None) -> ModelVersion:
    """The registered version a reference names, with a model directory that exists.

    Args:
        ref: `promoted`, `v<N>` or a version id (`mv-...`, a unique prefix is enough).
        database_url: the registry's database; the default SQLite file under `home` if None.
        home: agentrt home, for the default database.
        store: an open `TraceStore` to read through instead of opening one.

    Raises:
        ModelNotFoundError: not a reference, nothing promoted, no such version, or its
            directory is gone.
    """
    ref = (ref or "").strip()
    if not is_version_ref(ref):
        raise ModelNotFoundError(f"{ref!r} is not a model version reference", model=ref)
    owned = store is None
    store = store if store is not None else _open(database_url or default_db_url(home))
    try:
        found = find_version(ref, store=store)
    finally:
        if owned:
            store.close()
    if not (Path(found.path) / "config.json").is_file():
        raise ModelNotFoundError(f"model version v{found.number} ({found.id}) has no model "
                                 f"directory at {found.path}", model=ref)
    return found


class VersionedBackend:
    """A local engine serving a registered version; `promoted` follows the pointer.

    Args:
        engine: registry name of the engine to build (`hf`, `vllm`).
        ref: `promoted`, `v<N>` or a version id.
        database_url: the registry's database (default: the SQLite file under `home`).
        poll_s: how often, at most, the promoted pointer is read again.
        **options: options for the engine (device, home, max_batch_size, ...).

    Raises:
        ModelNotFoundError: the reference names no usable version.
    """

    def __init__(self, engine: str, ref: str, *, database_url: str | None = None,
                 poll_s: float = 2.0, **options: Any):
        self._engine, self.ref, self.poll_s = engine, ref.strip(), poll_s
        self._options = {k: v for k, v in options.items() if k != "model"}
        self._store = _open(database_url or default_db_url(options.get("home")))
        self._lock, self._swap = threading.Lock(), threading.Lock()
        self._busy: dict[int, int] = {}
        self._retired: list[Any] = []
        try:
            self.version = resolve_version(self.ref, store=self._store)
            self._inner = self._build(self.version)
        except BaseException:
            self._store.close()
            raise
        self._checked = time.monotonic()
        self.name = self._inner.name
        self.supports_json_schema = bool(getattr(self._inner, "supports_json_schema", False))
        self.model_id = f"{self.version.base_model}@{self.ref}"

    @classmethod
    def from_options(cls, model: str, engine: str = "hf", **options: Any) -> "VersionedBackend":
        """Build from registry options (`model` is the version reference)."""
        return cls(engine, model, **options)

    def _build(self, version: ModelVersion) -> Any:
        return load_backend(self._engine, version.path, **self._options)

    def _follow(self) -> None:
        """Swap in a newly promoted version (one thread loads it; the others go on meanwhile)."""
        if self.ref != PROMOTED or time.monotonic() - self._checked < self.poll_s:
            return
        if not self._swap.acquire(blocking=False):
            return
        try:
            self._checked = time.monotonic()
            try:
                found = resolve_version(self.ref, store=self._store)
            except ModelNotFoundError:
                return  # the pointer was cleared or its directory vanished: keep serving
            if found.id == self.version.id:
                return
            fresh = self._build(found)
            with self._lock:
                old, self._inner, self.version = self._inner, fresh, found
                self._retired.append(old)
            self._reap()
        finally:
            self._swap.release()

    def _acquire(self) -> Any:
        self._follow()
        with self._lock:
            inner = self._inner
            self._busy[id(inner)] = self._busy.get(id(inner), 0) + 1
            return inner

    def _release(self, inner: Any) -> None:
        with self._lock:
            self._busy[id(inner)] -= 1
        self._reap()

    def _reap(self) -> None:
        """Close retired engines that no request uses any more."""
        with self._lock:
            idle = [b for b in self._retired if not self._busy.get(id(b))]
            self._retired = [b for b in self._retired if b not in idle]
            for b in idle:
                self._busy.pop(id(b), None)
        for b in idle:
            b.close()

    def chat(self, request: ChatRequest) -> ChatResponse:
        inner = self._acquire()
        try:
            return inner.chat(request)
        finally:
            self._release(inner)

    def chat_batch(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        inner = self._acquire()
        try:
            return inner.chat_batch(requests)
        finally:
            self._release(inner)

    def stream(self, request: ChatRequest) -> Iterator[str]:
        inner = self._acquire()
        try:
            result = yield from inner.stream(request)
            return result
        finally:
            self._release(inner)

    def count_tokens(self, text: str) -> int:
        inner = self._acquire()
        try:
            return inner.count_tokens(text)
        finally:
            self._release(inner)

    def close(self) -> None:
        with self._lock:
            engines = [self._inner, *self._retired]
            self._retired = []
        for b in engines:
            b.close()
        self._store.close()
