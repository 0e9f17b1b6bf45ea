"""Reports of evaluation runs: a Markdown file with tables, plus PNG plots.

`write_report(runs, out_dir)` writes `report.md`, `accuracy_vs_tokens.png` (one point per run,
accuracy with its 95% Wilson interval against tokens per problem, coloured by mode, runs of the
same benchmark joined) and `per_task.png` (accuracy per task with intervals, one bar per mode;
runs of the same mode are pooled, so one report can span several benchmarks).
Plots are drawn with matplotlib's Agg canvas through the object API (no pyplot global state),
so reports can be written from any thread and without a display.

This module formats what `metrics.py` computes; it does not run or grade anything.
"""

from __future__ import annotations

from pathlib import Path

from agentrt.eval.metrics import GroupMetrics, RunMetrics, compute_metrics, group_metrics
from agentrt.eval.runs import EvalRun

__all__ = ["write_report", "render_markdown", "plot_accuracy_vs_tokens", "plot_per_task"]

MODE_COLORS = {"fast": "#1f77b4", "slow": "#d62728", "auto": "#2ca02c"}
_MARKERS = "osD^vP*X"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _label(run: EvalRun) -> str:
    m = run.manifest
    router = f" ({m.router})" if m.spec.mode == "auto" and m.router else ""
    return f"{m.spec.bench} {m.spec.mode}{router}"


def _summary_table(runs: list[EvalRun], metrics: list[RunMetrics]) -> list[str]:
    lines = ["| run | bench | mode | n | accuracy (95% CI) | prompt tok/problem | "
             "completion tok/problem | tok/solved | LLM calls | tool runs | mean s/problem | "
             "wall s | slow share | errors |", "|" + " --- |" * 14]
    for run, met in zip(runs, metrics):
        o, m = met.overall, run.manifest
        n = max(o.n, 1)
        mode = m.spec.mode + (f" ({m.router})" if m.spec.mode == "auto" and m.router else "")
        lines.append(
            f"| `{m.run_id}` | {m.spec.bench} | {mode} | {o.n} | {_pct(o.accuracy)} "
            f"({_pct(o.ci_low)}–{_pct(o.ci_high)}) | {o.prompt_tokens / n:.0f} | "
            f"{o.completion_tokens / n:.0f} | "
            f"{'–' if o.tokens_per_solved is None else f'{o.tokens_per_solved:.0f}'} | "
            f"{o.llm_calls_per_problem:.2f} | "
            f"{o.tool_runs_per_problem:.2f} | {o.latency_s_mean:.1f} | "
            f"{met.wall_s or 0:.0f} | {_pct(o.slow_fraction)} | {o.errors} |")
    return lines


def _router_table(runs: list[EvalRun], metrics: list[RunMetrics]) -> list[str]:
    rows = [(r, m.router) for r, m in zip(runs, metrics) if m.router is not None]
    if not rows:
        return []
    lines = ["", "## Routing (auto runs)", "",
             "Escalating is scored as a prediction that the fast answer is wrong (graded).", "",
             "| run | escalated | precision | recall | fast failure rate | labelled | unlabelled |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for run, rm in rows:
        lines.append(f"| `{run.run_id}` | {rm.escalated} | {_pct(rm.precision)} | "
                     f"{_pct(rm.recall)} | {_pct(rm.fast_failure_rate)} | {rm.labelled} | "
                     f"{rm.unlabelled} |")
    return lines


def _series(runs: list[EvalRun]) -> dict[str, dict[str, GroupMetrics]]:
    """Per-task metrics per series: runs of the same mode (and router, and model) pooled.

    Pooling lets one report cover several benchmarks run in several modes: each task then has
    one bar per mode rather than one per run.
    """
    several_models = len({r.manifest.model_id for r in runs}) > 1
    pooled: dict[str, dict[str, list]] = {}
    for run in runs:
        m = run.manifest
        key = m.spec.mode + (f" ({m.router})" if m.spec.mode == "auto" and m.router else "")
        key += f" · {m.model_id}" if several_models else ""
        for r in run.results:
            pooled.setdefault(key, {}).setdefault(r.family or "all", []).append(r)
    return {k: {t: group_metrics(rs) for t, rs in sorted(v.items())} for k, v in pooled.items()}


def _task_table(series: dict[str, dict[str, GroupMetrics]]) -> list[str]:
    tasks = sorted({t for per in series.values() for t in per})
    lines = ["", "## Per task", "", "| task | " + " | ".join(series) + " |",
             "|" + " --- |" * (len(series) + 1)]
    for t in tasks:
        cells = []
        for per in series.values():
            g = per.get(t)
            cells.append("–" if g is None else
                         f"{_pct(g.accuracy)} of {g.n} ({_pct(g.ci_low)}–{_pct(g.ci_high)})")
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return lines


def _problems_section(runs: list[EvalRun]) -> list[str]:
    lines: list[str] = []
    for run in runs:
        failed = [r for r in run.results if r.error]
        rows = run.manifest.row_errors
        if not failed and not rows:
            continue
        lines += ["", f"### `{run.run_id}`", ""]
        lines += [f"- malformed row {e.row} of {e.source}: {e.reason}" for e in rows[:20]]
        lines += [f"- problem {r.problem_id} failed: {r.error}" for r in failed[:20]]
        more = max(len(rows) - 20, 0) + max(len(failed) - 20, 0)
        if more:
            lines.append(f"- … and {more} more")
    return (["", "## Skipped rows and failed problems"] + lines) if lines else []


def render_markdown(runs: list[EvalRun], metrics: list[RunMetrics], plots: dict[str, str]) -> str:
    """The report's Markdown text."""
    models = sorted({f"{r.manifest.backend}:{r.manifest.model_id}"
                     + (f" on {r.manifest.device}" if r.manifest.device else "") for r in runs})
    lines = ["# Evaluation report", "",
             f"Model: {', '.join(models)}. Accuracy intervals are 95% Wilson intervals; "
             "failed problems count as wrong. Tokens are as the backend's tokenizer counted them.",
             "", "## Runs", ""]
    lines += _summary_table(runs, metrics)
    lines += _router_table(runs, metrics)
    lines += _task_table(_series(runs))
    lines += ["", "## Plots", ""] + [f"![{title}]({name})" for title, name in plots.items()]
    lines += _problems_section(runs)
    return "\n".join(lines) + "\n"


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # heavy: matplotlib
    from matplotlib.figure import Figure  # heavy: matplotlib

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def plot_accuracy_vs_tokens(runs: list[EvalRun], metrics: list[RunMetrics], path: Path) -> Path:
    """Accuracy (with CI) against tokens per problem, one point per run."""
    fig = _figure(7.5, 5)
    ax = fig.add_subplot(111)
    benches = sorted({r.manifest.spec.bench for r in runs})
    for b_i, bench in enumerate(benches):
        pts = sorted((m.overall.tokens_per_problem, i) for i, (r, m) in
                     enumerate(zip(runs, metrics)) if r.manifest.spec.bench == bench)
        if len(pts) > 1:
            ax.plot([x for x, _ in pts], [metrics[i].overall.accuracy for _, i in pts],
                    color="#bbbbbb", linewidth=1, zorder=1)
        for x, i in pts:
            o, mode = metrics[i].overall, runs[i].manifest.spec.mode
            ax.errorbar(x, o.accuracy, yerr=[[o.accuracy - o.ci_low], [o.ci_high - o.accuracy]],
                        fmt=_MARKERS[b_i % len(_MARKERS)], color=MODE_COLORS.get(mode, "#555555"),
                        capsize=4, markersize=8, zorder=2,
                        label=f"{bench} · {mode}")
            if len(runs) <= 4:  # with more points the legend says it without overlaps
                ax.annotate(_label(runs[i]), (x, o.accuracy), textcoords="offset points",
                            xytext=(6, 6), fontsize=7)
    ax.set_xlabel("tokens per problem (prompt + completion)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.set_title("Accuracy versus tokens, per mode")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_per_task(runs: list[EvalRun], path: Path) -> Path:
    """Accuracy per task, one bar per mode (runs of one mode pooled), with 95% intervals."""
    series = _series(runs)
    tasks = sorted({t for per in series.values() for t in per})
    width = 0.8 / max(len(series), 1)
    fig = _figure(max(6.0, 0.45 * len(tasks) * max(len(series), 1) + 2), 4.8)
    ax = fig.add_subplot(111)
    for j, (label, per) in enumerate(series.items()):
        xs, ys, lo, hi = [], [], [], []
        for k, t in enumerate(tasks):
            g = per.get(t)
            if g is None:
                continue
            xs.append(k + (j - (len(series) - 1) / 2) * width)
            ys.append(g.accuracy)
            lo.append(g.accuracy - g.ci_low)
            hi.append(g.ci_high - g.accuracy)
        ax.bar(xs, ys, width=width * 0.95, yerr=[lo, hi], capsize=3, label=label,
               color=MODE_COLORS.get(label.split(" ")[0]), alpha=1.0 - 0.35 * (j // 3))
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels(tasks, rotation=30 if len(tasks) > 4 else 0,
                       ha="right" if len(tasks) > 4 else "center", fontsize=8)
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.05)
    ax.set_title("Accuracy per task")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    return path


def write_report(runs: list[EvalRun], out_dir: Path | str) -> Path:
    """Write `report.md` and its PNG plots for one or more runs into `out_dir`.

    Returns:
        The path of `report.md`.

    Raises:
        ValueError: no runs given.
    """
    if not runs:
        raise ValueError("a report needs at least one run")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = [compute_metrics(r.results, r.manifest.wall_s) for r in runs]
    plot_accuracy_vs_tokens(runs, metrics, out / "accuracy_vs_tokens.png")
    plot_per_task(runs, out / "per_task.png")
    plots = {"accuracy versus tokens per mode": "accuracy_vs_tokens.png",
             "accuracy per task": "per_task.png"}
    path = out / "report.md"
    path.write_text(render_markdown(runs, metrics, plots), encoding="utf-8")
    return path
