"""The `python` tool: run a model-written program in the sandbox and report what it printed.

Input {"code", "stdin"?, "timeout_s"?, "memory_mb"?, "result_var"?}; output {"stdout",
"stderr", "exit_code", "timed_out", "killed_reason", "duration_s", "truncated"} (plus "result"
or "result_error" when `result_var` names a global whose JSON value the caller wants back, and
"memory_limit_scope": "process" when the sandbox could bound only each process's address
space, not all the memory the run held).

Failure policy: a program that runs and fails (non-zero exit, timeout, a limit) is an OUTPUT
the model reads and repairs, not an exception, unless the tool is built with
`raise_on_failure=True` (then ToolExecutionError / ToolTimeoutError carry that output in
`details["output"]`). Input the program never got past is a ToolInputError: invalid fields, a
syntax error (with line and column), or a `result_var` value that is missing or not JSON-able
although the program exited 0. This module knows nothing about how the sandbox confines runs.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentrt.core.errors import SandboxUnavailableError, ToolExecutionError, ToolInputError, ToolTimeoutError
from agentrt.core.types import TOOL_MAX_MEMORY_MB, TOOL_MAX_TIMEOUT_S
from agentrt.tools.base import TypedTool, validate_input
from agentrt.tools.sandbox import Sandbox, SandboxLimits, SandboxResult

__all__ = ["PythonTool", "PythonInput"]


class PythonInput(BaseModel):
    """Input of the python tool."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=200_000, description="Python 3 program; print what you need")
    stdin: str | None = Field(None, max_length=1_000_000, description="text given on standard input")
    timeout_s: float | None = Field(None, gt=0, le=600, description="wall-clock limit in seconds")
    memory_mb: int | None = Field(None, ge=32, le=65536, description="memory limit in MiB")
    result_var: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                   description="name of a global whose JSON value to return as 'result'")


class PythonTool(TypedTool):
    """Run Python code in the process sandbox.

        >>> PythonTool().run({"code": "print(2**10)"})["stdout"]  # doctest: +SKIP
        '1024\\n'

    Args:
        sandbox: the sandbox to use (default: the process-wide shared one).
        strict: refuse to run without network isolation (SandboxUnavailableError).
        limits: default limits; `timeout_s`/`memory_mb` in the input override them, capped by
            `max_timeout_s` and `max_memory_mb`.
        raise_on_failure: raise instead of returning failed runs (see the module docstring).
    """

    name = "python"
    description = ("Run a Python 3 program in an isolated sandbox (no network, no files kept, "
                   "sympy and the standard library available). Returns stdout, stderr and exit status.")
    Input = PythonInput

    def __init__(self, *, sandbox: Sandbox | None = None, strict: bool = False, limits: SandboxLimits | None = None,
                 raise_on_failure: bool = False, max_timeout_s: float = TOOL_MAX_TIMEOUT_S,
                 max_memory_mb: int = TOOL_MAX_MEMORY_MB) -> None:
        self._sandbox = sandbox
        self.strict = strict
        self.limits = limits or SandboxLimits()
        self.raise_on_failure = raise_on_failure
        self.max_timeout_s = max_timeout_s
        self.max_memory_mb = max_memory_mb

    @property
    def sandbox(self) -> Sandbox:
        """The sandbox runs go to."""
        if self._sandbox is None:
            self._sandbox = Sandbox.shared()
        return self._sandbox

    def _prepare(self, args: dict) -> tuple[PythonInput, dict[str, Any]]:
        inp = validate_input(PythonInput, args)
        assert isinstance(inp, PythonInput)
        update: dict[str, Any] = {}
        if inp.timeout_s is not None:
            if inp.timeout_s > self.max_timeout_s:
                raise ToolInputError(f"timeout_s {inp.timeout_s} exceeds the maximum {self.max_timeout_s}")
            update["timeout_s"] = inp.timeout_s
        if inp.memory_mb is not None:
            if inp.memory_mb > self.max_memory_mb:
                raise ToolInputError(f"memory_mb {inp.memory_mb} exceeds the maximum {self.max_memory_mb}")
            update["memory_mb"] = inp.memory_mb
        if self.strict and not self.sandbox.info.network_isolated:
            raise SandboxUnavailableError(f"strict mode: sandbox tier {self.sandbox.info.tier!r} has no network isolation")
        limits = self.limits.model_copy(update=update)
        return inp, {"stdin": inp.stdin, "limits": limits, "result_var": inp.result_var}

    def _output(self, inp: PythonInput, res: SandboxResult) -> dict:
        if res.syntax_error:
            se = res.syntax_error
            where = f"line {se.get('line')}, column {se.get('offset')}"
            raise ToolInputError(f"SyntaxError: {se.get('message')} ({where}): {str(se.get('text') or '').strip()}",
                                 **{k: se.get(k) for k in ("line", "offset", "text")})
        out = {"stdout": res.stdout, "stderr": res.stderr, "exit_code": res.exit_code, "timed_out": res.timed_out,
               "killed_reason": res.killed_reason, "duration_s": res.duration_s, "truncated": res.truncated}
        if res.memory_limit_scope != "run":
            out["memory_limit_scope"] = res.memory_limit_scope
        if inp.result_var:
            if res.result_error and res.ok:
                raise ToolInputError(f"result_var {inp.result_var!r}: {res.result_error}", output=out)
            out["result"] = res.result
            if res.result_error:
                out["result_error"] = res.result_error
        if self.raise_on_failure and res.timed_out:
            raise ToolTimeoutError(f"the program ran past its {res.duration_s:.1f}s limit", output=out)
        if self.raise_on_failure and not res.ok:
            raise ToolExecutionError(f"the program failed (exit {res.exit_code}, {res.killed_reason or 'error'})",
                                     output=out)
        return out

    def run(self, args: dict) -> dict:
        """Run the program; see the module docstring for output and errors."""
        inp, kw = self._prepare(args)
        return self._output(inp, self.sandbox.run(inp.code, **kw))

    async def arun(self, args: dict) -> dict:
        """Async run; cancelling the awaiting task kills the program's whole process tree."""
        inp, kw = self._prepare(args)
        return self._output(inp, await self.sandbox.arun(inp.code, **kw))
