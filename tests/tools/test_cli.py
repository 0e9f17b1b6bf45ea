"""`agentrt tools ...` through typer's CliRunner, and once as `python -m tools.cli`."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from tools.cli import app

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
    proc = subprocess.run([sys.executable, "-m", "tools.cli", "run", "python", "--timeout", "5"],
                          input="print('via -m')", capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["stdout"] == "via -m\n"
