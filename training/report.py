"""What a run shows: progress bars per stage, the summary table, the accuracy plot.

`Progress` draws one rich progress bar per stage on stderr (problems solved, traces written,
optimizer steps through a `TrainerCallback`, evaluation runs) and a line when a stage ends;
quiet, it draws nothing. `write_report` reads the run's manifest and registry and writes
`summary.json`, `summary.md` and `accuracy.png` (held-out accuracy per iteration and mode,
GSM8K dashed) into the run directory and returns the table. This module reads; it runs nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bar

__all__ = ["Progress", "write_report", "summary_rows", "stage_shares"]


class Progress:
    """Per-stage progress on stderr (or nothing when `quiet`)."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        if not quiet:

            self.console = Console(stderr=True)
            self._bar = Bar(TextColumn("{task.description:<28}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(), console=self.console)
            self._bar.start()

    def __call__(self, name: str, done: int, total: int) -> None:
        if self._bar is None:
            return
        task = self._tasks.get(name)
        if task is None:
            task = self._tasks[name] = self._bar.add_task(name, total=max(total, 1))
        self._bar.update(task, completed=done, total=max(total, 1))

    def stage(self, key: str, wall_s: float | None = None, resumed: bool = False) -> None:
        if self._bar is None:
            return
        if resumed:
            self._bar.console.print(f"[dim]{key}: done in an earlier start, skipped[/dim]")
        elif wall_s is not None:
            self._bar.console.print(f"[green]{key}[/green] finished in {wall_s:.1f} s")

    def trainer_callback(self, name: str) -> Any:
        from transformers import TrainerCallback  # heavy: transformers

        progress = self

        class _Steps(TrainerCallback):
            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
                progress(f"train {name}", state.global_step, state.max_steps or 1)
                return control

        return _Steps()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _fmt(acc: float | None) -> str:
    return "-" if acc is None else f"{100 * acc:.1f}"


def summary_rows(ctx: Any) -> list[dict[str, Any]]:
    """One row per model of the run: the base, then each iteration's candidate."""
    key = ctx.manifest.outputs("setup")["eval_key"]
    base = ctx.registry.get(ctx.manifest.outputs("setup")["base_id"])
    rows = [{"iteration": 0, "version": base.label, "promoted": None,
             "scores": base.metrics.get(key, {})}]
    for k in range(1, ctx.cfg.iterations + 1):
        stage = ctx.manifest.data.stages.get(f"it{k}/gate")
        if stage is None:
            continue
        v = ctx.registry.get(stage.outputs["version_id"])
        rows.append({"iteration": k, "version": v.label, "promoted": stage.outputs["promote"],
                     "scores": v.metrics.get(key, {}), "gate": stage.outputs.get("reason")})
    return rows


def stage_shares(ctx: Any) -> dict[str, Any]:
    """Wall time per stage kind (teacher, sft, eval, ...) and its share of the run."""
    times: dict[str, float] = {}
    for key, wall in ctx.manifest.stage_times().items():
        kind = key.split("/", 1)[-1]
        times[kind] = times.get(kind, 0.0) + wall
    total = sum(times.values()) or 1.0
    return {"total_s": total, "stages": {k: {"s": round(v, 1), "share": round(v / total, 3)}
                                         for k, v in times.items()}}


def _table(rows: list[dict[str, Any]], modes: list[str], gsm_modes: list[str]) -> list[str]:
    head = ["iteration", "version"] + [f"held-out {m}" for m in modes] + \
        [f"GSM8K {m}" for m in gsm_modes] + ["promoted"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        held, gsm = r["scores"].get("heldout", {}), r["scores"].get("gsm8k", {})
        cells = [str(r["iteration"]), r["version"]]
        cells += [_fmt(held.get(m, {}).get("accuracy")) for m in modes]
        cells += [_fmt(gsm.get(m, {}).get("accuracy")) for m in gsm_modes]
        cells.append("base" if r["promoted"] is None else ("yes" if r["promoted"] else "no"))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _plot(rows: list[dict[str, Any]], modes: list[str], gsm_modes: list[str], out: Path) -> None:
    import matplotlib  # heavy: matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: matplotlib

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [r["iteration"] for r in rows]
    for mode in modes:
        ys = [100 * r["scores"].get("heldout", {}).get(mode, {}).get("accuracy", float("nan"))
              for r in rows]
        ax.plot(xs, ys, marker="o", label=f"held-out {mode}")
    for mode in gsm_modes:
        ys = [100 * r["scores"].get("gsm8k", {}).get(mode, {}).get("accuracy", float("nan"))
              for r in rows]
        ax.plot(xs, ys, marker="x", linestyle="--", label=f"GSM8K {mode}")
    ax.set_xlabel("iteration (0 = untrained base)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_xticks(xs)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def write_report(ctx: Any) -> dict[str, Any]:
    """Write summary.json, summary.md and accuracy.png; return their paths and the table."""
    cfg = ctx.cfg
    rows = summary_rows(ctx)
    gsm_modes = cfg.gsm8k_modes if cfg.gsm8k else []
    lines = _table(rows, list(cfg.eval_modes), gsm_modes)
    shares = stage_shares(ctx)
    summary = {"run_id": ctx.run_id, "preset": cfg.preset, "rows": rows, "stages": shares}
    (ctx.dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    md = [f"# Run {ctx.run_id} (preset {cfg.preset})", "", *lines, "",
          "| stage | seconds | share |", "|---|---:|---:|"]
    md += [f"| {k} | {v['s']} | {100 * v['share']:.1f}% |" for k, v in shares["stages"].items()]
    (ctx.dir / "summary.md").write_text("\n".join(md) + "\n")
    _plot(rows, list(cfg.eval_modes), gsm_modes, ctx.dir / "accuracy.png")
    return {"summary": str(ctx.dir / "summary.json"), "plot": str(ctx.dir / "accuracy.png"),
            "table": lines}
