"""The `agentrt` console script end to end, in subprocesses, as a user runs it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_cli

AGENTRT = [sys.executable, "-m", "agentrt.cli"]


def run(args, env, timeout=240, stdin=None):
    return subprocess.run(AGENTRT + args, env=env, capture_output=True, text=True,
                          timeout=timeout, input=stdin)


@pytest.fixture
def env(tmp_path):
    e = {k: v for k, v in os.environ.items() if not k.startswith("AGENTRT_")}
    e["AGENTRT_HOME"] = str(tmp_path / "home")
    e["AGENTRT_DATABASE_URL"] = f"sqlite:///{tmp_path / 'traces.db'}"
    e["HF_HUB_OFFLINE"] = "1"
    return e


def assert_one_line_error(proc, *fragments):
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for frag in fragments:
        assert frag in lines[0], lines[0]


def test_solve_json_then_show_trace(env):
    env["AGENTRT_BACKEND"] = "fake"
    proc = run(["solve", "What is 17*23+5?", "--mode", "fast", "--json"], env)
    assert proc.returncode == 0, proc.stderr
    sol = json.loads(proc.stdout)
    assert sol["mode"] == "fast" and sol["trace_id"]
    assert sol["usage"]["completion_tokens"] > 0
    assert sol["answer"] == "42"  # the fake backend's default reply, extracted as the answer

    shown = run(["traces", "show", sol["trace_id"][:8], "--json"], env)
    assert shown.returncode == 0, shown.stderr
    trace = json.loads(shown.stdout)
    steps = {s["name"]: s for s in trace["steps"]}
    assert steps["fast_answer"]["completion_tokens"] > 0
    assert steps["fast_check"]["completion_tokens"] > 0

    listed = run(["traces", "list", "--json"], env)
    assert [t["id"] for t in json.loads(listed.stdout)] == [sol["trace_id"]]
    table = run(["traces", "show", sol["trace_id"]], env)
    assert table.returncode == 0 and "fast_check" in table.stdout


def test_bad_input_gives_one_line_errors(env, tmp_path):
    env["AGENTRT_BACKEND"] = "fake"
    assert_one_line_error(run(["solve", "   "], env), "problem is empty")
    assert_one_line_error(run(["solve", "x", "--backend", "nope"], env), "backend")
    assert_one_line_error(run(["solve", "x", "--mode", "medium"], env), "mode")
    bad = tmp_path / "bad.toml"
    bad.write_text("backend = [unclosed\n")
    assert_one_line_error(run(["solve", "x", "--config", str(bad)], env), "not valid TOML")
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('backend = "fake"\n[limits]\nmax_llm_calls = -3\n')
    assert_one_line_error(run(["solve", "x", "--config", str(wrong)], env), "max_llm_calls")
    assert_one_line_error(run(["traces", "show", "0123456789"], env), "0123456789")
    env.pop("AGENTRT_BACKEND")
    assert_one_line_error(
        run(["solve", "x", "--backend", "hf", "--model", str(tmp_path / "no-such-model")], env),
        "no-such-model")


def test_unreachable_server_is_one_line(env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    proc = run(["solve", "x", "--backend", "openai", "--model", "m",
                "--base-url", f"http://127.0.0.1:{port}/v1"], env | {"AGENTRT_API_KEY": "k"})
    assert_one_line_error(proc, f"127.0.0.1:{port}")


@pytest.mark.slow
def test_embedded_model_solves_from_the_cli(env, embedded_home: Path):
    env["AGENTRT_HOME"] = str(embedded_home)
    env["AGENTRT_LIMIT_MAX_TOKENS_PER_CALL"] = "32"
    proc = run(["solve", "What is 17*23+5?", "--mode", "fast", "--json"], env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    sol = json.loads(proc.stdout)
    assert sol["usage"]["completion_tokens"] > 0 and sol["trace_id"]
    trace = json.loads(run(["traces", "show", sol["trace_id"], "--json"], env).stdout)
    assert [s["name"] for s in trace["steps"] if s["kind"] == "llm"] == ["fast_answer", "fast_check"]


# ---- usage errors: the installed console script, one line (plus a hint) and exit 2 -----------

CONSOLE_SCRIPT = str(Path(sys.executable).with_name("agentrt"))

USAGE_ERRORS = [
    ["solve"],                                   # missing argument
    ["bogus"],                                   # unknown command
    ["serve", "--port", "abc"],                  # not an integer
    ["serve", "--port", "70000"],                # out of range
    ["eval", "--limit", "-5"],
    ["eval", "run"],                             # unknown subcommand of a group with a callback
    ["eval"],                                    # neither --bench nor a subcommand
    ["traces", "list", "--limit", "abc"],
    ["traces", "show"],
    ["traces", "bogus"],
    ["traces"],                                  # a group without its command
    ["solve", "x", "--no-such-flag"],
    ["solve", "x", "--mode"],                    # option without its value
    ["models", "pull"],
    ["models"],
    ["router", "train", "--epochs", "x"],
    ["router", "train", "--slow-fraction", "2"],
    ["router"],
    ["tools", "run", "sympy"],                   # missing --op
    ["tools", "run", "python", "--timeout", "soon"],
    ["tools", "run"],
    ["tools", "frobnicate"],
    ["synth", "problems", "--family", "word"],   # missing --n and --out
    ["synth", "problems", "--n", "many"],
    ["synth"],
    ["data", "list", "--limit", "0"],
    [],
]




@pytest.fixture(scope="module")
def usage_errors(tmp_path_factory):
    home = tmp_path_factory.mktemp("usage")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTRT_")}
    env.update(AGENTRT_HOME=str(home / "home"), HF_HUB_OFFLINE="1",
               AGENTRT_DATABASE_URL=f"sqlite:///{home / 'traces.db'}")
    found = run_cli([(argv, None) for argv in USAGE_ERRORS], env, timeout=240)
    return dict(zip(map(tuple, USAGE_ERRORS), found))


@pytest.mark.parametrize("args", USAGE_ERRORS, ids=lambda a: " ".join(a) or "(none)")
def test_usage_errors_are_one_line_with_exit_2(usage_errors, args):
    code, stdout, stderr = usage_errors[tuple(args)]
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert code == 2, stderr
    assert "Traceback" not in stderr and stdout == ""
    assert 1 <= len(lines) <= 2, stderr
    assert lines[0].startswith("error: "), lines
    if len(lines) == 2:
        assert lines[1].startswith("Try '") and lines[1].endswith("--help' for help."), lines


def test_the_console_script_itself_reports_a_usage_error(env):
    proc = subprocess.run([CONSOLE_SCRIPT, "traces", "bogus"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines()[0].startswith("error: ")


def test_usage_error_names_the_problem(env):
    proc = subprocess.run([CONSOLE_SCRIPT, "traces", "list", "--limit", "abc"], env=env,
                          capture_output=True, text=True, timeout=120)
    first = proc.stderr.splitlines()[0]
    assert "--limit" in first and "integer" in first
    proc = subprocess.run([CONSOLE_SCRIPT, "tools"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert "Missing command" in proc.stderr and "run" in proc.stderr


def test_help_still_works(env):
    proc = subprocess.run([CONSOLE_SCRIPT, "traces", "--help"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "list" in proc.stdout


def test_missing_database_directory_is_an_error_not_created(env, tmp_path):
    missing = tmp_path / "no" / "such" / "dir"
    proc = run(["traces", "list", "--database-url", f"sqlite:///{missing}/t.db"], env)
    assert proc.returncode == 2
    assert_one_line_error(proc, "no directory", str(missing))
    assert not (tmp_path / "no").exists()


def test_the_cli_loads_a_command_group_only_when_it_is_named():
    """`agentrt --help`, a usage error or `agentrt solve` import neither the runtime nor the
    groups' modules; the stand-ins in the command list carry each group's own help."""
    code = ("import sys, agentrt.cli, agentrt.cli.lazy as L, typer\n"
            "heavy = [m for m in ('langgraph', 'sqlalchemy', 'agentrt.runtime', "
            "'agentrt.cli.eval', 'agentrt.training.iterate', 'agentrt.data_synth.cli', "
            "'agentrt.tools.cli') if m in sys.modules]\n"
            "helps = {n: L.load_group(n).help for n in L.LAZY_GROUPS}\n"
            "print(heavy, helps == {n: h for n, (_, _, h) in L.LAZY_GROUPS.items()})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["[]", "True"]


@pytest.mark.parametrize("damage", ["weights missing", "manifest cut short"])
def test_a_damaged_shipped_model_stops_only_the_commands_that_load_it(env, tmp_path, damage):
    import shutil

    from agentrt.core.shipped import SHIPPED_ENV, SHIPPED_MODEL, shipped_root

    if not (shipped_root() / SHIPPED_MODEL).is_dir():
        pytest.skip("no trained adapter is shipped in this checkout")
    folder = Path(shutil.copytree(shipped_root() / SHIPPED_MODEL,
                                  tmp_path / "shipped" / SHIPPED_MODEL))
    if damage == "weights missing":
        (folder / "adapter_model.safetensors").unlink()
    else:
        manifest = folder / "agentrt-adapter.json"
        manifest.write_text(manifest.read_text()[:100])
    env[SHIPPED_ENV] = str(tmp_path / "shipped")
    assert run(["traces", "list", "--json"], env).stdout.strip() == "[]"
    listed = run(["models", "list"], env)
    assert listed.returncode == 0 and "not usable" in listed.stdout
    for args in (["solve", "What is 1+1?", "--backend", "hf"], ["models", "pull", SHIPPED_MODEL]):
        proc = run(args, env)
        assert proc.returncode == 2
        assert_one_line_error(proc, str(folder), "restore the folder", "smollm2-135m")
    assert not (tmp_path / "home" / "models" / "smollm2-135m").exists()  # the base not pulled


def test_settings_errors_are_one_line(env, tmp_path):
    config = tmp_path / "mixed.toml"
    config.write_text('backend = "fake"\n[agentrt]\nmodel = "m"\n')
    assert_one_line_error(run(["traces", "list", "--config", str(config)], env),
                          "outside it (backend)")
    env["AGENTRT_LIMITS"] = "notjson"
    assert_one_line_error(run(["traces", "list"], env), "AGENTRT_LIMITS")


# The console script with a backend that fails the way a model's runtime can: not an agentrt
# error (the scripted backend is replaced at its seam, the rest is the real command).
_FAILING = """
import sys
from agentrt.cli import main
from agentrt.llm.fake import FakeBackend

def chat(self, request):
    raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\\nsee the allocator docs")

FakeBackend.chat = chat
main(sys.argv[1:])
"""


def test_a_solve_failing_outside_agentrt_errors_is_one_line_and_kept_as_error(env):
    proc = subprocess.run([sys.executable, "-c", _FAILING, "solve", "2+2?", "--mode", "fast",
                           "--backend", "fake"], env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 1
    assert_one_line_error(proc, "error: RuntimeError: CUDA out of memory. Tried to allocate "
                                "2.00 GiB (trace ", "was kept with status 'error')")
    [trace] = json.loads(run(["traces", "list", "--json"], env).stdout)
    assert trace["status"] == "error"
    assert trace["error"].startswith("RuntimeError: CUDA out of memory. Tried to allocate")
    assert trace["id"] in proc.stderr
    assert json.loads(run(["traces", "list", "--status", "interrupted", "--json"],
                          env).stdout) == []
