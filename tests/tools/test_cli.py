"""`agentrt tools ...` through typer's CliRunner, as `python -m agentrt.tools.cli`, and through the
`agentrt` entry point (whose exit codes are the ones users see)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentrt.core.errors import (SandboxUnavailableError, ToolExecutionError, ToolInputError,
                            ToolTimeoutError)
from agentrt.tools.cli import app

runner = CliRunner()


def test_list():
    res = runner.invoke(app, ["list"])
    assert res.exit_code == 0
    names = [t["name"] for t in json.loads(res.stdout)]
    assert names == ["python", "sympy"]


def test_sandbox_info():
    res = runner.invoke(app, ["sandbox-info"])
    assert res.exit_code == 0
    info = json.loads(res.stdout)
    assert info["tier"] in ("namespaces", "userns", "process") and "network_isolated" in info


def test_run_python_reads_code_from_stdin():
    res = runner.invoke(app, ["run", "python", "--timeout", "5", "--memory-mb", "128"], input="print(6*7)\n")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["stdout"] == "42\n" and out["exit_code"] == 0


def test_failing_program_is_a_result():
    res = runner.invoke(app, ["run", "python"], input="raise SystemExit(3)\n")
    assert res.exit_code == 0 and json.loads(res.stdout)["exit_code"] == 3


def test_run_sympy():
    res = runner.invoke(app, ["run", "sympy", "--op", "solve", "--expr", "x^2=4"])
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["solutions"] == ["-2", "2"]
    res = runner.invoke(app, ["run", "sympy", "--op", "solve", "--equation", "x+y=3", "--equation", "x-y=1",
                              "--symbols", "x,y"])
    assert json.loads(res.stdout)["solutions"] == [{"x": "2", "y": "1"}]


def test_errors_are_one_line_and_non_zero():
    for args, code_in in ((["run", "sympy", "--op", "nope", "--expr", "x"], None),
                          (["run", "python"], "def f(:\n"),
                          (["run", "python", "--timeout", "-1"], "print(1)")):
        res = runner.invoke(app, args, input=code_in)
        assert res.exit_code == 2
        assert res.stderr.startswith("error: tool_input_error:") and res.stderr.count("\n") == 1
        assert "Traceback" not in res.stderr and res.stdout == ""


def test_module_entry_point():
    proc = subprocess.run([sys.executable, "-m", "agentrt.tools.cli", "run", "python", "--timeout", "5"],
                          input="print('via -m')", capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["stdout"] == "via -m\n"


# ---- exit codes of `agentrt tools run` through the real entry point ---------------------------

AGENTRT = str(Path(sys.executable).with_name("agentrt"))


def agentrt(args, stdin="", tmp_path=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTRT_")}
    if tmp_path is not None:
        env["AGENTRT_HOME"] = str(tmp_path)
    return subprocess.run([AGENTRT, *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=120)


def test_console_script_exit_codes(tmp_path):
    bad = agentrt(["tools", "run", "sympy", "--op", "simplify", "--expr", "1/("], tmp_path=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("error: tool_input_error:")
    missing = agentrt(["tools", "run", "python", "--stdin-file", str(tmp_path / "nope")],
                      "print(1)", tmp_path)
    assert missing.returncode == 2 and "nope" in missing.stderr and missing.stdout == ""
    ok = agentrt(["tools", "run", "python"], "raise SystemExit(3)\n", tmp_path)
    assert ok.returncode == 0 and json.loads(ok.stdout)["exit_code"] == 3  # a result, not a failure


class _Failing:
    def __init__(self, exc):
        self.exc = exc

    def run(self, args):
        raise self.exc


@pytest.mark.parametrize("exc, code", [
    (ToolInputError("bad expression"), 2),
    (SandboxUnavailableError("no isolation"), 3),
    (ToolTimeoutError("ran past its limit"), 1),
    (ToolExecutionError("the computation failed"), 1),
    (RuntimeError("a bug in the tool"), 1),
    (OSError("disk gone"), 1),
])
def test_every_failure_kind_has_its_exit_code(monkeypatch, capsys, exc, code):
    from agentrt.tools import cli as tools_cli

    from agentrt.cli import main

    monkeypatch.setattr(tools_cli, "get_tool", lambda name, strict=False: _Failing(exc))
    with pytest.raises(SystemExit) as e:
        main(["tools", "run", "sympy", "--op", "simplify", "--expr", "x"])
    assert e.value.code == code
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: ")
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
