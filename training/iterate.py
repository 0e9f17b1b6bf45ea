"""`python training/iterate.py` (also `agentrt iterate`): the gated self-improvement loop.

    python training/iterate.py --preset tiny --out runs/tiny        # a few minutes, tests use it
    python training/iterate.py --preset cpu --out runs/cpu          # 2 CPU cores, < 45 minutes
    python training/iterate.py --preset cpu --out runs/cpu          # again: resumes, or reports
    agentrt iterate versions | promote v3 | rollback [v2]

Per iteration: generate problems, teacher traces, the current model's own solves (several
samples, auto mode), datasets, SFT, the preference step, evaluation on a frozen held-out set,
the gate, promotion. Options override the preset; `--set sft.max_steps=20` reaches nested
settings. Killed at any point, the same command resumes from the last complete stage or
checkpoint. `--executor ray [--ray-address ...]` runs self-solves and evaluations as Ray tasks
(each worker loads the model version; see docs/SCALING.md). Stages: `agentrt.training.pipeline`; figures and the plot: `agentrt.training.report`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from agentrt.core.config import load_settings
from agentrt.core.console import run_app
from agentrt.core.display import dumps, markup
from agentrt.core.errors import ConfigError
from agentrt.core.threads import configure as configure_threads
from agentrt.store import TraceStore
from agentrt.training.config import PLACEMENT, load_config
from agentrt.training.manifest import Manifest
from agentrt.training.pipeline import RunContext, run_iterate
from agentrt.training.registry import ModelRegistry
from agentrt.training.report import Progress
from agentrt.workflows.slow.toolbox import ToolBox

__all__ = ["iterate_app", "main", "run", "parse_sets"]

iterate_app = typer.Typer(help="Self-improvement: train, evaluate, gate and promote models.",
                          invoke_without_command=True, pretty_exceptions_enable=False,
                          add_completion=False)
out = Console()


def parse_sets(items: list[str]) -> dict[str, Any]:
    """`--set a.b=1` pairs as nested overrides; values are JSON when they parse, else text.

    Raises:
        ConfigError: an item is not key=value.
    """
    found: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes key=value, got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = found
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return found


def merge_sets(options: dict[str, Any], sets: dict[str, Any]) -> dict[str, Any]:
    """Command-line options with `--set` overrides; a key given both ways is an error.

    Raises:
        ConfigError: a `--set` key repeats an option given on the command line.
    """
    both = sorted(k for k in sets if options.get(k) is not None)
    if both:
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in both)
        raise ConfigError(f"set twice: {flags} and --set {', '.join(both)}; give one")
    return {**options, **sets}


def _csv(text: Optional[str], cast: Any = str) -> Optional[list[Any]]:
    return None if text is None else [cast(x.strip()) for x in text.split(",") if x.strip()]


def run(cfg: Any, run_dir: Path, *, home: Path, database_url: str, quiet: bool = False) -> dict:
    """Run or resume one self-improvement run (the library entry point of this script).

    Example:
        >>> from agentrt.training.config import PLACEMENT, load_config
        >>> run(load_config("tiny"), Path("runs/tiny"), home=Path(".agentrt"),
        ...     database_url="sqlite:///runs/tiny.db")  # doctest: +SKIP
    """
    configure_threads(cfg.threads)
    # Where solves run is not part of the experiment: a run started on threads may resume on Ray.
    manifest = Manifest(run_dir, cfg.model_dump(mode="json", exclude=PLACEMENT),
                        defaults=type(cfg)().model_dump(mode="json", exclude=PLACEMENT))
    ray_before = _ray_running() if cfg.executor == "ray" else True
    progress = Progress(quiet)
    manifest.listener = progress.stage
    store = TraceStore(database_url)
    tools = ToolBox()
    try:
        ctx = RunContext(cfg=cfg, dir=run_dir.resolve(), home=home, db_url=database_url,
                         store=store, registry=ModelRegistry(store), manifest=manifest,
                         tools=tools, progress=progress)
        return run_iterate(ctx)
    except BaseException:
        manifest.finish("interrupted")
        raise
    finally:
        progress.close()
        tools.close()
        store.close()
        if not ray_before and _ray_running():  # the Ray session this run started
            import ray  # heavy: ray

            ray.shutdown()


def _ray_running() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


@iterate_app.callback()
def iterate(
    ctx: typer.Context,
    preset: Optional[str] = typer.Option(None, help="tiny, cpu, cpu-long or gpu (options override it)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Run directory (default: "
                                           "runs/iterate-<preset>); the same one resumes."),
    iterations: Optional[int] = typer.Option(None, help="Iterations."),
    problems: Optional[int] = typer.Option(None, help="Training problems per iteration."),
    solve_problems: Optional[int] = typer.Option(None, help="Of those, solved by the model."),
    samples: Optional[int] = typer.Option(None, help="Samples per problem when self-solving."),
    families: Optional[str] = typer.Option(None, help="Problem families, comma separated."),
    difficulties: Optional[str] = typer.Option(None, help="Levels, e.g. 1,2."),
    teacher: Optional[str] = typer.Option(None, help="none, gold or model."),
    teacher_model: Optional[str] = typer.Option(None, help="Teacher model (teacher=model)."),
    teacher_base_url: Optional[str] = typer.Option(None, help="Teacher's OpenAI-compatible URL."),
    preference: Optional[str] = typer.Option(None, help="hypo, dpo, grpo or none."),
    base_model: Optional[str] = typer.Option(None, help="Model to start from."),
    gsm8k: Optional[int] = typer.Option(None, help="GSM8K problems evaluated (0: none)."),
    threads: Optional[str] = typer.Option(None, help="torch CPU threads: N or auto."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda."),
    seed: Optional[int] = typer.Option(None, help="Seed of training problems and training."),
    executor: Optional[str] = typer.Option(None, "--executor", help="Where self-solves and "
                                           "evaluations run: local (threads) or ray."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster to "
                                              "join with --executor ray (default: a local one)."),
    sets: list[str] = typer.Option([], "--set", help="Nested override, e.g. sft.max_steps=20."),
    home: Optional[Path] = typer.Option(None, help="agentrt home (model cache)."),
    database_url: Optional[str] = typer.Option(None, help="Store and registry database URL."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Run (or resume) the self-improvement loop; subcommands manage model versions."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"home": home, "database_url": database_url}
        return

    settings = load_settings(home=home, database_url=database_url)
    options = dict(iterations=iterations, problems=problems,
                   solve_problems=solve_problems, samples=samples,
                   families=_csv(families), difficulties=_csv(difficulties, int),
                   teacher=teacher, teacher_model=teacher_model,
                   teacher_base_url=teacher_base_url, preference=preference,
                   base_model=base_model, gsm8k=gsm8k, device=device,
                   threads=int(threads) if threads and threads.isdigit() else threads,
                   seed=seed, executor=executor, ray_address=ray_address)
    cfg = load_config(preset, **merge_sets(options, parse_sets(sets)))
    run_dir = out_dir or Path("runs") / f"iterate-{cfg.preset}"
    summary = run(cfg, run_dir, home=settings.home, database_url=settings.db_url, quiet=quiet)
    out.print(markup("\n".join(summary["table"])), highlight=False)
    out.print(f"summary: {markup(summary['summary'])}\nplot: {markup(summary['plot'])}",
              highlight=False)


def _registry(ctx: typer.Context) -> Any:
    opts = ctx.obj or {}
    settings = load_settings(home=opts.get("home"), database_url=opts.get("database_url"))
    return ModelRegistry(TraceStore(settings.db_url))


@iterate_app.command("versions")
def versions(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """List model versions, newest first (* marks the promoted one)."""
    reg = _registry(ctx)
    try:
        rows = reg.list()
    finally:
        reg.store.close()
    if as_json:
        print(dumps([v.model_dump(mode="json") for v in rows]))
        return
    for v in rows:
        mark = "*" if v.promoted else " "
        parent = v.parent_id or "-"
        out.print(f"{mark} {markup(v.label):<5} {markup(v.id)}  parent {markup(parent)}  "
                  f"{v.created_at:%Y-%m-%d %H:%M}  {markup(v.note)}", highlight=False)


@iterate_app.command("promote")
def promote(ctx: typer.Context, ref: str, reason: str = typer.Option("manual", "--reason")) -> None:
    """Point `promoted` at version REF (v3 or an id); servers follow within seconds."""
    reg = _registry(ctx)
    try:
        v = reg.promote(ref, reason=reason)
    finally:
        reg.store.close()
    out.print(f"promoted {markup(v.label)} ({markup(v.id)})", highlight=False)


@iterate_app.command("rollback")
def rollback(ctx: typer.Context, ref: Optional[str] = typer.Argument(None)) -> None:
    """Promote REF, or the version promoted before the current one."""
    reg = _registry(ctx)
    try:
        v = reg.rollback(ref)
    finally:
        reg.store.close()
    out.print(f"promoted {markup(v.label)} ({markup(v.id)}) again", highlight=False)


def main(argv: list[str] | None = None) -> None:
    """Script entry point, with the same error handling as the `agentrt` command."""
    run_app(iterate_app, argv, sigterm=True, prog="training/iterate.py")


if __name__ == "__main__":
    main()
