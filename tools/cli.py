"""`agentrt tools ...`: list the tools, run one, and report the sandbox's isolation tier.

A typer sub-app (`app`) the main CLI mounts under "tools"; also runnable as
`python -m agentrt.tools.cli`. Results go to stdout as JSON; errors go to stderr as one line
("error: <code>: <message>") with a non-zero exit (2: bad input, 3: sandbox unavailable,
1: any other failure of the tool), never a traceback. A failing program run by `run python`
is a result, printed with exit 0. Text from the tool or the program is escaped
(`agentrt.core.display`): JSON keeps it exactly, error lines show control characters as escapes.
This module holds no tool logic; it parses arguments and prints.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Optional

import typer

from agentrt.core.display import dumps, printable, strip_source_paths
from agentrt.core.errors import AgentrtError, SandboxUnavailableError, ToolInputError
from agentrt.tools import TOOLS, get_tool
from agentrt.tools.sandbox import isolation_info

__all__ = ["app"]

app = typer.Typer(help="Symbolic tools and their sandbox.", no_args_is_help=True, add_completion=False)
run_app = typer.Typer(help="Run one tool and print its JSON result.")
app.add_typer(run_app, name="run", no_args_is_help=False)  # no tool named: a one-line usage error


def _emit(obj: Any) -> None:
    typer.echo(dumps(obj, indent=2))


def _fail(code: str, message: str, exit_code: int) -> None:
    line = " ".join(strip_source_paths(message).split())  # one line, whatever the tool said
    typer.echo(printable(f"error: {code}: {line}"), err=True)
    raise typer.Exit(exit_code)


def _guard(fn: Callable[[], Any]) -> None:
    """Run `fn`, print its result, and turn every error into one stderr line plus an exit code."""
    try:
        result = fn()
    except ToolInputError as e:
        _fail(e.code, e.message, 2)
    except SandboxUnavailableError as e:
        _fail(e.code, e.message, 3)
    except AgentrtError as e:
        _fail(e.code, e.message, 1)
    except Exception as e:  # noqa: BLE001 - an unreadable file, a broken tool: one line, exit 1
        _fail(type(e).__name__, str(e), 1)
    _emit(result)


@app.command("list")
def list_cmd() -> None:
    """List the registered tools with their input schemas."""
    def body() -> list[dict]:
        return [{"name": n, "description": get_tool(n).description, "input_schema": get_tool(n).input_schema}
                for n in TOOLS]

    _guard(body)


@app.command("sandbox-info")
def sandbox_info_cmd() -> None:
    """Print the isolation tier the sandbox found on this machine, with each layer."""
    _guard(lambda: isolation_info().model_dump())


@run_app.command("python")
def run_python(
    timeout: Optional[float] = typer.Option(None, "--timeout", help="wall-clock limit in seconds"),
    memory_mb: Optional[int] = typer.Option(None, "--memory-mb", help="memory limit in MiB"),
    stdin_file: Optional[str] = typer.Option(None, "--stdin-file", help="file given to the program as stdin"),
    strict: bool = typer.Option(False, "--strict", help="refuse to run without network isolation"),
) -> None:
    """Run the Python program read from standard input."""
    def body() -> dict:
        code = sys.stdin.read()
        args: dict[str, Any] = {"code": code}
        if timeout is not None:
            args["timeout_s"] = timeout
        if memory_mb is not None:
            args["memory_mb"] = memory_mb
        if stdin_file:
            try:
                with open(stdin_file, encoding="utf-8", errors="replace") as f:
                    args["stdin"] = f.read()
            except OSError as e:
                raise ToolInputError(f"cannot read --stdin-file {stdin_file}: {e.strerror}") from None
        return get_tool("python", strict=strict).run(args)

    _guard(body)


@run_app.command("sympy")
def run_sympy(
    op: str = typer.Option(..., "--op", help="simplify|expand|factor|solve|evaluate|diff|integrate|equiv|limit|series"),
    expr: Optional[str] = typer.Option(None, "--expr", help="expression or equation"),
    other: Optional[str] = typer.Option(None, "--other", help="second expression (equiv)"),
    var: Optional[str] = typer.Option(None, "--var", help="variable"),
    symbols: Optional[str] = typer.Option(None, "--symbols", help="comma-separated symbol names"),
    equation: Optional[list[str]] = typer.Option(None, "--equation", help="an equation of a system (repeat)"),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="time limit in seconds"),
    strict: bool = typer.Option(False, "--strict", help="refuse to run without network isolation"),
) -> None:
    """Run one sympy operation."""
    def body() -> dict:
        args: dict[str, Any] = {"op": op}
        for key, val in (("expr", expr), ("other", other), ("var", var), ("timeout_s", timeout)):
            if val is not None:
                args[key] = val
        if symbols:
            args["symbols"] = [s.strip() for s in symbols.split(",") if s.strip()]
        if equation:
            args["equations"] = list(equation)
        return get_tool("sympy", strict=strict).run(args)

    _guard(body)


if __name__ == "__main__":
    app()
