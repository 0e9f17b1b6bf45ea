"""Saved router models: content-hashed JSON files plus a versioned manifest under the home dir.

Layout: `<home>/routers/router-<hash16>.json` (the model as canonical JSON: sorted keys, no
version or hash inside, so the hash is of the content alone) and `<home>/routers/manifest.json`
(one entry per version: number, hash, file, creation time, threshold, signals, headline metrics).
Saving the same model twice gives the same version. Writes are atomic (temp file + rename) and
serialised by a file lock, so concurrent trainers cannot lose a version. Loading re-hashes the
file and refuses one that was changed after saving.

This module knows nothing about how models are trained or used.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from filelock import FileLock
from pydantic import BaseModel, Field, ValidationError

from agentrt.core.errors import ConfigError, NotFoundError, StoreError
from agentrt.router.model import RouterModel

__all__ = ["RouterVersion", "routers_dir", "content_hash", "save_router", "list_routers",
           "load_router_model"]


class RouterVersion(BaseModel):
    """One manifest entry: a saved router model."""

    version: int = Field(ge=1)
    hash: str
    file: str
    created_at: str
    threshold: float
    signals: list[str] = Field(default_factory=list)
    metrics: dict[str, Any] = Field(default_factory=dict)
    trained_on: dict[str, Any] = Field(default_factory=dict)


def routers_dir(home: Path | str) -> Path:
    """Where router models live under a home directory."""
    return Path(home).expanduser() / "routers"


def _canonical(model: RouterModel) -> bytes:
    data = model.model_dump(mode="json", exclude={"version", "hash"})
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def content_hash(model: RouterModel) -> str:
    """SHA-256 of the model's canonical JSON (version and hash excluded)."""
    return hashlib.sha256(_canonical(model)).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_manifest(folder: Path) -> list[RouterVersion]:
    path = folder / "manifest.json"
    if not path.is_file():
        return []
    try:
        raw = json.loads(path.read_text())
        return [RouterVersion.model_validate(v) for v in raw.get("versions", [])]
    except (OSError, ValueError, ValidationError) as e:
        raise StoreError(f"router manifest {path} is unreadable: {e}") from None


def save_router(model: RouterModel, home: Path | str) -> RouterModel:
    """Save a model as the next version (or return the existing version of identical content).

    Returns:
        The model with `version` and `hash` set.
    """
    folder = routers_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    digest = content_hash(model)
    with FileLock(str(folder / ".manifest.lock"), timeout=60):
        versions = _read_manifest(folder)
        for v in versions:
            if v.hash == digest:
                return model.model_copy(update={"version": v.version, "hash": digest})
        file = f"router-{digest[:16]}.json"
        _atomic_write(folder / file, _canonical(model))
        entry = RouterVersion(
            version=max((v.version for v in versions), default=0) + 1, hash=digest, file=file,
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            threshold=model.threshold, signals=list(model.features.signals),
            metrics=model.metrics, trained_on=model.trained_on,
        )
        versions.append(entry)
        body = {"versions": [v.model_dump(mode="json") for v in versions]}
        _atomic_write(folder / "manifest.json", json.dumps(body, indent=1).encode())
    return model.model_copy(update={"version": entry.version, "hash": digest})


def list_routers(home: Path | str) -> list[RouterVersion]:
    """Saved router versions, oldest first."""
    return sorted(_read_manifest(routers_dir(home)), key=lambda v: v.version)


def _pick(versions: list[RouterVersion], ref: str | None, folder: Path) -> RouterVersion:
    if not versions:
        raise NotFoundError(f"no learned router saved under {folder}; train one with "
                            "`agentrt router train`")
    if ref in (None, "", "latest"):
        return versions[-1]
    ref = str(ref).strip()
    if ref.lstrip("v").isdigit():
        wanted = int(ref.lstrip("v"))
        for v in versions:
            if v.version == wanted:
                return v
        # A hash prefix can be all digits: only a short or "v" reference is surely a version.
        if ref.startswith("v") or len(ref) < 6 or not any(v.hash.startswith(ref) for v in versions):
            raise NotFoundError(f"no router version {wanted}; saved: "
                                f"{', '.join(str(v.version) for v in versions)}")
    if len(ref) < 6:
        raise ConfigError(f"router reference {ref!r}: give a version number or 6+ hash characters")
    found = [v for v in versions if v.hash.startswith(ref.lower())]
    if len(found) != 1:
        raise NotFoundError(f"router hash prefix {ref!r} matches {len(found)} versions")
    return found[0]


def load_router_model(home: Path | str, ref: str | None = None) -> RouterModel:
    """Load a saved router: the latest, a version number ("3" or "v3") or a hash prefix.

    Raises:
        NotFoundError: nothing saved, or no version matches `ref`.
        StoreError: the file is missing, unreadable or no longer matches its hash.
    """
    folder = routers_dir(home)
    entry = _pick(list_routers(home), ref, folder)
    path = folder / entry.file
    try:
        data = path.read_bytes()
    except OSError as e:
        raise StoreError(f"router file {path} is unreadable: {e}") from None
    if hashlib.sha256(data).hexdigest() != entry.hash:
        raise StoreError(f"router file {path} does not match its recorded hash; it was modified")
    try:
        model = RouterModel.model_validate_json(data)
    except ValidationError as e:
        raise StoreError(f"router file {path} is not a valid router model: {e}") from None
    return model.model_copy(update={"version": entry.version, "hash": entry.hash})
