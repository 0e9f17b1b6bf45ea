"""Content hashes of rows, and saving a dataset so that it appears whole or not at all.

The hash is SHA-256 over the dataset kind and each row as canonical JSON (sorted keys, no
spaces), in order, so the same rows always give the same hash whatever the files on disk look
like. `save_atomic` writes the HF dataset (`save_to_disk`) and a manifest into a temporary
directory beside the target and renames it into place; on any failure the temporary directory
is removed, and directories left by builds that were killed are removed by the next build of
the same target. The `datasets` library is imported only here, on first use.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agentrt.core.errors import InvalidInputError

__all__ = ["content_hash", "canonical", "save_atomic", "MANIFEST"]

MANIFEST = "agentrt-dataset.json"


def canonical(row: dict[str, Any]) -> str:
    """A row as canonical JSON."""
    return json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def content_hash(kind: str, rows: Iterable[dict[str, Any]]) -> str:
    """SHA-256 of the kind and the rows' canonical JSON, one per line, in order."""
    h = hashlib.sha256(f"agentrt-dataset:{kind}\n".encode())
    for row in rows:
        h.update(canonical(row).encode())
        h.update(b"\n")
    return h.hexdigest()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale(out: Path) -> None:
    """Remove temporary directories of builds of `out` whose process is gone."""
    for what in ("tmp", "old"):
        for tmp in out.parent.glob(f".{out.name}.{what}-*"):
            pid = tmp.name.rsplit(f".{what}-", 1)[-1].split("-", 1)[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(tmp, ignore_errors=True)


def _save_quietly(rows: list[dict[str, Any]], path: Path) -> None:
    """`save_to_disk` without its progress bars (the caller's setting is restored)."""
    from datasets import Dataset  # heavy: datasets
    from datasets.utils import logging as ds_logging  # heavy: datasets

    bars = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    try:
        Dataset.from_list(rows).save_to_disk(str(path))
    finally:
        if bars:
            ds_logging.enable_progress_bar()


def save_atomic(rows: list[dict[str, Any]], out: Path, manifest: dict[str, Any], *,
                overwrite: bool = False) -> Path:
    """Save rows as an HF dataset at `out`, atomically; return the absolute path.

    Raises:
        InvalidInputError: `out` exists (and `overwrite` is off) or cannot be written.
    """
    out = Path(out).expanduser().absolute()
    if out.exists() and not overwrite and (out.is_file() or any(out.iterdir())):
        raise InvalidInputError(f"{out} exists; choose another directory or overwrite it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InvalidInputError(f"cannot create {out.parent}: {e.strerror or e}") from None
    _clean_stale(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        _save_quietly(rows, tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n",
                                    encoding="utf-8")
        if out.exists():
            trash = out.parent / f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            os.rename(out, trash)
            os.rename(tmp, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
