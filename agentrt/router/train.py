"""Training the learned router from stored traces: collect labelled examples, fit, save.

Labels come from tags the evaluation harness (or any grader) puts on traces:
`fast_correct` = "1" or "0" says whether a graded fast attempt was right. Traces of fast runs
carry it, and so do `auto` traces that escalated (their fast attempt is graded too). Slow runs
give the cost of slow thinking (for a token budget), not labels. Signals of the fast attempt are
read back from the trace's steps (the self-check verdict, the answer's finish reason, the
agreement decision), the same steps the router records at solve time.

This module reads the store; it does not solve or grade anything itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from agentrt.core.errors import InvalidInputError
from agentrt.router.model import RouterExample, RouterModel, TrainConfig, fit_router
from agentrt.router.registry import save_router

__all__ = ["FAST_CORRECT_TAG", "SLOW_CORRECT_TAG", "collect_examples", "signals_from_steps",
           "train_router"]

FAST_CORRECT_TAG = "fast_correct"
SLOW_CORRECT_TAG = "slow_correct"
_PAGE = 500


def _traces(store: Any, tags: Mapping[str, str], limit: int) -> Iterator[Any]:
    offset = 0
    while offset < limit:
        page = store.list_traces(limit=min(_PAGE, limit - offset), offset=offset, tags=tags)
        yield from page
        if len(page) < _PAGE:
            return
        offset += len(page)


def signals_from_steps(steps: list[Any]) -> dict[str, Any]:
    """Fast-attempt signals recorded in a trace's steps (first occurrence of each wins)."""
    found: dict[str, Any] = {}
    for s in steps:
        if s.kind == "decision" and s.name == "verdict" and "verdict" not in found:
            found["verdict"] = s.outputs.get("verdict")
        elif s.kind == "llm" and s.name == "fast_answer" and "truncated" not in found:
            found["truncated"] = s.outputs.get("finish_reason") == "length"
        elif s.kind == "decision" and s.name == "agreement" and "agreement" not in found:
            found["agreement"] = s.outputs.get("agreement")
    return found


def collect_examples(store: Any, *, tags: Mapping[str, str] | None = None,
                     signals: tuple[str, ...] = (), limit: int = 100_000
                     ) -> tuple[list[RouterExample], dict[str, Any]]:
    """Labelled examples from graded traces, plus a report of what was used and skipped.

    Args:
        store: a `TraceStore`.
        tags: only traces carrying all these tags (e.g. {"eval_bench": "gsm8k"}).
        signals: fast-attempt signals every example must have (traces lacking one are skipped).
        limit: at most this many traces per label.

    Returns:
        (examples, report) where the report counts traces per label, skipped ones and the
        measured mean tokens of fast and slow solves.
    """
    base = dict(tags or {})
    examples: list[RouterExample] = []
    report: dict[str, Any] = {"tags": base, "skipped_missing_signals": 0}
    for value, failed in (("1", False), ("0", True)):
        count = 0
        for t in _traces(store, {**base, FAST_CORRECT_TAG: value}, limit):
            sig: dict[str, Any] = {}
            if signals:
                sig = signals_from_steps(store.get_trace(t.id).steps)
                if any(sig.get(s) is None for s in signals):
                    report["skipped_missing_signals"] += 1
                    continue
                sig = {s: sig[s] for s in signals}
            fast_tokens = t.usage.total_tokens if t.mode == "fast" else None
            examples.append(RouterExample(text=t.problem, fast_failed=failed, signals=sig,
                                          fast_tokens=fast_tokens, trace_id=t.id))
            count += 1
        report["fast_failed" if failed else "fast_succeeded"] = count
    slow = [t.usage.total_tokens for t in _traces(store, base, limit)
            if t.requested_mode == "slow" and t.mode == "slow" and t.status == "ok"]
    fast = [e.fast_tokens for e in examples if e.fast_tokens is not None]
    report["fast_tokens"] = sum(fast) / len(fast) if fast else None
    report["slow_tokens"] = sum(slow) / len(slow) if slow else None
    report["slow_traces"] = len(slow)
    return examples, report


def train_router(store: Any, *, home: Path | str | None = None,
                 tags: Mapping[str, str] | None = None, config: TrainConfig | None = None,
                 save: bool = True) -> RouterModel:
    """Train a router on graded traces in `store`, and save it as a new version.

    Args:
        store: a `TraceStore` holding traces tagged `fast_correct`.
        home: where saved routers live (required when `save`).
        tags: restrict training to traces with these tags.
        config: features (and signals), optimiser, calibration.
        save: write the model and a manifest entry under `home`.

    Returns:
        The trained model (with `version` and `hash` when saved).

    Raises:
        InvalidInputError: too few graded traces, a single outcome, or missing costs.

    Example:
        >>> from agentrt.router import train_router, TrainConfig
        >>> m = train_router(store, home=home,  # doctest: +SKIP
        ...                  config=TrainConfig(target_slow_fraction=0.3))
        >>> m.version, m.metrics["oof_accuracy"]  # doctest: +SKIP
    """
    cfg = config or TrainConfig()
    examples, report = collect_examples(store, tags=tags, signals=cfg.features.signals)
    if not examples:
        raise InvalidInputError(
            f"no graded traces found (tag {FAST_CORRECT_TAG}=1/0"
            + (f" and {dict(tags)}" if tags else "") + "): run `agentrt eval` in fast or auto "
            "mode first")
    model = fit_router(examples, cfg, trained_on={"store": getattr(store, "url", ""), **report},
                       costs=(report["fast_tokens"], report["slow_tokens"]))
    if save:
        if home is None:
            raise InvalidInputError("saving a router needs a home directory")
        model = save_router(model, home)
    return model
