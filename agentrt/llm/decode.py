"""Batched decoding for the hf backend, in which each row leaves the batch as soon as it ends.

Rows are the backend's `_Row`s (prompt ids, own token limit, stop strings); the caller builds
the left-padded batch and its mask. This module knows torch and transformers' cache, nothing of
requests or responses.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["decode_rows"]


def _pick_tokens(scores: Any, params: Any) -> Any:
    """Next token per row: greedy, or sampled with temperature and nucleus (top_p)."""
    import torch

    if params.temperature <= 0:
        return scores.argmax(dim=-1)
    scores = scores / params.temperature
    if params.top_p < 1.0:
        ordered, order = scores.sort(dim=-1, descending=True)
        probs = ordered.softmax(dim=-1)
        drop = probs.cumsum(dim=-1) - probs >= params.top_p  # keeps the token crossing top_p
        scores = scores.scatter(-1, order, ordered.masked_fill(drop, float("-inf")))
    return torch.multinomial(scores.softmax(dim=-1), num_samples=1).squeeze(-1)


def decode_rows(model: Any, rows: list[Any], ids: Any, mask: Any, procs: Any, params: Any,
                 eos: set[int], decode: Any, cancel: Any) -> tuple[list[list[int]], list]:
    """Batched decoding that drops each row from the batch as soon as it finishes.

    `generate` keeps computing finished rows until the longest one ends; with replies of very
    different lengths in one batch (a 20-token check beside a 250-token answer) that is most of
    the work. Here a finished row leaves the batch (its KV-cache entries, mask and grammar
    state with it), so every step computes live rows only. Returns the tokens of each row and,
    per row, the step at which a stop string ended it (None otherwise).
    """
    import torch

    n = len(rows)
    live = list(range(n))  # batch position -> row
    gen: list[list[int]] = [[] for _ in range(n)]
    stop_at: list[int | None] = [None] * n
    cache = {_cache_kwarg(type(model)): _new_cache()}  # "cache" in transformers 5.2x, before that
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # "past_key_values"
    seq = ids
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                logits_to_keep=1, **cache)
    for step in range(1, max(r.max_tokens for r in rows) + 1):
        scores = out.logits[:, -1, :].float()
        for proc in procs:
            scores = proc(seq, scores)
        tokens = _pick_tokens(scores, params)
        picked = tokens.tolist()
        keep = []
        for b, (i, t) in enumerate(zip(live, picked)):
            gen[i].append(t)
            row = rows[i]
            if t in eos or step >= row.max_tokens:
                continue
            if row.stop and any(s in decode(gen[i]) for s in row.stop):
                stop_at[i] = step
                continue
            if cancel is not None and cancel.is_set():
                continue
            keep.append(b)
        if not keep:
            break
        seq = torch.cat([seq, tokens[:, None]], dim=-1)
        if len(keep) < len(live):
            index = torch.tensor(keep, device=seq.device)
            next(iter(cache.values())).batch_select_indices(index)
            seq, mask, tokens = seq[index], mask[index], tokens[index]
            live = [live[b] for b in keep]
            for proc in procs:
                proc.keep(keep)
        mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=-1)
        out = model(input_ids=tokens[:, None], attention_mask=mask,
                    position_ids=mask.sum(-1, keepdim=True) - 1, use_cache=True,
                    logits_to_keep=1, **cache)
    return gen, stop_at


@functools.lru_cache(maxsize=16)
def _cache_kwarg(model_class: type) -> str:
    import inspect

    params = inspect.signature(model_class.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _new_cache() -> Any:
    from transformers import DynamicCache

    return DynamicCache()
