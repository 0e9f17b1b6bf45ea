"""JSON-schema constrained decoding for transformers, on xgrammar.

`GrammarCache` compiles a JSON schema against one tokenizer once (keyed by a hash of the
canonical schema text) and hands out a fresh logits processor per decode. The processor follows
`xgrammar.contrib.hf.LogitsProcessor` (same matcher, bitmask and in-place masking calls) with the
differences the continuously batched backend needs: rows join (`extend`) and leave (`keep`)
between steps, a row whose token the grammar refuses is retired instead of failing, and the token
is accepted outside any `assert`, so it still runs under `python -O`.

Whitespace between JSON tokens is not free-form: small models loop on whitespace when allowed, so
the grammar fixes the separators (`", "` and `": "`). This module knows nothing about requests,
batching or devices beyond the logits tensor it is given.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any

from agentrt.core.errors import BackendRequestError

__all__ = ["schema_key", "GrammarCache", "GrammarLogitsProcessor"]


def schema_key(schema: dict[str, Any]) -> str:
    """A stable hash of a JSON schema (key order does not matter)."""
    text = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class GrammarLogitsProcessor:
    """Masks logits so each row can only continue a string its grammar accepts.

    One instance serves exactly one decode (matchers hold per-row state); rows may join it
    (`extend`) and leave it (`keep`) between steps.
    """

    def __init__(self, compiled: Any, batch_size: int = 0):
        import xgrammar as xgr  # heavy: xgrammar

        self._xgr = xgr
        self._compiled = compiled
        self._vocab = compiled.tokenizer_info.vocab_size
        self._matchers: list[Any] = []
        self._retired: list[bool] = []
        self._fresh: list[bool] = []  # no token generated yet: nothing to accept
        self._bitmask = xgr.allocate_token_bitmask(0, self._vocab)
        self.extend(batch_size)

    def extend(self, count: int) -> None:
        """Append `count` new rows (the decoder added them to its batch)."""
        import torch  # heavy: torch

        xgr = self._xgr
        self._matchers += [xgr.GrammarMatcher(self._compiled) for _ in range(count)]
        self._retired += [False] * count
        self._fresh += [True] * count
        self._bitmask = torch.cat([self._bitmask, xgr.allocate_token_bitmask(count, self._vocab)])

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if input_ids.shape[0] != len(self._matchers):
            raise RuntimeError("batch size changed during generation")
        last = input_ids[:, -1].tolist()
        for i, matcher in enumerate(self._matchers):
            live = not (self._retired[i] or matcher.is_terminated())
            if live and not self._fresh[i] and not matcher.accept_token(last[i]):
                self._retired[i] = True  # its output is discarded by the caller
            if not self._retired[i] and not matcher.is_terminated():
                matcher.fill_next_token_bitmask(self._bitmask, i)
            else:
                self._bitmask[i].fill_(-1)  # all tokens allowed: the row's output is discarded
        self._fresh = [False] * len(self._matchers)
        device = scores.device
        if device.type not in ("cuda", "cpu"):
            scores = scores.to("cpu")
        self._xgr.apply_token_bitmask_inplace(scores, self._bitmask.to(scores.device))
        return scores.to(device)

    def keep(self, rows: list[int]) -> None:
        """Keep only these rows (in this order): the decoder dropped the others from its batch."""
        self._matchers = [self._matchers[i] for i in rows]
        self._retired = [self._retired[i] for i in rows]
        self._fresh = [self._fresh[i] for i in rows]
        self._bitmask = self._bitmask[rows].contiguous()


class GrammarCache:
    """Compiled JSON-schema grammars for one tokenizer, least recently used evicted.

    Args:
        tokenizer: a transformers tokenizer.
        vocab_size: the model's logits width (may exceed the tokenizer's size).
        max_entries: how many compiled schemas to keep.
    """

    def __init__(self, tokenizer: Any, vocab_size: int, max_entries: int = 64):
        import xgrammar as xgr  # heavy: xgrammar

        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
        self._compiler = xgr.GrammarCompiler(info)
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.max_entries = max_entries
        self.compiles = 0

    def compile(self, schema: dict[str, Any]) -> Any:
        """The compiled grammar for `schema`, compiling on first use.

        Raises:
            BackendRequestError: the schema is not one xgrammar can compile (status 400).
        """
        key = schema_key(schema)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        try:
            compiled = self._compiler.compile_json_schema(
                json.dumps(schema), any_whitespace=False, strict_mode=True
            )
        except Exception as e:  # xgrammar raises plain RuntimeError/ValueError on bad schemas
            raise BackendRequestError(f"cannot compile JSON schema: {e}", status=400) from None
        with self._lock:
            self.compiles += 1
            self._cache[key] = compiled
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return compiled

    def processor(self, schema: dict[str, Any], batch_size: int = 0) -> GrammarLogitsProcessor:
        """A fresh logits processor for one decode, starting with `batch_size` rows."""
        return GrammarLogitsProcessor(self.compile(schema), batch_size)
