"""`agentrt eval`: run a benchmark, and report, compare and list runs.

    agentrt eval --bench gsm8k --limit 50 --mode auto --workers 2
    agentrt eval report RUN [RUN ...] [--out DIR]
    agentrt eval compare RUN_A RUN_B
    agentrt eval list

Running is the group's own callback, so `agentrt eval --bench ...` works without a subcommand.
RUN is a run directory, a run id, or a unique id prefix under the runs folder. This module only
parses flags and prints; the work is in `agentrt.eval.harness`, `report` and `compare`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from agentrt.core.config import Limits, Settings, load_settings
from agentrt.core.console import BackendOpt, BaseUrlOpt, ConfigOpt, DatabaseUrlOpt, ModelOpt
from agentrt.core.display import dumps, markup
from agentrt.core.errors import ConfigError
from agentrt.data_synth import infox  # noqa: F401 - registers the infox benchmarks
from agentrt.eval.compare import compare_runs, render_comparison
from agentrt.eval.harness import resume_eval, run_eval
from agentrt.eval.metrics import compute_metrics
from agentrt.eval.report import write_report
from agentrt.eval.runs import EvalSpec, list_runs, load_run, resolve_run, runs_root
from agentrt.execute import EXECUTORS, make_executor
from agentrt.router import policy_for_settings
from agentrt.runtime import Runtime

__all__ = ["eval_app"]

eval_app = typer.Typer(help="Evaluate on benchmarks; report and compare runs.")
out = Console(emoji=False)
err = Console(stderr=True, emoji=False)

RunsDirOpt = typer.Option(None, "--runs-dir", help="Folder of runs (default: <home>/eval_runs).")


def _runs_root(config: Optional[Path], runs_dir: Optional[Path]) -> Path:
    return runs_root(load_settings(config).home, runs_dir)


def _escaped(model):
    """A copy of a pydantic result whose strings (run ids, task names from the data) are
    escaped for the rich markup a renderer puts them in."""
    def walk(value):
        if isinstance(value, str):
            return markup(value)
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return type(model).model_validate(walk(model.model_dump(mode="json")))


def _summary(run, console: Console) -> None:
    met = compute_metrics(run.results, run.manifest.wall_s)
    o = met.overall
    t = Table(title=f"{markup(run.run_id)} ({markup(run.manifest.status)})", box=box.SIMPLE,
              pad_edge=False, collapse_padding=True)
    for col in ("n", "acc", "95% CI", "tok/prob", "calls", "tools", "s/prob", "wall s", "slow",
                "err"):
        t.add_column(col, justify="right", no_wrap=True, min_width=len(col))
    t.add_row(str(o.n), f"{100 * o.accuracy:.1f}%", f"{100 * o.ci_low:.1f}–{100 * o.ci_high:.1f}%",
              f"{o.tokens_per_problem:.0f}", f"{o.llm_calls_per_problem:.2f}",
              f"{o.tool_runs_per_problem:.2f}", f"{o.latency_s_mean:.1f}",
              f"{met.wall_s or 0:.0f}", f"{100 * o.slow_fraction:.0f}%", str(o.errors))
    console.print(t)
    if met.router is not None:
        r = met.router
        fmt = lambda v: "–" if v is None else f"{100 * v:.0f}%"  # noqa: E731
        console.print(f"router: escalated {r.escalated}, precision {fmt(r.precision)}, "
                      f"recall {fmt(r.recall)} over {r.labelled} graded fast attempts")


def _run(settings: Settings, spec, runs_dir: Optional[Path], write: bool, as_json: bool,
         executor_name: str = "local", ray_address: Optional[str] = None,
         resume: Optional[Path] = None) -> None:
    executor = make_executor(executor_name, workers=spec.workers,
                             factory=functools.partial(Runtime, settings), address=ray_address)
    rt = Runtime(settings)
    right = [0, 0]
    progress = Progress("[progress.description]{task.description}", BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(), console=err,
                        disable=as_json)
    task = progress.add_task(f"{markup(spec.bench)} ({markup(spec.mode)})", total=None)

    def on_result(r) -> None:
        right[0] += int(r.correct)
        right[1] += 1
        progress.update(task, advance=1, description=f"{markup(spec.bench)} "
                        f"({markup(spec.mode)}) {right[0]}/{right[1]} right")
        if r.error:
            progress.console.print(f"[yellow]problem {markup(r.problem_id)} failed:"
                                   f"[/yellow] {markup(r.error)}", highlight=False)

    def on_start(m) -> None:  # the bar shows once the problems loaded: a bad --bench is one line
        progress.update(task, total=m.problems, completed=m.done)
        progress.start()

    try:
        if resume is not None:
            run = resume_eval(rt, resume, workers=spec.workers, on_result=on_result,
                              on_start=on_start, executor=executor)
        else:
            run = run_eval(rt, spec, out=runs_dir, on_result=on_result, on_start=on_start,
                           executor=executor)
    finally:
        if progress.live.is_started:
            progress.stop()
        rt.close()
        getattr(executor, "shutdown", lambda: None)()
    for e in run.manifest.row_errors:
        err.print(f"[yellow]skipped row {e.row} of {markup(e.source)}:[/yellow] "
                  f"{markup(e.reason)}", highlight=False)
    if write:
        write_report([run], Path(run.path) / "report")
    if as_json:
        met = compute_metrics(run.results, run.manifest.wall_s)
        print(dumps({"run_id": run.run_id, "path": run.path, "status": run.manifest.status,
                     "metrics": met.model_dump(mode="json")}))
        return
    _summary(run, out)
    out.print(f"run: {markup(run.path)}", highlight=False)
    if write:
        out.print(f"report: {markup(Path(run.path) / 'report' / 'report.md')}", highlight=False)


@eval_app.callback(invoke_without_command=True)
def eval_main(
    ctx: typer.Context,
    bench: Optional[str] = typer.Option(None, "--bench", "-b", help="game24, gsm8k, math500, "
                                        "bbh, bbh:<task>, or jsonl:<path>."),
    data: Optional[Path] = typer.Option(None, "--data", help="Benchmark data folder "
                                        "(default: $AGENTRT_DATA, else ../shared/data)."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=1, help="First N problems."),
    mode: str = typer.Option("fast", "--mode", "-m",
                             help="fast, slow, auto, or team (the problem's agents debate: infox)."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, max=64, help="Concurrent solves."),
    executor: str = typer.Option("local", "--executor", help="Where solves run: local (threads "
                                 "here, --workers at a time) or ray (tasks on a Ray cluster)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster to join "
                                              "(default: start a local one)."),
    grader: Optional[str] = typer.Option(None, help="Grader for jsonl rows that name none."),
    router: Optional[str] = typer.Option(None, help="Router policy for auto (default: config)."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", min=1,
                                             help="Max tokens per LLM call."),
    runs_dir: Optional[Path] = typer.Option(None, "--out", help="Folder for run directories "
                                            "(default: <home>/eval_runs)."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Finish an interrupted or "
                                         "crashed run (directory, id or id prefix) with its own "
                                         "benchmark, limit and mode."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.md and plots."),
    as_json: bool = typer.Option(False, "--json", help="Print the run's metrics as JSON."),
    backend: Optional[str] = BackendOpt,
    model: Optional[str] = ModelOpt,
    base_url: Optional[str] = BaseUrlOpt,
    database_url: Optional[str] = DatabaseUrlOpt,
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Run a benchmark (with --bench), or one of the subcommands below."""
    if ctx.invoked_subcommand is not None:
        return
    if bench is None and resume is None:
        ctx.fail("Missing option '--bench' (or --resume, or a command: report, compare, list).")
    if bench is not None and resume is not None:
        raise ConfigError("--resume takes the run's own benchmark; leave out --bench")
    if executor not in EXECUTORS:
        raise ConfigError(f"invalid --executor {executor!r}: choose one of {', '.join(EXECUTORS)}")

    base = load_settings(config)
    limits = base.limits.model_copy(update={"max_tokens_per_call": max_tokens}) if max_tokens \
        else None
    settings = load_settings(config, backend=backend, model=model, base_url=base_url,
                             database_url=database_url, router=router, limits=limits)
    run_dir = None
    if resume is not None:  # the run's own benchmark, mode, limits and router
        run_dir = resolve_run(resume, _runs_root(config, runs_dir))
        earlier = load_run(run_dir).manifest
        bench, mode = earlier.spec.bench, earlier.spec.mode
        settings = settings.model_copy(update={
            "limits": Limits(**earlier.limits) if earlier.limits else settings.limits,
            "router": earlier.router or settings.router})
    if mode == "auto":  # every solve would fail on a router setting that names no policy
        policy_for_settings(settings)
    try:
        spec = EvalSpec(bench=bench, data=str(data) if data else None, limit=limit, mode=mode,
                        workers=workers, grader=grader, router=settings.router)
    except ValidationError as e:
        first = e.errors()[0]
        raise ConfigError(f"invalid --{first['loc'][0]}: {first['msg']}") from None
    _run(settings, spec, runs_dir, report, as_json, executor, ray_address, run_dir)


@eval_app.command("report")
def eval_report(
    runs: list[str] = typer.Argument(..., help="One or more runs (directory, id or id prefix)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Report folder (default: the "
                                           "run's report/ folder, or ./eval_report for several)."),
    runs_dir: Optional[Path] = RunsDirOpt,
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Write report.md with plots (accuracy vs tokens per mode, per-task bars) for RUNS."""
    root = _runs_root(config, runs_dir)
    loaded = [load_run(resolve_run(r, root)) for r in runs]
    default = Path(loaded[0].path) / "report" if len(loaded) == 1 else Path("eval_report")
    target = out_dir or default
    path = write_report(loaded, target)
    for run in loaded:
        _summary(run, out)
    out.print(f"report: {markup(path)}", highlight=False)


@eval_app.command("compare")
def eval_compare(
    run_a: str = typer.Argument(..., help="Baseline run."),
    run_b: str = typer.Argument(..., help="Run compared against it."),
    as_json: bool = typer.Option(False, "--json"),
    runs_dir: Optional[Path] = RunsDirOpt,
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Print RUN_A and RUN_B side by side with the differences (B minus A)."""
    root = _runs_root(config, runs_dir)
    cmp = compare_runs(load_run(resolve_run(run_a, root)), load_run(resolve_run(run_b, root)))
    if as_json:
        print(dumps(cmp.model_dump(mode="json")))
    else:
        render_comparison(_escaped(cmp), out)


@eval_app.command("list")
def eval_list(
    as_json: bool = typer.Option(False, "--json"),
    runs_dir: Optional[Path] = RunsDirOpt,
    config: Optional[Path] = ConfigOpt,
) -> None:
    """List evaluation runs, newest first."""
    manifests = list_runs(_runs_root(config, runs_dir))
    if as_json:
        print(dumps([m.model_dump(mode="json") for m in manifests]))
        return
    for m in manifests:
        out.print(f"[bold]{markup(m.run_id)}[/bold]  {markup(m.spec.bench)}  "
                  f"{markup(m.spec.mode)}  {markup(m.model_id)}  {m.done}/{m.problems} done, "
                  f"{m.errors} errors  {markup(m.status)}  {markup(m.created_at)}",
                  soft_wrap=True, highlight=False)
    if not manifests:
        err.print("no evaluation runs yet")
