"""The model registry: every trained checkpoint as a `ModelVersion`, a gate, an atomic pointer.

    registry = ModelRegistry(store)
    v = registry.register(path, base_model="smollm2-135m", parent_id=None, datasets=[...])
    decision = gate(candidate_scores, promoted_scores, margin=0.05, modes=("auto",))
    if decision.promote:
        registry.promote(v.id, reason=decision.reason)
    registry.rollback()                      # back to the version promoted before

Rules that keep the registry honest: a version is registered only after its directory is
complete (written to a temporary path and renamed into place by the trainer; `register`
checks the weights are there); the `promoted` pointer moves by one single-row UPDATE in a
write transaction, together with its history row, so readers see the old or the new version;
promoting or rolling back to a version whose directory is missing is refused. Records
(`ModelVersion`, `Promotion`): `agentrt.store.records`; tables and queries:
`agentrt.store.model_versions`; readers (backends, the server) use `agentrt.llm.versions`.
This module knows nothing about training or evaluation; `gate` is pure arithmetic on scores.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agentrt.core.errors import InvalidInputError, NotFoundError
from agentrt.llm.versions import PROMOTED, is_version_ref, resolve_version
from agentrt.store import model_versions
from agentrt.store.records import ModelVersion, Promotion

__all__ = ["ModelVersion", "Promotion", "GateDecision", "ModelRegistry", "gate", "is_complete"]

_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
            "adapter_model.safetensors")


class GateDecision(BaseModel):
    """The gate's verdict: promote or not, the scores compared and why."""

    promote: bool
    candidate: float
    promoted: float | None
    margin: float
    modes: list[str]
    reason: str


def is_complete(path: str | Path) -> bool:
    """True when `path` holds a loadable model: a config and its weights."""
    p = Path(path)
    has_config = (p / "config.json").is_file() or (p / "adapter_config.json").is_file()
    return has_config and any((p / w).is_file() for w in _WEIGHTS)


def gate(candidate: Mapping[str, float], promoted: Mapping[str, float] | None, *,
         margin: float, modes: tuple[str, ...] | list[str]) -> GateDecision:
    """Compare held-out accuracies (mode -> accuracy in [0, 1]) on the same frozen set.

    The score is the mean accuracy over `modes`. With nothing promoted the candidate passes;
    otherwise it must beat the promoted model's score by at least `margin`.

    Raises:
        InvalidInputError: a mode has no score, or the margin is negative.
    """
    if margin < 0:
        raise InvalidInputError(f"the gate margin must be >= 0, got {margin}")
    if not modes:
        raise InvalidInputError("the gate needs at least one mode to compare")

    def score(scores: Mapping[str, float], who: str) -> float:
        missing = [m for m in modes if m not in scores]
        if missing:
            raise InvalidInputError(f"the {who} has no held-out score for mode(s) {missing}")
        return sum(float(scores[m]) for m in modes) / len(modes)

    cand = score(candidate, "candidate")
    if promoted is None:
        return GateDecision(promote=True, candidate=cand, promoted=None, margin=margin,
                            modes=list(modes), reason="nothing is promoted yet")
    prom = score(promoted, "promoted model")
    ok = cand >= prom + margin
    verb = "beats" if ok else "does not beat"
    return GateDecision(promote=ok, candidate=cand, promoted=prom, margin=margin,
                        modes=list(modes),
                        reason=f"candidate {cand:.3f} {verb} promoted {prom:.3f} + margin "
                               f"{margin:.3f} on {'/'.join(modes)}")


class ModelRegistry:
    """Model versions in the trace store's database. See the module docstring.

    Args:
        store: an open `TraceStore` (its engine is used; the store stays the caller's).
    """

    def __init__(self, store: Any):
        self.store = store
        self.engine = store.engine

    def register(self, path: str | Path, *, base_model: str, parent_id: str | None = None,
                 datasets: list[dict[str, Any]] | None = None,
                 training: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
                 note: str = "") -> ModelVersion:
        """Register a complete checkpoint directory as the next version number.

        Raises:
            InvalidInputError: the directory is not a complete model, or the parent is unknown.
        """
        path = Path(path).resolve()
        if not is_complete(path):
            raise InvalidInputError(f"{path} is not a complete model directory (config and "
                                    "weights); a version is registered only when complete")
        return model_versions.register_version(
            self.engine, path=str(path), base_model=base_model, parent_id=parent_id,
            datasets=datasets or [], training=training or {}, metrics=metrics or {}, note=note)

    def get(self, ref: str) -> ModelVersion:
        """A version by `v<N>`, id (or unique prefix) or `promoted`.

        Raises:
            NotFoundError: no such version (or nothing promoted).
        """
        ref = ref.strip()
        if ref == PROMOTED:
            found = model_versions.find_versions(self.engine, pointer=PROMOTED) or []
        elif ref.startswith("v") and ref[1:].isdigit():
            found = model_versions.find_versions(self.engine, number=int(ref[1:]))
        else:
            found = model_versions.find_versions(self.engine, prefix=ref)
        if len(found) != 1:
            raise NotFoundError(f"no model version {ref!r}", id=ref)
        return found[0]

    def list(self, limit: int = 100) -> list[ModelVersion]:
        """Versions, newest first."""
        return model_versions.list_versions(self.engine, limit)

    def promoted(self) -> ModelVersion | None:
        """The promoted version, or None."""
        try:
            return self.get(PROMOTED)
        except NotFoundError:
            return None

    def resolve(self, ref: str) -> ModelVersion:
        """What a backend would load for `ref` (checks the directory exists)."""
        if not is_version_ref(ref):
            raise NotFoundError(f"{ref!r} is not a model version reference", id=ref)
        return resolve_version(ref, store=self.store)

    def update(self, version_id: str, *, metrics: dict[str, Any] | None = None,
               gate: dict[str, Any] | None = None) -> ModelVersion:
        """Merge new metrics and/or set the gate decision of a version.

        Raises:
            NotFoundError: no version has this id.
        """
        return model_versions.update_version(self.engine, version_id, metrics=metrics, gate=gate)

    def promote(self, ref: str, *, reason: str = "", action: str = "promote") -> ModelVersion:
        """Point `promoted` at a version, atomically, and log the move.

        Raises:
            NotFoundError: no such version.
            InvalidInputError: its model directory is missing or incomplete.
        """
        target = self.get(ref)
        if not is_complete(target.path):
            raise InvalidInputError(f"version {target.label} has no complete model at "
                                    f"{target.path}; refusing to promote it")
        return model_versions.move_pointer(self.engine, target, action=action, reason=reason)

    def history(self, limit: int = 100) -> list[Promotion]:
        """Moves of the promoted pointer, newest first."""
        return model_versions.promotion_history(self.engine, limit)

    def rollback(self, to: str | None = None, *, reason: str = "") -> ModelVersion:
        """Promote an earlier version: `to` (any version), or the one promoted before this one.

        Raises:
            NotFoundError: nothing to roll back to.
        """
        if to is None:
            current = self.promoted()
            earlier = [p.previous_id for p in self.history()
                       if current is not None and p.version_id == current.id
                       and p.action == "promote" and p.previous_id]
            if not earlier:
                raise NotFoundError("no earlier promoted version to roll back to", id=PROMOTED)
            to = earlier[0]
        return self.promote(to, reason=reason or "rollback", action="rollback")
