"""The python tool: its output contract, failure policy, input errors and the registry."""

from __future__ import annotations

import pytest

from agentrt.core.errors import ConfigError, SandboxUnavailableError, ToolExecutionError, ToolInputError, ToolTimeoutError
from agentrt.tools import TOOLS, Tool, get_tool, list_tools
from agentrt.tools.python_tool import PythonTool
from agentrt.tools.sandbox import Sandbox

KEYS = {"stdout", "stderr", "exit_code", "timed_out", "killed_reason", "duration_s", "truncated"}


@pytest.fixture
def tool(sandbox):
    return PythonTool(sandbox=sandbox)


def test_runs_code_and_returns_the_documented_keys(tool):
    out = tool.run({"code": "print(sum(range(101)))"})
    assert set(out) == KEYS
    assert out["stdout"] == "5050\n" and out["exit_code"] == 0 and not out["timed_out"]


def test_stdin_and_limits_from_input(tool):
    out = tool.run({"code": "print(input()[::-1])", "stdin": "abc\n", "timeout_s": 3, "memory_mb": 64})
    assert out["stdout"] == "cba\n"
    out = tool.run({"code": "x = bytearray(200 << 20)", "memory_mb": 64})
    # Refused by the address-space limit inside the program: a MemoryError the program itself
    # reports. The host saw no kill, so it claims none (stderr is the program's own word).
    assert out["exit_code"] == 1 and "MemoryError" in out["stderr"]
    assert out["killed_reason"] is None


def test_failure_is_output_by_default(tool):
    out = tool.run({"code": "raise SystemExit(4)"})
    assert out["exit_code"] == 4
    out = tool.run({"code": "import time\ntime.sleep(5)", "timeout_s": 0.3})
    assert out["timed_out"] and out["killed_reason"] == "timeout"


def test_failure_raises_when_asked(sandbox):
    strict_tool = PythonTool(sandbox=sandbox, raise_on_failure=True)
    with pytest.raises(ToolExecutionError) as e:
        strict_tool.run({"code": "1/0"})
    assert "ZeroDivisionError" in e.value.details["output"]["stderr"]
    with pytest.raises(ToolTimeoutError):
        strict_tool.run({"code": "while True: pass", "timeout_s": 0.3})


def test_syntax_error_is_a_readable_input_error(tool):
    with pytest.raises(ToolInputError) as e:
        tool.run({"code": "def f(:\n    pass"})
    assert e.value.details["line"] == 1 and "SyntaxError" in e.value.message


@pytest.mark.parametrize("args", [
    {}, {"code": ""}, {"code": 5}, {"code": "print(1)", "extra": 1}, {"code": "print(1)", "timeout_s": -1},
    {"code": "print(1)", "timeout_s": 10_000}, {"code": "print(1)", "memory_mb": 1}, {"code": "1", "result_var": "a b"},
    "print(1)", None, ["print(1)"],
])
def test_bad_input_is_a_tool_input_error(tool, args):
    with pytest.raises(ToolInputError):
        tool.run(args)


def test_timeout_above_the_tool_maximum_is_refused(sandbox):
    with pytest.raises(ToolInputError):
        PythonTool(sandbox=sandbox, max_timeout_s=5).run({"code": "pass", "timeout_s": 10})


def test_result_var(tool):
    assert tool.run({"code": "r = [1, {'k': 'v'}]", "result_var": "r"})["result"] == [1, {"k": "v"}]
    with pytest.raises(ToolInputError, match="not JSON-serializable"):
        tool.run({"code": "r = object()", "result_var": "r"})
    with pytest.raises(ToolInputError, match="did not define"):
        tool.run({"code": "pass", "result_var": "r"})
    out = tool.run({"code": "1/0", "result_var": "r"})
    assert out["exit_code"] == 1 and out["result"] is None and "did not define" in out["result_error"]


async def test_arun(tool):
    out = await tool.arun({"code": "print('async')"})
    assert out["stdout"] == "async\n"


def test_strict_tool_refuses_an_unisolated_sandbox():
    sb = Sandbox(preload=(), max_tier="process", use_landlock=False, use_seccomp=False)
    try:
        with pytest.raises(SandboxUnavailableError):
            PythonTool(sandbox=sb, strict=True).run({"code": "print(1)"})
    finally:
        sb.close()


def test_openai_spec_and_schema(tool):
    spec = tool.openai_spec()
    assert spec["type"] == "function" and spec["function"]["name"] == "python"
    params = spec["function"]["parameters"]
    assert params["type"] == "object" and params["required"] == ["code"] and params["additionalProperties"] is False
    assert set(params["properties"]) == {"code", "stdin", "timeout_s", "memory_mb", "result_var"}


def test_registry(sandbox):
    assert set(TOOLS) >= {"python", "sympy"}
    tools = list_tools(sandbox=sandbox)
    assert [t.name for t in tools] == list(TOOLS)
    assert all(isinstance(t, Tool) for t in tools)
    with pytest.raises(ConfigError):
        get_tool("nope")
    with pytest.raises(ConfigError):
        get_tool("python", bogus_option=1)
