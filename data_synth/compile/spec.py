"""What to build (`BuildSpec`) and what was built (`DatasetRecord`): the compilers' typed nouns.

`BuildSpec` validates itself: a known kind, mixing only for chat-message datasets and with a
ratio in [0, 1), a token cap only with a tokenizer to measure it, sane limits. Its `filters()`
is what the registry stores with the dataset, so a dataset can be rebuilt from its record.
This module knows no stores, traces or files.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["KINDS", "Kind", "BuildSpec", "DatasetRecord"]

Kind = Literal["sft", "tool", "dpo", "router"]
KINDS: tuple[str, ...] = ("sft", "tool", "dpo", "router")
_CHAT_KINDS = ("sft", "tool")


class BuildSpec(BaseModel):
    """One dataset build.

    Attributes:
        kind: "sft", "tool", "dpo" or "router".
        out: the directory the dataset is saved to (must not exist unless `overwrite`).
        name: the name it is registered under (default `<kind>-<time>-<hash>`).
        family: only traces tagged with this problem family.
        model_id: only traces made by this model (e.g. "gold" for gold traces).
        since: only traces created at or after this time.
        tags: only traces carrying every one of these tags.
        verified_only: keep only verified traces and good targets (see the compilers).
        max_tokens: drop rows longer than this many tokens (needs `tokenizer`).
        tokenizer: the model whose tokenizer measures rows (a name, directory or hub id).
        mix: a JSONL file of general chat examples ({"messages": [...]}) to mix in.
        mix_ratio: the share of general examples in the result, in [0, 1).
        seed: seed of the general-example sample.
        max_pairs_per_prompt: preference pairs drawn from one prompt, at most.
        limit: traces read, at most.
        overwrite: replace an existing dataset directory.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    out: Path
    name: str | None = Field(None, min_length=1, max_length=255)
    family: str | None = None
    model_id: str | None = None
    since: datetime | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    verified_only: bool = True
    max_tokens: int | None = Field(None, ge=1)
    tokenizer: str | None = None
    mix: Path | None = None
    mix_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    seed: int = 0
    max_pairs_per_prompt: int = Field(4, ge=1)
    limit: int = Field(100_000, ge=1)
    overwrite: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> "BuildSpec":
        if self.mix is not None and self.kind not in _CHAT_KINDS:
            raise ValueError(f"mixing general chat data applies to sft and tool datasets, "
                             f"not {self.kind}")
        if (self.mix is None) != (self.mix_ratio == 0.0):
            raise ValueError("give both a mix file and a mix ratio above 0, or neither")
        if self.max_tokens is not None and not self.tokenizer:
            raise ValueError("a token cap needs a tokenizer to measure rows with")
        return self

    def filters(self) -> dict[str, Any]:
        """The selection and shaping options, as stored with the dataset."""
        return self.model_dump(mode="json", exclude={"out", "name", "overwrite"})


class DatasetRecord(BaseModel):
    """A built, registered dataset."""

    id: str
    name: str
    kind: str
    path: str
    content_hash: str
    rows: int
    filters: dict[str, Any] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    trace_ids: list[str] = Field(default_factory=list)
