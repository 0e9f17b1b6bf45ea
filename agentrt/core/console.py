"""Running a typer app as a command: agentrt errors and usage errors become one line on stderr.

Exit codes: 0 done, 1 other failures, 2 agentrt errors and usage errors (and the codes a
command chooses, e.g. `agentrt tools`), 130 interrupted. Tracebacks are for bugs only. Both the
`agentrt` command and scripts such as `training/iterate.py` run through `run_app`.
"""

from __future__ import annotations

import signal
import sys

import typer
from rich.console import Console

from agentrt.core.display import escape_logs, markup, strip_source_paths
from agentrt.core.errors import AgentrtError

__all__ = ["run_app", "ConfigOpt", "BackendOpt", "ModelOpt", "BaseUrlOpt", "DatabaseUrlOpt"]

# Options the commands that build a runtime share (typer takes them as parameter defaults).
ConfigOpt = typer.Option(None, "--config", help="TOML config file (default: $AGENTRT_CONFIG).")
BackendOpt = typer.Option(None, help="hf, openai, vllm or fake.")
ModelOpt = typer.Option(None, help="Model name, local path or hub id.")
BaseUrlOpt = typer.Option(None, help="OpenAI-compatible server URL (several: comma-separated).")
DatabaseUrlOpt = typer.Option(None, help="Trace store URL.")

err = Console(stderr=True, emoji=False)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _usage_error(e: typer.TyperException) -> None:
    """A usage error as one line, plus a line saying where help is."""
    ctx = getattr(e, "ctx", None)
    message = e.format_message().strip() or "invalid usage"
    commands = getattr(getattr(ctx, "command", None), "commands", None)
    if commands and message.startswith("Missing command"):
        message = f"Missing command (one of: {', '.join(sorted(commands))})."
    line = markup(message.splitlines()[0])
    err.print(f"[red]error:[/red] {line}", highlight=False, soft_wrap=True)
    if ctx is not None:
        err.print(f"Try '{markup(ctx.command_path)} --help' for help.", highlight=False,
                  soft_wrap=True)


def run_app(app: typer.Typer, argv: list[str] | None = None, *, sigterm: bool = False,
            prog: str | None = None) -> None:
    """Run `app` on `argv` (default: the process's arguments) with one-line errors.

    Args:
        sigterm: treat SIGTERM like Ctrl-C (work in progress is marked interrupted).
        prog: the program name usage lines show (default: the script's name).

    Success returns, so the function can be called in-process; any other outcome exits.
    """
    if sigterm:
        signal.signal(signal.SIGTERM, _raise_interrupt)
    escape_logs()
    try:
        # Not standalone: typer returns the code of a `typer.Exit` and raises everything else.
        code = app(args=argv, prog_name=prog, standalone_mode=False)
    except AgentrtError as e:
        err.print(f"[red]error:[/red] {markup(strip_source_paths(str(e)))}", highlight=False,
                  soft_wrap=True)
        sys.exit(2)
    except typer.TyperException as e:  # usage errors (exit code 2) and other CLI errors
        _usage_error(e)
        sys.exit(getattr(e, "exit_code", 2) or 2)
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    if code == 130:
        err.print("interrupted")
    if isinstance(code, int) and code != 0:
        sys.exit(code)
