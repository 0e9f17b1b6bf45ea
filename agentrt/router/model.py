"""The learned router's classifier: logistic regression on sparse features, in numpy.

`fit_router(examples, ...)` trains on labelled examples (problem text, optional fast-attempt
signals, and whether fast failed), measures itself honestly with out-of-fold predictions
(k-fold: every example is scored by a model that never saw it), calibrates the decision
threshold on those scores to a target slow fraction or a token budget, then refits on all the
data. The result is a `RouterModel`: plain data (weights as a list), saved as canonical JSON and
hashed by `agentrt.router.registry`. Never pickled.

This module knows nothing about traces, stores or the runtime.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from agentrt.core.errors import ConfigError, InvalidInputError
from agentrt.router.features import FeatureSpec, featurize

__all__ = ["RouterExample", "RouterModel", "TrainConfig", "fit_router", "MIN_EXAMPLES"]

MIN_EXAMPLES = 10


class RouterExample(BaseModel):
    """One labelled problem: did the fast attempt fail on it?"""

    text: str = Field(min_length=1)
    fast_failed: bool
    signals: dict[str, Any] = Field(default_factory=dict)
    fast_tokens: int | None = None
    slow_tokens: int | None = None
    trace_id: str | None = None


class TrainConfig(BaseModel):
    """Training and calibration settings (validated on construction)."""

    model_config = ConfigDict(extra="forbid")

    features: FeatureSpec = Field(default_factory=FeatureSpec)
    l2: float = Field(1e-3, ge=0.0)
    epochs: int = Field(300, ge=1, le=100_000)
    learning_rate: float = Field(0.1, gt=0.0)
    balanced: bool = True
    folds: int = Field(5, ge=2, le=20)
    seed: int = 0
    target_slow_fraction: float | None = Field(None, ge=0.0, le=1.0)
    max_avg_tokens: float | None = Field(None, gt=0.0)

    @model_validator(mode="after")
    def _one_calibration(self) -> "TrainConfig":
        if self.target_slow_fraction is not None and self.max_avg_tokens is not None:
            raise ValueError("give either target_slow_fraction or max_avg_tokens, not both")
        return self


class RouterModel(BaseModel):
    """A trained router: features, weights, threshold, and how it was made and measured."""

    format: int = 1
    features: FeatureSpec
    weights: list[float]
    bias: float
    threshold: float = Field(ge=0.0, le=1.0)
    calibration: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    trained_on: dict[str, Any] = Field(default_factory=dict)
    version: int | None = None
    hash: str | None = None
    _w: Any = PrivateAttr(default=None)  # the weights as an array, built on first score

    @model_validator(mode="after")
    def _shape(self) -> "RouterModel":
        if len(self.weights) != self.features.width:
            raise ValueError(f"{len(self.weights)} weights for a feature width of "
                             f"{self.features.width}")
        return self

    @property
    def uses_signals(self) -> bool:
        """True when scoring needs a first fast attempt."""
        return bool(self.features.signals)

    def score(self, text: str, signals: dict[str, Any] | None = None) -> float:
        """Predicted probability that the fast attempt fails on this problem."""
        idx, vals = featurize(text, self.features, signals)
        if self._w is None:
            self._w = np.asarray(self.weights)
        z = float(np.dot(self._w[idx], vals)) + self.bias if idx else self.bias
        return _sigmoid_scalar(z)


def _sigmoid_scalar(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


class _Sparse:
    """A CSR matrix just big enough for X @ w and X.T @ r."""

    def __init__(self, rows: list[tuple[list[int], list[float]]], width: int):
        self.n, self.width = len(rows), width
        lengths = [len(r[0]) for r in rows]
        self.row_of = np.repeat(np.arange(self.n), lengths)
        self.indices = np.fromiter((i for r in rows for i in r[0]), dtype=np.int64)
        self.data = np.fromiter((v for r in rows for v in r[1]), dtype=np.float64)

    def dot(self, w: np.ndarray) -> np.ndarray:
        return np.bincount(self.row_of, weights=self.data * w[self.indices], minlength=self.n)

    def tdot(self, r: np.ndarray) -> np.ndarray:
        return np.bincount(self.indices, weights=self.data * r[self.row_of], minlength=self.width)


def _fit(X: _Sparse, y: np.ndarray, cfg: TrainConfig) -> tuple[np.ndarray, float]:
    """Weighted, L2-regularised logistic regression by full-batch Adam."""
    n = X.n
    sw = np.ones(n)
    if cfg.balanced:
        pos = max(y.sum(), 1.0)
        neg = max(n - y.sum(), 1.0)
        sw = np.where(y == 1, n / (2 * pos), n / (2 * neg))
    params = np.zeros(X.width + 1)
    m, v = np.zeros_like(params), np.zeros_like(params)
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t in range(1, cfg.epochs + 1):
        z = X.dot(params[:-1]) + params[-1]
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -35, 35)))
        r = sw * (p - y) / n
        grad = np.empty_like(params)
        grad[:-1] = X.tdot(r) + cfg.l2 * params[:-1]
        grad[-1] = r.sum()
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad * grad
        params -= cfg.learning_rate * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return params[:-1], float(params[-1])


def _predict(X: _Sparse, w: np.ndarray, b: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(X.dot(w) + b, -35, 35)))


def _out_of_fold(rows, y: np.ndarray, cfg: TrainConfig) -> np.ndarray:
    n = len(rows)
    folds = min(cfg.folds, n)
    order = np.random.default_rng(cfg.seed).permutation(n)
    scores = np.empty(n)
    for k in range(folds):
        test = order[k::folds]
        train = np.setdiff1d(order, test)
        Xtr = _Sparse([rows[i] for i in train], cfg.features.width)
        w, b = _fit(Xtr, y[train], cfg)
        scores[test] = _predict(_Sparse([rows[i] for i in test], cfg.features.width), w, b)
    return scores


def _auc(y: np.ndarray, s: np.ndarray) -> float | None:
    pos, neg = s[y == 1], s[y == 0]
    if not len(pos) or not len(neg):
        return None
    allv = np.concatenate([pos, neg])
    _, inverse, counts = np.unique(allv, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2.0)[inverse]  # average rank within ties
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _mean(values: list[int | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(sum(known) / len(known)) if known else None


def _slow_fraction_for(cfg: TrainConfig, examples: list[RouterExample], uses_signals: bool,
                       costs: tuple[float | None, float | None] | None
                       ) -> tuple[float | None, dict[str, Any]]:
    """The slow fraction the calibration asks for, with the costs it was derived from."""
    if cfg.target_slow_fraction is not None:
        return cfg.target_slow_fraction, {"method": "target_slow_fraction",
                                          "target_slow_fraction": cfg.target_slow_fraction}
    if cfg.max_avg_tokens is None:
        return None, {"method": "probability", "threshold": 0.5}
    fast, slow = costs or (None, None)
    fast = fast if fast is not None else _mean([e.fast_tokens for e in examples])
    slow = slow if slow is not None else _mean([e.slow_tokens for e in examples])
    if fast is None or slow is None:
        raise InvalidInputError("a token budget needs measured fast and slow costs: train on "
                                "traces of both fast and slow runs, or give a slow fraction")
    # Routed slow after a fast attempt costs both; routed slow up front costs only slow.
    extra = slow if uses_signals else slow - fast
    frac = 1.0 if extra <= 0 else (cfg.max_avg_tokens - fast) / extra
    frac = min(max(frac, 0.0), 1.0)
    return frac, {"method": "max_avg_tokens", "max_avg_tokens": cfg.max_avg_tokens,
                  "fast_tokens": fast, "slow_tokens": slow, "slow_fraction": frac}


def _threshold(scores: np.ndarray, frac: float | None) -> float:
    if frac is None:
        return 0.5
    if frac <= 0:
        return 1.0
    if frac >= 1:
        return 0.0
    ordered = np.sort(scores)[::-1]
    k = max(int(round(frac * len(ordered))), 1)
    return float(min(max(ordered[k - 1], 0.0), 1.0))


def _metrics(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    pred = scores >= threshold
    tp = int((pred & (y == 1)).sum())
    fp = int((pred & (y == 0)).sum())
    fn = int((~pred & (y == 1)).sum())
    base = max(y.mean(), 1 - y.mean())
    return {
        "n": int(len(y)), "fast_fail_rate": float(y.mean()),
        "oof_accuracy": float((pred == (y == 1)).mean()), "constant_accuracy": float(base),
        "oof_auc": _auc(y, scores), "oof_precision": tp / (tp + fp) if tp + fp else None,
        "oof_recall": tp / (tp + fn) if tp + fn else None,
        "oof_slow_fraction": float(pred.mean()),
    }


def fit_router(examples: list[RouterExample], config: TrainConfig | None = None,
               trained_on: dict[str, Any] | None = None,
               costs: tuple[float | None, float | None] | None = None) -> RouterModel:
    """Train, measure and calibrate a router on labelled examples.

    Args:
        examples: problems labelled with whether fast failed (both outcomes must occur).
        config: features, optimiser and calibration (a target slow fraction or token budget).
        trained_on: provenance recorded in the model (filters, trace counts).
        costs: mean tokens of a fast and of a slow solve, for a token budget (default: the
            means of the examples' `fast_tokens` / `slow_tokens`).

    Returns:
        A `RouterModel` with out-of-fold metrics; not yet saved or versioned.

    Raises:
        InvalidInputError: too few examples, one class only, or missing signals or costs.
    """
    cfg = config or TrainConfig()
    if len(examples) < MIN_EXAMPLES:
        raise InvalidInputError(f"need at least {MIN_EXAMPLES} labelled examples to train a "
                                f"router; got {len(examples)}")
    y = np.array([1.0 if e.fast_failed else 0.0 for e in examples])
    if y.min() == y.max():
        outcome = "failed" if y[0] else "succeeded"
        raise InvalidInputError(f"all examples have the same outcome (fast {outcome} on every "
                                "one): nothing to learn")
    try:
        rows = [featurize(e.text, cfg.features, e.signals) for e in examples]
    except ConfigError as e:
        raise InvalidInputError(f"cannot build features: {e}") from None
    frac, calibration = _slow_fraction_for(cfg, examples, bool(cfg.features.signals), costs)
    oof = _out_of_fold(rows, y, cfg)
    threshold = _threshold(oof, frac)
    w, b = _fit(_Sparse(rows, cfg.features.width), y, cfg)
    return RouterModel(
        features=cfg.features, weights=[float(x) for x in w], bias=b, threshold=threshold,
        calibration={**calibration, "threshold": threshold},
        metrics=_metrics(y, oof, threshold),
        trained_on={**(trained_on or {}), "examples": len(examples),
                    "config": cfg.model_dump(mode="json", exclude={"features"})},
    )
