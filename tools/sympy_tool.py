"""The `sympy` tool: exact algebra on model-written math, computed inside the sandbox.

Input {"op", "expr", "other"?, "symbols"?, "var"?, "equations"?, ...}; output {"result",
"latex", ...} with "solutions" for solve, "value" for evaluate and "equivalent" plus "method"
for equiv. The model's text is parsed by sympy (which uses `eval`) only inside a confined
sandbox process (`agentrt.tools.sympy_worker`); this host side validates the input, runs the worker
with the run's limits and maps its answer to output or a typed error: ToolInputError for
input the model can fix (unknown op, unparseable expression), ToolTimeoutError when the
computation ran past its limit, ToolExecutionError otherwise. It knows nothing about how the
sandbox confines runs.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentrt.core.errors import SandboxUnavailableError, ToolExecutionError, ToolInputError, ToolTimeoutError
from agentrt.tools.base import TypedTool, validate_input
from agentrt.tools.sandbox import Sandbox, SandboxLimits, SandboxResult

__all__ = ["SympyTool", "SympyInput", "OPS"]

OPS = ("simplify", "expand", "factor", "solve", "evaluate", "diff", "integrate", "equiv", "limit", "series")
_ENTRY = "agentrt.tools.sympy_worker:main"


class SympyInput(BaseModel):
    """Input of the sympy tool."""

    model_config = ConfigDict(extra="forbid")

    op: Literal[OPS] = Field(description="operation: " + ", ".join(OPS))  # type: ignore[valid-type]
    expr: str | None = Field(None, max_length=20_000, description="expression or equation (plain text or simple LaTeX)")
    other: str | None = Field(None, max_length=20_000, description="second expression (equiv)")
    symbols: list[str] | None = Field(None, max_length=26, description="symbol names (also the unknowns of a system)")
    var: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="variable to solve/diff/integrate in")
    equations: list[str] | None = Field(None, max_length=26, description="equations of a system (solve)")
    lower: str | None = Field(None, max_length=1000, description="lower bound (definite integrate)")
    upper: str | None = Field(None, max_length=1000, description="upper bound (definite integrate)")
    point: str | None = Field(None, max_length=1000, description="point for limit/series (default 0)")
    direction: Literal["+", "-", "+-"] | None = Field(None, description="side of a limit")
    order: int | None = Field(None, ge=1, le=50, description="derivative order or series order")
    digits: int | None = Field(None, ge=1, le=1000, description="significant digits (evaluate)")
    tolerance: float | None = Field(None, gt=0, lt=1, description="relative tolerance (equiv)")
    timeout_s: float | None = Field(None, gt=0, le=120, description="time limit in seconds")

    @model_validator(mode="after")
    def _needs(self) -> "SympyInput":
        if self.op == "solve" and not (self.expr or self.equations):
            raise ValueError("solve needs 'expr' or 'equations'")
        if self.op != "solve" and not self.expr:
            raise ValueError(f"op {self.op!r} needs 'expr'")
        if self.op == "equiv" and not self.other:
            raise ValueError("equiv needs 'other'")
        for name in (self.symbols or []):
            if not name.isidentifier() or len(name) > 40:
                raise ValueError(f"invalid symbol name {name!r}")
        return self


class SympyTool(TypedTool):
    """Computer algebra (sympy) in the sandbox.

        >>> SympyTool().run({"op": "equiv", "expr": r"\\frac{1}{2}", "other": "0.5"})["equivalent"]  # doctest: +SKIP
        True

    Args:
        sandbox: the sandbox to use (default: the process-wide shared one, which preloads sympy).
        strict: refuse to run without network isolation.
        limits: limits of each computation (default: 10 s, 512 MiB).
    """

    name = "sympy"
    description = ("Exact math with sympy: simplify, expand, factor, solve (equations and systems), evaluate "
                   "numerically, diff, integrate, limit, series, and equiv (are two answers equal). Accepts plain "
                   "text or simple LaTeX.")
    Input = SympyInput

    def __init__(self, *, sandbox: Sandbox | None = None, strict: bool = False,
                 limits: SandboxLimits | None = None) -> None:
        self._sandbox = sandbox
        self.strict = strict
        self.limits = limits or SandboxLimits()

    @property
    def sandbox(self) -> Sandbox:
        """The sandbox computations go to."""
        if self._sandbox is None:
            self._sandbox = Sandbox.shared()
        return self._sandbox

    def _prepare(self, args: dict) -> tuple[dict, dict[str, Any]]:
        inp = validate_input(SympyInput, args)
        assert isinstance(inp, SympyInput)
        if self.strict and not self.sandbox.info.network_isolated:
            raise SandboxUnavailableError(f"strict mode: sandbox tier {self.sandbox.info.tier!r} has no network isolation")
        limits = self.limits
        if inp.timeout_s is not None:
            limits = limits.model_copy(update={"timeout_s": inp.timeout_s})
        payload = inp.model_dump(exclude_none=True)
        payload.pop("timeout_s", None)
        return payload, {"entry": _ENTRY, "args": payload, "limits": limits}

    @staticmethod
    def _output(res: SandboxResult) -> dict:
        if res.timed_out:
            raise ToolTimeoutError(f"the computation ran past its {res.duration_s:.1f}s limit; simplify the request")
        answer = res.result
        if not res.ok or not isinstance(answer, dict):
            reason = res.killed_reason or res.result_error or f"exit {res.exit_code}"
            raise ToolExecutionError(f"the computation failed ({reason})", stderr=res.stderr[-2000:])
        err = answer.get("error")
        if isinstance(err, dict):
            cls = ToolInputError if err.get("kind") == "input" else ToolExecutionError
            raise cls(str(err.get("message", "sympy error"))[:2000])
        if not isinstance(answer.get("result"), str):
            raise ToolExecutionError("the computation returned a malformed answer")
        return answer

    def run(self, args: dict) -> dict:
        """Run one operation; see the module docstring for output and errors."""
        _, kw = self._prepare(args)
        return self._output(self.sandbox.run(None, **kw))

    async def arun(self, args: dict) -> dict:
        """Async run; cancelling the awaiting task kills the computation."""
        _, kw = self._prepare(args)
        return self._output(await self.sandbox.arun(None, **kw))
