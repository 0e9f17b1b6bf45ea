"""The evaluation plots as drawable SVG geometry: accuracy per task, one bar per run.

`task_bars({label: RunMetrics})` lays out one group per task ("all" first), one bar per run in
each group, with the 95% Wilson interval as a whisker, on a 0-100% axis. The template draws
the rectangles and lines; colours come from the run's position (CSS classes `run0`, `run1`).
Arithmetic only: no matplotlib, no text escaping.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agentrt.eval.metrics import GroupMetrics, RunMetrics

__all__ = ["Bar", "BarPlot", "task_bars"]

_BAR_W, _GAP, _GROUP_GAP, _H, _LEFT, _TOP, _BOTTOM = 22, 4, 26, 180, 44, 12, 70


@dataclass
class Bar:
    run: int
    label: str
    task: str
    accuracy: float
    n: int
    x: int
    y: float
    h: float
    ci_y1: float
    ci_y2: float
    w: int = _BAR_W


@dataclass
class BarPlot:
    width: int
    height: int
    base: int
    left: int
    runs: list[str]
    bars: list[Bar] = field(default_factory=list)
    groups: list[tuple[str, float]] = field(default_factory=list)  # (task, centre x)
    ticks: list[tuple[str, float]] = field(default_factory=list)  # ("50%", y)


def _y(v: float) -> float:
    return round(_TOP + _H * (1 - v), 1)


def task_bars(runs: dict[str, RunMetrics], max_tasks: int = 24) -> BarPlot:
    """Accuracy per task (with "all" first) for each run, ready to draw."""
    labels = list(runs)
    tasks = ["all"] + sorted({t for m in runs.values() for t in m.by_task})[:max_tasks]
    group_w = len(labels) * (_BAR_W + _GAP) - _GAP
    plot = BarPlot(width=_LEFT + len(tasks) * (group_w + _GROUP_GAP) + 10,
                   height=_TOP + _H + _BOTTOM, base=_TOP + _H, left=_LEFT, runs=labels,
                   ticks=[(f"{p}%", _y(p / 100)) for p in (0, 25, 50, 75, 100)])
    for ti, task in enumerate(tasks):
        x0 = _LEFT + _GROUP_GAP // 2 + ti * (group_w + _GROUP_GAP)
        plot.groups.append((task, x0 + group_w / 2))
        for ri, label in enumerate(labels):
            m: GroupMetrics | None = (runs[label].overall if task == "all"
                                      else runs[label].by_task.get(task))
            if m is None or m.n == 0:
                continue
            y = _y(m.accuracy)
            plot.bars.append(Bar(run=ri, label=label, task=task, accuracy=m.accuracy, n=m.n,
                                 x=x0 + ri * (_BAR_W + _GAP), y=y, h=round(_TOP + _H - y, 1),
                                 ci_y1=_y(m.ci_high), ci_y2=_y(m.ci_low)))
    return plot
