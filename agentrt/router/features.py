"""Features for the learned router: hashed n-grams of the problem text plus fast-attempt signals.

Text becomes a sparse vector by the hashing trick: lower-cased word unigrams and bigrams (numbers
replaced by their digit count, so "17*23" and "48*91" look alike) and character trigrams, each
hashed with CRC-32 into `dim` buckets with a hashed sign, then L2-normalised; a few dense
shape features (length, how many numbers, LaTeX) follow. Optional signals of a first fast
attempt (the self-check verdict, a truncated answer, agreement among sampled answers) are
appended after those. Deterministic across processes (no Python `hash`).

This module knows nothing about traces, training or policies: text and signals in, a sparse
row (indices, values) out.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentrt.core.errors import ConfigError

__all__ = ["FeatureSpec", "SIGNALS", "featurize", "signal_values", "SparseRow"]

#: Signals a learned router may use, with what each costs at solve time.
SIGNALS: dict[str, str] = {
    "verdict": "the fast self-check verdict (free: the check runs anyway)",
    "truncated": "the fast answer hit max_tokens (free)",
    "agreement": "share of k extra sampled answers equal to the fast answer (one extra LLM call)",
}
_DENSE = ("log_chars", "log_words", "numbers", "max_digits", "latex", "lines")
_SIGNAL_COLUMNS = {
    "verdict": ("verdict_yes", "verdict_no", "verdict_unknown"),
    "truncated": ("truncated",),
    "agreement": ("agreement",),
}
_TOKEN = re.compile(r"\d+(?:\.\d+)?|[^\W\d_]+|[^\w\s]")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")

SparseRow = tuple[list[int], list[float]]


class FeatureSpec(BaseModel):
    """How text and signals become a vector; saved with every router model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dim: int = Field(4096, ge=16, le=1 << 20, description="hash buckets for text n-grams")
    word_ngrams: int = Field(2, ge=1, le=3)
    char_ngrams: int = Field(3, ge=0, le=5, description="0 disables character n-grams")
    signals: tuple[str, ...] = ()
    agreement_samples: int = Field(4, ge=2, le=16)

    @field_validator("signals")
    @classmethod
    def _known_signals(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [s for s in v if s not in SIGNALS]
        if unknown:
            raise ValueError(f"unknown signals {unknown}; choose from {sorted(SIGNALS)}")
        return tuple(dict.fromkeys(v))

    @property
    def columns(self) -> list[str]:
        """Names of the dense columns after the hashed block, in order."""
        cols = list(_DENSE)
        for s in self.signals:
            cols.extend(_SIGNAL_COLUMNS[s])
        return cols

    @property
    def width(self) -> int:
        """Total vector length: hashed block plus dense columns."""
        return self.dim + len(self.columns)


def _tokens(text: str) -> list[str]:
    out = []
    for tok in _TOKEN.findall(text.lower()):
        out.append(f"<n{len(tok)}>" if tok[0].isdigit() else tok)
    return out


def _bucket(key: str, dim: int) -> tuple[int, float]:
    h = zlib.crc32(key.encode("utf-8"))
    return h % dim, (1.0 if (h >> 31) & 1 else -1.0)


def _hashed(text: str, spec: FeatureSpec) -> dict[int, float]:
    counts: Counter[str] = Counter()
    toks = _tokens(text)
    for n in range(1, spec.word_ngrams + 1):
        for i in range(len(toks) - n + 1):
            counts["w:" + " ".join(toks[i:i + n])] += 1
    if spec.char_ngrams:
        squashed = " ".join(text.lower().split())
        n = spec.char_ngrams
        for i in range(len(squashed) - n + 1):
            counts["c:" + squashed[i:i + n]] += 1
    vec: dict[int, float] = {}
    for key, c in counts.items():
        idx, sign = _bucket(key, spec.dim)
        vec[idx] = vec.get(idx, 0.0) + sign * (1.0 + math.log(c))
    norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
    return {i: v / norm for i, v in vec.items() if v != 0.0}


def _dense(text: str) -> list[float]:
    numbers = _NUMBER.findall(text)
    return [
        math.log1p(len(text)) / 10.0,
        math.log1p(len(text.split())) / 8.0,
        min(len(numbers), 50) / 10.0,
        max((len(n) for n in numbers), default=0) / 10.0,
        1.0 if ("\\" in text or "$" in text) else 0.0,
        min(text.count("\n"), 50) / 10.0,
    ]


def signal_values(spec: FeatureSpec, signals: dict[str, Any] | None) -> list[float]:
    """Dense values of the spec's signals from a dict like {"verdict": "no", "agreement": 0.5}.

    Raises:
        ConfigError: a signal the spec needs is missing.
    """
    signals = signals or {}
    out: list[float] = []
    for name in spec.signals:
        if name not in signals or signals[name] is None:
            raise ConfigError(f"router feature needs signal {name!r}, which is missing")
        value = signals[name]
        if name == "verdict":
            v = str(value)
            out.extend([float(v == "yes"), float(v == "no"), float(v not in ("yes", "no"))])
        elif name == "truncated":
            out.append(float(bool(value)))
        else:
            out.append(min(max(float(value), 0.0), 1.0))
    return out


def featurize(text: str, spec: FeatureSpec, signals: dict[str, Any] | None = None) -> SparseRow:
    """One sparse feature row for a problem (and the signals the spec asks for).

    Args:
        text: the problem text.
        spec: the feature layout.
        signals: values of `spec.signals` (see `signal_values`).

    Returns:
        (indices, values) of the non-zero entries, indices < `spec.width`.
    """
    if not isinstance(text, str):
        raise ConfigError(f"router features need problem text, got {type(text).__name__}")
    hashed = _hashed(text, spec)
    idx = sorted(hashed)
    vals = [hashed[i] for i in idx]
    for j, v in enumerate(_dense(text) + signal_values(spec, signals)):
        if v:
            idx.append(spec.dim + j)
            vals.append(v)
    return idx, vals
