"""The model card (`MODEL_CARD.md`) written beside an exported adapter.

`render_card` fills what is known: the adapter's manifest (base, hash, rank, reconstruction
error, settings) and, through `CardInfo`, the registry version the model came from (its
datasets with their hashes, training configs, evaluation scores) and the commands that
produced it. Whatever is unknown is left as a visible placeholder, `TO FILL IN: ...`, for a
person to complete before the adapter is shipped.

This module only formats text: it reads no registry and no files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CardInfo", "render_card", "PLACEHOLDER"]

PLACEHOLDER = "TO FILL IN"


@dataclass
class CardInfo:
    """What the card says beyond the adapter's manifest; empty fields become placeholders.

    Attributes:
        version: the registry version's label (`v3`), if the model came from the registry.
        version_id: its id (`mv-...`).
        datasets: the version's `datasets` (dicts with name, kind, hash, rows).
        training: the version's `training` (configs and results per stage).
        metrics: the version's `metrics` (evaluation results keyed by the frozen set's hash).
        train_command: the command that trained the model.
        export_command: the command that exported the adapter.
        known_failures: what the model is known to get wrong.
    """

    version: str | None = None
    version_id: str | None = None
    datasets: list[dict[str, Any]] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    train_command: str | None = None
    export_command: str | None = None
    known_failures: list[str] = field(default_factory=list)


def _todo(what: str) -> str:
    return f"**{PLACEHOLDER}: {what}**"


def _dataset_rows(datasets: list[dict[str, Any]]) -> list[str]:
    if not datasets:
        return [_todo("the datasets the model was trained on, with their content hashes")]
    lines = ["| dataset | kind | rows | content hash |", "| --- | --- | --- | --- |"]
    for d in datasets:
        digest = d.get("content_hash") or d.get("hash") or _todo("hash")
        lines.append(f"| {d.get('name', '?')} | {d.get('kind', '?')} | {d.get('rows', '?')} "
                     f"| `{digest}` |")
    return lines


def _score(summary: Any) -> str:
    if not isinstance(summary, dict):
        return json.dumps(summary)
    if "skipped" in summary:
        return f"skipped ({summary['skipped']})"
    acc = summary.get("accuracy")
    n = summary.get("n") or summary.get("total")
    correct = summary.get("correct")
    if isinstance(acc, (int, float)):
        count = f" ({correct}/{n})" if correct is not None and n else ""
        return f"{acc:.1%}{count}"
    return json.dumps(summary, sort_keys=True)[:200]


def _score_rows(metrics: dict[str, Any]) -> list[str]:
    rows = []
    for key, benches in sorted(metrics.items()):
        if not isinstance(benches, dict):
            continue
        for bench, modes in sorted(benches.items()):
            if isinstance(modes, dict) and modes:
                for mode, summary in sorted(modes.items()):
                    rows.append(f"| {bench} | {mode} | {_score(summary)} | `{key}` |")
    if not rows:
        return [_todo("held-out and benchmark scores, with the untrained base for comparison")]
    return ["| benchmark | mode | score | evaluation set |", "| --- | --- | --- | --- |", *rows]


def _training_lines(info: CardInfo) -> list[str]:
    lines = [f"- trained by: `{info.train_command}`" if info.train_command
             else f"- trained by: {_todo('the exact training command')}"]
    config = info.training.get("config") if isinstance(info.training, dict) else None
    if isinstance(config, dict) and config.get("preset"):
        lines.append(f"- training preset: `{config['preset']}`")
    for stage in ("sft", "preference"):
        result = info.training.get(stage) if isinstance(info.training, dict) else None
        if isinstance(result, dict) and result.get("kind"):
            lines.append(f"- {stage}: {result.get('kind')}, {result.get('steps', '?')} steps, "
                         f"final loss {result.get('final_loss', '?')}")
    lines.append(f"- exported by: `{info.export_command}`" if info.export_command
                 else f"- exported by: {_todo('the export command')}")
    return lines


def render_card(manifest: Any, info: CardInfo | None, size_bytes: int) -> str:
    """The Markdown model card of an exported adapter.

    Args:
        manifest: the adapter's `AdapterManifest`.
        info: what is known beyond the manifest (None: placeholders only).
        size_bytes: size of the adapter's weights file.
    """
    info = info or CardInfo()
    source = (f"{info.version} (`{info.version_id}`)" if info.version and info.version_id
              else info.version or _todo("the model version it was exported from"))
    settings = json.dumps(manifest.settings, sort_keys=True) if manifest.settings else "none"
    failures = ([f"- {f}" for f in info.known_failures] if info.known_failures
                else [f"- {_todo('what the model is known to get wrong')}"])
    lines = [
        f"# {manifest.name}",
        "",
        f"A LoRA adapter (PEFT format) over the embedded model `{manifest.base_model}`, trained "
        "by agentrt's self-improvement loop and exported from the merged model.",
        "",
        "| field | value |",
        "| --- | --- |",
        f"| base | `{manifest.base_model}` |",
        f"| model version | {source} |",
        f"| adapter | rank {manifest.rank}"
        + ("" if manifest.mean_rank in (None, manifest.rank)
           else f" at most (mean {manifest.mean_rank:.1f}: each layer the least that reproduces "
                "it)") + f", {manifest.dtype}, {manifest.layers} linear layers, "
        f"{size_bytes / 1e6:.1f} MB |",
        f"| adapter sha256 | `{manifest.adapter_sha256}` |",
        f"| reconstruction error | max relative {manifest.max_relative_error:.3g}, max absolute "
        f"{manifest.max_abs_error:.3g} |",
        f"| runtime settings | `{settings}` |",
        "",
        "## Training data",
        "",
        *_dataset_rows(info.datasets),
        "",
        "## How it was produced",
        "",
        *_training_lines(info),
        "",
        "## Scores",
        "",
        *_score_rows(info.metrics),
        "",
        "## Known failures",
        "",
        *failures,
        "",
    ]
    if manifest.ignored:
        lines += ["## Not carried by the adapter", "",
                  *[f"- `{k}` differs from the base (relative {v:.3g})"
                    for k, v in sorted(manifest.ignored.items())], ""]
    return "\n".join(lines)
