"""The `agentrt` command line: solve, traces, models, tools (and more as they land).

Every command turns agentrt errors into one line on stderr and exit 2; a usage error (unknown
command or option, missing or malformed value) is one line, plus a hint line, and exit 2 too;
a solve or resume that fails with any other exception (a model's runtime running out of
memory, say) is one line too, naming the exception and the trace that keeps its type and
message, and exit 1; other tracebacks are for bugs only. Text that came from a model or a
program is shown through `agentrt.core.display` (escaped), never raw. Settings come from the
environment and config file, overridden by flags.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from agentrt.cli.lazy import LazyRootGroup
from agentrt.core.config import Settings, load_settings
from agentrt.core.console import (
    BackendOpt,
    BaseUrlOpt,
    ConfigOpt,
    DatabaseUrlOpt,
    ModelOpt,
    run_app,
)
from agentrt.core.display import dumps, markup, strip_source_paths
from agentrt.core.errors import AgentrtError, InvalidInputError

__all__ = ["app", "main"]

# A group run without a command is a usage error ("Missing command"), not a page of help.
# The evaluation, router, tools, synth, data and iterate groups load when named
# (`agentrt.cli.lazy`); so do the runtime, the store and the servers, in the commands below.
app = typer.Typer(help="agentrt: hybrid fast/slow agentic problem solving.", cls=LazyRootGroup,
                  pretty_exceptions_enable=False, add_completion=False)
traces_app = typer.Typer(help="Inspect stored traces.")
models_app = typer.Typer(help="Embedded and local models.")


def _mount(sub_app: typer.Typer, name: str) -> None:
    app.add_typer(sub_app, name=name, no_args_is_help=False)


_mount(traces_app, "traces")
_mount(models_app, "models")

out = Console(emoji=False)
err = Console(stderr=True, emoji=False)



def _settings(config: Optional[Path] = None, **overrides) -> Settings:
    return load_settings(config, **overrides)


def _print_step(step) -> None:
    """Progress on stderr: one dim line per finished step (failures are reported once, at the end)."""
    if step.status != "ok" or step.kind not in ("llm", "tool"):
        return
    where = f"{markup(step.node)} " if step.node else ""
    tokens = f", {step.completion_tokens} tokens" if step.kind == "llm" else ""
    err.print(f"[dim]  {where}{markup(step.name)} ({step.kind}{tokens}, {step.latency_s:.1f} s)"
              "[/dim]", highlight=False)


def _run_solve(run, rt):
    """`run()`, then close the runtime; an exception outside agentrt's errors is printed as one
    line (its type, its message's first line and its last note: the runtime's, saying where its
    trace went) and ends the command with exit 1."""
    try:
        return run()
    except AgentrtError:
        raise
    except Exception as e:  # the runtime kept the trace with its type and message
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        text = f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
        notes = getattr(e, "__notes__", None)
        text += f" ({str(notes[-1]).strip()})" if notes else ""
        err.print(f"[red]error:[/red] {markup(strip_source_paths(text))}", highlight=False,
                  soft_wrap=True)
        raise typer.Exit(1) from None
    finally:
        rt.close()


def _print_solution(sol, as_json: bool) -> None:
    """A solution as one JSON object on stdout, or three readable lines."""
    if as_json:
        data = sol.model_dump(mode="json")
        data["usage"] = sol.usage.as_dict()
        print(dumps(data))
        return
    out.print(f"[bold]answer:[/bold] {markup(sol.answer)}")
    out.print(f"[dim]mode {markup(sol.mode)} ({markup(sol.route_reason or sol.requested_mode)}), "
              f"verdict {markup(sol.verdict)}, status {markup(sol.status)}, "
              f"{sol.usage.total_tokens} tokens, {sol.latency_s:.1f} s[/dim]", highlight=False)
    out.print(f"trace: {markup(sol.trace_id)}")


def _read_problem(problem: str) -> str:
    """PROBLEM, or standard input when it is "-" (bytes that are not UTF-8 become U+FFFD)."""
    if problem != "-":
        return problem
    if sys.stdin is None:
        raise InvalidInputError("no standard input to read the problem from")
    raw = getattr(sys.stdin, "buffer", None)  # absent where stdin is already text
    return sys.stdin.read() if raw is None else raw.read().decode("utf-8", errors="replace")


@app.command()
def solve(
    problem: str = typer.Argument(..., help="The problem to solve; - reads it from standard "
                                            "input."),
    mode: str = typer.Option("auto", "--mode", "-m",
                             help="auto (router decides), fast, slow or team."),
    as_json: bool = typer.Option(False, "--json", help="Print the solution as JSON."),
    backend: Optional[str] = BackendOpt,
    model: Optional[str] = ModelOpt,
    base_url: Optional[str] = BaseUrlOpt,
    database_url: Optional[str] = DatabaseUrlOpt,
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Solve PROBLEM and store the run as a trace."""
    from agentrt.runtime import Runtime  # lazy: the CLI loads what a command needs

    settings = _settings(config, backend=backend, model=model, base_url=base_url,
                         database_url=database_url)
    problem = _read_problem(problem)
    rt = Runtime(settings)
    sol = _run_solve(lambda: rt.solve(problem, mode=mode,
                                      on_step=None if as_json else _print_step), rt)
    _print_solution(sol, as_json)


def _store(config: Optional[Path], database_url: Optional[str]):
    from agentrt.store import TraceStore  # lazy: the CLI loads what a command needs

    return TraceStore.from_settings(_settings(config, database_url=database_url))


# What a trace's status and mode can be (`Runtime.solve` writes them), so a filter that can
# match nothing (a typo, "Error", the requested mode "team") is refused instead of listing none.
TRACE_STATUSES = ("running", "ok", "error", "cancelled", "interrupted",
                  *(f"budget_exceeded:{b}" for b in ("llm_calls", "tokens", "tool_runs",
                                                     "wall_time")))
TRACE_MODES = ("fast", "slow")


def _one_of(choices: tuple[str, ...]):
    """An option callback that refuses a value outside `choices`."""
    def check(value: Optional[str]) -> Optional[str]:
        if value is not None and value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of: {', '.join(choices)}")
        return value
    return check


@traces_app.command("list")
def traces_list(
    limit: int = typer.Option(20, min=1, max=10_000),
    status: Optional[str] = typer.Option(None, callback=_one_of(TRACE_STATUSES),
                                         help="Only traces with this status."),
    mode: Optional[str] = typer.Option(None, callback=_one_of(TRACE_MODES),
                                       help="Only traces answered on this path (a team "
                                            "solve's is slow)."),
    as_json: bool = typer.Option(False, "--json"),
    database_url: Optional[str] = typer.Option(None),
    config: Optional[Path] = ConfigOpt,
) -> None:
    """List recent traces, newest first ("interrupted": stopped, or left running by a process
    that is gone; `agentrt traces resume` continues them)."""
    from agentrt.cli.render import render_trace_list  # lazy: the CLI loads what a command needs

    store = _store(config, database_url)
    rows = store.list_traces(limit=limit, status=status, mode=mode)
    if as_json:
        print(dumps([r.model_dump(mode="json") for r in rows]))
    else:
        render_trace_list(rows, out)


@traces_app.command("show")
def traces_show(
    trace_id: str = typer.Argument(..., help="Trace id or a unique prefix (6+ characters)."),
    as_json: bool = typer.Option(False, "--json"),
    database_url: Optional[str] = typer.Option(None),
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Show one trace with all its steps (superseded ones marked)."""
    from agentrt.cli.render import render_trace  # lazy: the CLI loads what a command needs

    trace = _store(config, database_url).get_trace(trace_id, superseded=True)
    if as_json:
        print(dumps(trace.model_dump(mode="json")))
    else:
        render_trace(trace, out)


@traces_app.command("resume")
def traces_resume(
    trace_id: str = typer.Argument(..., help="Trace id or a unique prefix (6+ characters)."),
    as_json: bool = typer.Option(False, "--json", help="Print the solution as JSON."),
    backend: Optional[str] = BackendOpt,
    model: Optional[str] = ModelOpt,
    base_url: Optional[str] = BaseUrlOpt,
    database_url: Optional[str] = DatabaseUrlOpt,
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Resume an interrupted slow solve from its checkpoint; finished nodes are not re-run.

    The trace must be one nobody runs (interrupted, cancelled, error, or left running by a
    process that is gone); of two resumers of one trace, one runs it and the other is refused."""
    from agentrt.runtime import Runtime  # lazy: the CLI loads what a command needs

    settings = _settings(config, backend=backend, model=model, base_url=base_url,
                         database_url=database_url)
    rt = Runtime(settings)
    sol = _run_solve(lambda: rt.resume(trace_id, on_step=None if as_json else _print_step), rt)
    _print_solution(sol, as_json)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    workers: int = typer.Option(1, min=1, max=64, help="Worker processes (each loads the model)."),
    backend: Optional[str] = BackendOpt,
    model: Optional[str] = ModelOpt,
    base_url: Optional[str] = BaseUrlOpt,
    database_url: Optional[str] = DatabaseUrlOpt,
    log_level: str = typer.Option("info", help="uvicorn log level."),
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Serve the OpenAI-compatible API (solver models and the backend model; docs/SERVER.md)."""
    from agentrt.server.serve import serve as run_server  # lazy: the CLI loads what it needs

    run_server(host=host, port=port, workers=workers, config_file=config, log_level=log_level,
               backend=backend, model=model, base_url=base_url, database_url=database_url)


@app.command()
def ui(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, min=1, max=65535, help="TCP port."),
    database_url: Optional[str] = DatabaseUrlOpt,
    runs_dir: list[Path] = typer.Option([], "--runs-dir", help="A folder of iterate runs "
                                        "(repeatable; default ./runs and <home>/runs)."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Serve the web UI on a trace store, without loading a model (docs/UI.md)."""
    from agentrt.server.serve_ui import serve_ui  # lazy: the CLI loads what a command needs

    serve_ui(_settings(config, database_url=database_url), host=host, port=port,
             iterate_dirs=runs_dir or None, log_level=log_level)


@models_app.command("list")
def models_list(config: Optional[Path] = ConfigOpt,
                as_json: bool = typer.Option(False, "--json")) -> None:
    """List the embedded models and whether they are pulled (or what is wrong with them)."""
    from agentrt.llm.models import list_models  # lazy: the CLI loads what a command needs

    infos = list_models(_settings(config).home)
    if as_json:
        print(dumps([i.model_dump(mode="json") for i in infos]))
        return
    for i in infos:
        state = (f"installed at {i.path}" if i.installed
                 else f"not usable: {i.problem}" if i.problem
                 else "not pulled" if i.available else "not shipped in this installation")
        out.print(f"[bold]{markup(i.name)}[/bold]  {markup(i.description)}  ({markup(state)})")


@models_app.command("pull")
def models_pull(name: str, force: bool = typer.Option(
                    False, "--force", help="Convert again even when the cached copy looks "
                                           "complete (a damaged cache)."),
                config: Optional[Path] = ConfigOpt) -> None:
    """Convert an embedded model into the local cache (done automatically on first use)."""
    from agentrt.llm.models import pull_model  # lazy: the CLI loads what a command needs

    path = pull_model(name, _settings(config).home, progress=True, force=force)
    out.print(f"{markup(name)}: {markup(path)}", highlight=False)


@models_app.command("export-adapter")
def models_export_adapter(
    source: str = typer.Argument(..., help="A trained model directory or a registered version "
                                           "(promoted, v3, mv-...)."),
    out_dir: Path = typer.Option(..., "--out", help="Adapter folder to write."),
    name: str = typer.Option("smollm2-135m-agentrt", help="Name the model is shipped as."),
    base: Optional[str] = typer.Option(None, help="Embedded base model (default: the "
                                                  "version's base, else smollm2-135m)."),
    rank: int = typer.Option(32, min=1, max=1024, help="Adapter rank."),
    dtype: str = typer.Option("bf16", help="bf16, fp16 or fp32."),
    max_error: float = typer.Option(0.02, help="Refuse a larger relative reconstruction error."),
    rank_error: Optional[float] = typer.Option(
        None, help="Give each layer the least rank up to --rank that reproduces it within this "
                   "relative error (a smaller adapter); default: every layer at --rank."),
    settings_file: Optional[Path] = typer.Option(
        None, "--settings", help="TOML or JSON runtime settings shipped with the model "
                                 "(prompt_profile, router, unknown_escalates, limits)."),
    router_file: Optional[Path] = typer.Option(None, "--router",
                                               help="JSON router description to record."),
    train_command: Optional[str] = typer.Option(None, help="The command that trained the "
                                                           "model, for the model card."),
    known_failure: list[str] = typer.Option([], "--known-failure",
                                            help="A known failure for the model card "
                                                 "(repeatable)."),
    allow_other_diffs: bool = typer.Option(False, help="Record differing non-linear weights "
                                                       "instead of refusing."),
    force: bool = typer.Option(False, help="Replace an existing --out folder."),
    database_url: Optional[str] = typer.Option(None, help="Model registry database."),
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Export a trained (LoRA merged) model as a LoRA adapter over its embedded base."""
    from agentrt.llm.adapter_source import export_from_source  # lazy: loads what it needs

    settings = _settings(config, database_url=database_url)
    done = export_from_source(
        source, out_dir, settings=settings, name=name, base=base, rank=rank, dtype=dtype,
        max_error=max_error, rank_error=rank_error, settings_file=settings_file,
        router_file=router_file,
        train_command=train_command, known_failures=known_failure,
        strict=not allow_other_diffs, overwrite=force)
    m = done.manifest
    ranks = f"rank {m.rank}" + (f", mean {m.mean_rank:.1f}" if m.mean_rank != m.rank else "")
    out.print(f"{markup(m.name)}: {markup(done.path)} ({m.layers} layers, {ranks}, "
              f"{done.unchanged_layers} unchanged, "
              f"{done.size_bytes / 1e6:.1f} MB, max relative error {m.max_relative_error:.3g})",
              highlight=False)



def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app with one-line errors (see `agentrt.core.console.run_app`).
    SIGTERM (a supervisor, `timeout`) ends a solve like Ctrl-C does, so its trace is marked
    "interrupted" instead of being left "running"."""
    run_app(app, argv, sigterm=True)
