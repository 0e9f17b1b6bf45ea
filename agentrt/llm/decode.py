"""Batched decoding for the hf backend: rows join a running batch between steps and leave it as
soon as they end (continuous batching).

Rows are the backend's `_Row`s (prompt ids, own token limit, stop strings, and optionally a
cancel flag and a per-token callback); the caller builds each group of new rows' left-padded ids
and mask. The KV cache's layers append into spare room instead of concatenating at every step
(see `_layer_kinds`). This module knows torch and transformers' cache, nothing of requests or
responses.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

__all__ = ["DecodeBatch", "decode_rows", "left_padded"]

_TRIM = 16  # leading all-padding cache columns are cut once there are this many


def _pick_tokens(scores: Any, params: Any) -> Any:
    """Next token per row: greedy, or sampled with temperature and nucleus (top_p)."""
    import torch  # heavy: torch

    if params.temperature <= 0:
        return scores.argmax(dim=-1)
    scores = scores / params.temperature
    if params.top_p < 1.0:
        ordered, order = scores.sort(dim=-1, descending=True)
        probs = ordered.softmax(dim=-1)
        drop = probs.cumsum(dim=-1) - probs >= params.top_p  # keeps the token crossing top_p
        scores = scores.scatter(-1, order, ordered.masked_fill(drop, float("-inf")))
    return torch.multinomial(scores.softmax(dim=-1), num_samples=1).squeeze(-1)


class DecodeBatch:
    """The live rows of one decode, their KV cache, mask and logits processors.

    `add` prefills new rows on their own and merges them into the running batch: the shorter
    side is left-padded (zero keys and values under a zero mask, so attention never sees them),
    and positions come from the mask, so a joined row decodes exactly as it would alone up to
    float rounding. `step` picks one token for every row; a finished row leaves (its cache
    entries, mask and grammar state with it) and reaches the caller at once. `generate` instead
    fixes its rows at the start and computes finished ones until the longest ends.

    Processors are called as `proc(ids, scores)`; one that holds per-row state provides
    `keep(rows)` (rows left) and, to let rows join, `extend(count)` (rows appended).

    Args:
        model: a transformers causal LM.
        params: sampling settings shared by every row (`temperature`, `top_p`).
        eos: token ids that end a row.
        decode: token ids -> text, for stop strings.
        procs: logits processors.
        pad: the pad token id.
        prefixes: a `PrefixCache`: new rows reuse the KV of a stored prompt's shared start and
            store their own prompt's KV.
        lean: a `LeanDecoder` of `model`: decode steps run through it instead of the model's
            own forward (prefills always use the forward).
    """

    def __init__(self, model: Any, params: Any, eos: set[int], decode: Any, procs: Any, pad: int,
                 prefixes: Any = None, lean: Any = None):
        self.model, self.params, self.eos, self.decode, self.procs = model, params, eos, decode, procs
        self.pad, self.prefixes, self.lean = pad, prefixes, lean
        self.rows: list[Any] = []  # batch position -> row
        self.gen: list[list[int]] = []
        self._kwarg = _cache_kwarg(type(model))
        self._cache: Any = None
        self.mask = self.seq = self.logits = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def joinable(self) -> bool:
        """Whether rows can join now: an empty batch, or a cache made of plain dynamic layers."""
        return self._cache is None or _plain_layers(self._cache) is not None

    def add(self, rows: list[Any], ids: Any = None, mask: Any = None) -> None:
        """Prefill `rows` and append them to the batch (`ids` and `mask`: their prompts
        left-padded, built here when not given).

        Raises:
            ValueError: the batch already runs and its cache cannot take new rows.
        """
        import torch  # heavy: torch

        if not self.joinable:
            raise ValueError("this model's cache cannot take rows into a running batch")
        device = self.model.device
        reuse = [self.prefixes.lookup(r.prompt_ids) for r in rows] if self.prefixes else []
        cache = _new_cache()
        if any(n for n, _ in reuse):
            ids, mask, tail = _reusing(rows, reuse, cache, self.pad, device)
        else:
            if ids is None:
                ids, mask = left_padded([r.prompt_ids for r in rows], self.pad, device)
            tail = ids
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -tail.shape[1]:]
        out = self.model(input_ids=tail, attention_mask=mask, position_ids=positions,
                         use_cache=True, logits_to_keep=1, **{self._kwarg: cache})
        logits = out.logits[:, -1, :].float()
        if self.prefixes is not None and (layers := _plain_layers(cache)) is not None:
            stored = set()
            for i, row in enumerate(rows):
                if (key := tuple(row.prompt_ids)) in stored:
                    continue  # n rows of one prompt: stored once
                stored.add(key)
                cols = mask[i].nonzero().squeeze(-1)
                self.prefixes.store(row.prompt_ids, [(layer.keys[i][:, cols],
                                                      layer.values[i][:, cols])
                                                     for layer in layers])
        for proc in self.procs:
            if hasattr(proc, "extend"):
                proc.extend(len(rows))
        if self._cache is None:
            self._cache, self.mask, self.seq, self.logits = cache, mask, ids, logits
        else:
            width = max(self.mask.shape[1], mask.shape[1])
            ours, theirs = _plain_layers(self._cache), _plain_layers(cache)
            for a, b in zip(ours, theirs):
                _replace(a, torch.cat([_pad_left(a.keys, width, -2), _pad_left(b.keys, width, -2)]),
                         torch.cat([_pad_left(a.values, width, -2), _pad_left(b.values, width, -2)]))
            self.mask = torch.cat([_pad_left(self.mask, width), _pad_left(mask, width)])
            self.seq = torch.cat([_pad_left(self.seq, width, value=self.pad),
                                  _pad_left(ids, width, value=self.pad)])
            self.logits = torch.cat([self.logits, logits])
        self.rows.extend(rows)
        self.gen.extend([] for _ in rows)

    def step(self) -> list[tuple[Any, list[int], int | None]]:
        """Pick one token per row and run the model on the rows still live.

        Returns the rows that finished at this step: (row, its tokens, the step at which a stop
        string ended it or None).
        """
        import torch  # heavy: torch

        scores = self.logits
        for proc in self.procs:
            scores = proc(self.seq, scores)
        tokens = _pick_tokens(scores, self.params)
        keep, done = [], []
        for b, (row, t) in enumerate(zip(self.rows, tokens.tolist())):
            gen = self.gen[b]
            gen.append(t)
            if getattr(row, "on_token", None) is not None:
                row.on_token(t)
            cancel = getattr(row, "cancel", None)
            if t in self.eos or len(gen) >= row.max_tokens or (cancel is not None and cancel.is_set()):
                done.append((row, gen, None))
            elif row.stop and any(s in self.decode(gen) for s in row.stop):
                done.append((row, gen, len(gen)))
            else:
                keep.append(b)
        self.seq = torch.cat([self.seq, tokens[:, None]], dim=-1)
        if len(keep) < len(self.rows):
            self._select(keep)
            tokens = tokens[keep] if keep else tokens[:0]
        if not keep:
            self._cache, self.mask, self.seq, self.logits = None, None, None, None
            return done
        self.mask = torch.cat([self.mask, self.mask.new_ones((len(keep), 1))], dim=-1)
        positions = self.mask.sum(-1, keepdim=True) - 1
        if self.lean is not None:
            self.logits = self.lean.step(tokens, self.mask, positions, self._cache)
            return done
        out = self.model(input_ids=tokens[:, None], attention_mask=self.mask,
                         position_ids=positions, use_cache=True, logits_to_keep=1,
                         **{self._kwarg: self._cache})
        self.logits = out.logits[:, -1, :].float()
        return done

    def _select(self, keep: list[int]) -> None:
        """Keep only the rows at batch positions `keep`; cut cache columns no row attends to."""
        import torch  # heavy: torch

        self.rows = [self.rows[b] for b in keep]
        self.gen = [self.gen[b] for b in keep]
        for proc in self.procs:
            if hasattr(proc, "keep"):
                proc.keep(keep)
        if not keep:
            return
        index = torch.tensor(keep, device=self.seq.device)
        self._cache.batch_select_indices(index)
        self.seq, self.mask = self.seq[index], self.mask[index]
        first = int(self.mask.any(0).to(torch.int8).argmax())
        layers = _plain_layers(self._cache) if first >= _TRIM else None
        if layers is not None:
            for layer in layers:
                _replace(layer, layer.keys[..., first:, :], layer.values[..., first:, :])
            self.mask, self.seq = self.mask[:, first:], self.seq[:, first:]


def decode_rows(model: Any, rows: list[Any], ids: Any, mask: Any, procs: Any, params: Any,
                eos: set[int], decode: Any, cancel: Any, pad: int = 0,
                lean: Any = None) -> tuple[list[list[int]], list]:
    """Decode a fixed set of rows to the end (a `DecodeBatch` nobody joins).

    Returns the tokens of each row and, per row, the step at which a stop string ended it (None
    otherwise). `cancel` (an event or None) ends every row at its next token; `lean` as in
    `DecodeBatch`.
    """

    class _Cancelled:
        def __init__(self, row: Any):
            self.row, self.cancel = row, cancel
            self.max_tokens, self.stop = row.max_tokens, row.stop

    batch = DecodeBatch(model, params, eos, decode, procs, pad, lean=lean)
    wrapped = [_Cancelled(r) for r in rows]
    batch.add(wrapped, ids, mask)
    position = {id(w): i for i, w in enumerate(wrapped)}
    gen: list[list[int]] = [[] for _ in rows]
    stop_at: list[int | None] = [None] * len(rows)
    while len(batch):
        for row, tokens, at in batch.step():
            gen[position[id(row)]], stop_at[position[id(row)]] = tokens, at
    return gen, stop_at


def _reusing(rows: list[Any], reuse: list[tuple[int, Any]], cache: Any, pad: int,
             device: Any) -> tuple[Any, Any, Any]:
    """Fill `cache` with each row's reused prompt start and lay out the rest to prefill.

    Every row's tokens stay contiguous, left-padded only: the prefilled part has one width `S`
    (the longest rest), so a row whose rest is shorter recomputes the last few tokens of its
    start instead of leaving a gap (sliding-window attention counts columns, not positions).
    Row i reuses `n_i = len_i - S` tokens, or none when that falls under the shortest reuse
    the lookup allowed; the cache gets `R = max n_i` columns, each row's start right-aligned.
    Returns (all ids, full mask, ids to prefill).
    """
    import torch  # heavy: torch

    lengths = [len(r.prompt_ids) for r in rows]
    shortest = min(n for n, _ in reuse if n)
    counts = [n for n, _ in reuse]
    while True:  # a row dropping its reuse can widen S; counts only shrink, so this ends
        width_s = max(size - n for size, n in zip(lengths, counts))
        fitted = [size - width_s if n and size - width_s >= shortest else 0
                  for size, n in zip(lengths, counts)]
        if fitted == counts:
            break
        counts = fitted
    reuse = [(n, layers if n else None) for n, (_, layers) in zip(counts, reuse)]
    width_r = max(counts)
    b = len(rows)
    starts = [r.prompt_ids[:n] for r, (n, _) in zip(rows, reuse)]
    rests = [r.prompt_ids[n:] for r, (n, _) in zip(rows, reuse)]
    start_ids, start_mask = left_padded(starts, pad, device, width_r)
    rest_ids, rest_mask = left_padded(rests, pad, device, width_s)
    ids, mask = torch.cat([start_ids, rest_ids], -1), torch.cat([start_mask, rest_mask], -1)
    stored = next((layers for n, layers in reuse if n), [])
    for layer_idx, (k0, v0) in enumerate(stored):
        keys = k0.new_zeros((b, k0.shape[0], width_r, k0.shape[-1]))
        values = v0.new_zeros((b, v0.shape[0], width_r, v0.shape[-1]))
        for i, (n, layers) in enumerate(reuse):
            if n:
                keys[i, :, width_r - n:] = layers[layer_idx][0][:, :n]
                values[i, :, width_r - n:] = layers[layer_idx][1][:, :n]
        cache.update(keys, values, layer_idx)
    return ids, mask, ids[:, width_r:]


def left_padded(seqs: list[list[int]], pad: int, device: Any,
                width: int | None = None) -> tuple[Any, Any]:
    """Token id lists as one left-padded tensor (to `width`, default the longest) and its mask."""
    import torch  # heavy: torch

    width = max(map(len, seqs)) if width is None else width
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, seq in enumerate(seqs):
        if seq:
            ids[i, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
            mask[i, width - len(seq):] = 1
    return ids.to(device), mask.to(device)


def _replace(layer: Any, keys: Any, values: Any) -> None:
    """Give a cache layer new keys and values (a roomy layer drops its room with them)."""
    layer.keys, layer.values = keys, values
    if hasattr(layer, "_room"):
        layer._room = None


def _pad_left(x: Any, width: int, dim: int = -1, value: float = 0) -> Any:
    """`x` left-padded with `value` along `dim` to `width`."""
    import torch  # heavy: torch

    missing = width - x.shape[dim]
    if missing <= 0:
        return x
    shape = list(x.shape)
    shape[dim] = missing
    return torch.cat([x.new_full(shape, value), x], dim=dim)


def _plain_layers(cache: Any) -> list[Any] | None:
    """The cache's layers if all are plain growing ones (the only kind rows can be merged into)."""
    kinds = _layer_kinds()
    layers = getattr(cache, "layers", None)
    if not kinds or not layers or any(type(layer) not in kinds or layer.keys is None
                                      for layer in layers):
        return None
    return list(layers)


@functools.lru_cache(maxsize=1)
def _layer_kinds() -> tuple[type, ...]:
    """(transformers' DynamicLayer, our roomy subclass), or () before the per-layer cache."""
    try:
        from transformers.cache_utils import DynamicLayer  # heavy: transformers
    except ImportError:
        return ()

    class RoomyLayer(DynamicLayer):
        """A DynamicLayer that appends into spare room instead of concatenating.

        `DynamicLayer.update` copies the whole cache at every step (`torch.cat`): at batch 8 and
        a few hundred tokens of context that copy rivals the model's own work. Here keys and
        values are views of the first columns of larger buffers, and a step writes its column
        in place. Whoever replaces `keys`/`values` (selecting rows, merging, trimming) leaves
        the buffers behind; the next update copies into fresh ones.
        """

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            old = self.keys.shape[-2] if self.keys.numel() else 0
            need = old + key_states.shape[-2]
            buf = getattr(self, "_room", None)
            if (buf is None or buf[0].shape[-2] < need or self.keys.numel() and (
                    self.keys.data_ptr() != buf[0].data_ptr()
                    or self.keys.stride() != buf[0].stride()
                    or self.keys.shape[0] != buf[0].shape[0])):
                room = need + max(need // 2, 32)
                kshape, vshape = list(key_states.shape), list(value_states.shape)
                kshape[-2] = vshape[-2] = room  # values may have another head size (MLA)
                buf = (key_states.new_empty(kshape), value_states.new_empty(vshape))
                if old:
                    buf[0][..., :old, :] = self.keys
                    buf[1][..., :old, :] = self.values
                self._room = buf
            buf[0][..., old:need, :] = key_states
            buf[1][..., old:need, :] = value_states
            self.keys, self.values = buf[0][..., :need, :], buf[1][..., :need, :]
            return self.keys, self.values

        # Whatever replaces keys and values also drops the room, so no stale buffer is kept
        # alive or written into.
        def reset(self) -> None:
            self._room = None
            super().reset()

        def crop(self, tokens_to_remove: int) -> None:
            self._room = None
            super().crop(tokens_to_remove)

        def batch_repeat_interleave(self, repeats: int) -> None:
            self._room = None
            super().batch_repeat_interleave(repeats)

        def batch_select_indices(self, indices: Any) -> None:
            self._room = None
            super().batch_select_indices(indices)

    return (DynamicLayer, RoomyLayer)


@functools.lru_cache(maxsize=16)
def _cache_kwarg(model_class: type) -> str:
    params = inspect.signature(model_class.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _new_cache() -> Any:
    from transformers import DynamicCache  # heavy: transformers

    cache = DynamicCache()
    kinds = _layer_kinds()
    if kinds and getattr(cache, "layer_class_to_replicate", None) is kinds[0] and not cache.layers:
        cache.layer_class_to_replicate = kinds[1]  # layers are made on first use: make roomy ones
    return cache
