"""Text from models and programs reaches the terminal escaped: every CLI view, JSON and logs.

A scripted backend at the seam writes hostile text (CSI, OSC, C1, bidi overrides, backspace,
carriage return, rich markup, emoji codes) into every field a view shows: the problem, answers,
step outputs and errors, workflow roles, tool output. The real `agentrt` commands then must
print none of those characters raw; JSON output must stay valid and hold the original text.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agentrt.core.config import load_settings
from agentrt.core.display import (EscapingFilter, dumps, markup, printable, strip_source_paths)
from agentrt.llm.fake import FakeBackend
from agentrt.runtime import Runtime
from agentrt.store import StepRecord, TraceStore

H = ("\x1b[2J\x1b]0;owned\x07\x1b[31m[bold]loud[/bold]\x9b1m\x85\u202eevil\u2066\x08\r"
     "\x7f\u200f:smile:")
S = "\x1b[2J\x9b\u202e[i]x"  # fits the 16-character columns (modes)
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
AGENTRT = str(Path(sys.executable).with_name("agentrt"))

DESIGN = json.dumps({"nodes": [
    {"id": "calc", "kind": "tool", "tool": "python", "role": "coder " + H,
     "instruction": "compute " + H, "inputs": []},
    {"id": "fin", "kind": "llm", "role": "checker " + H, "instruction": "state " + H,
     "inputs": ["calc"]}], "final": "fin"})
RULES = [
    (r"Reflect on the following problem", "Restated: " + H),
    (r"Design a workflow of experts", DESIGN),
    (r"Judge whether its final answer", json.dumps({"reason": H, "verdict": "yes"})),
    (r"Expert: \w+ \([^)]*\), tool: python",
     json.dumps({"code": f"import sys\nprint({H!r})\nprint({H!r}, file=sys.stderr)"})),
    (r"Expert: fin ", f"The tool printed {H}.\nFinal answer: 7{H}"),
    (r"Verdict", H + "\nVerdict: yes"),
    (r"Final answer:", f"Because {H}.\nFinal answer: 7{H}"),
]


def hostile_backend(**_: object) -> FakeBackend:
    return FakeBackend(rules=RULES, default=H)


def assert_clean(text: str) -> None:
    found = RAW.search(text)
    assert found is None, f"raw {found.group()!r} at {found.start()}: {text[:200]!r}"


@pytest.fixture
def env(tmp_path):
    e = {k: v for k, v in os.environ.items()
         if not k.startswith("AGENTRT_") and k not in ("FORCE_COLOR", "NO_COLOR")}
    e.update({"AGENTRT_HOME": str(tmp_path / "home"), "COLUMNS": "160",
              "AGENTRT_DATABASE_URL": f"sqlite:///{tmp_path / 'traces.db'}"})
    return e


def cli(args, env, stdin=""):
    proc = subprocess.run([AGENTRT, *args], env=env, capture_output=True, text=True,
                          input=stdin, timeout=240)
    assert_clean(proc.stdout)
    assert_clean(proc.stderr)
    return proc


@pytest.fixture
def hostile_traces(env):
    """A slow and a fast solve by the hostile backend, and a trace with hostile text in every
    stored field; returns their ids."""
    settings = load_settings(backend="fake", model="fake", home=env["AGENTRT_HOME"],
                             database_url=env["AGENTRT_DATABASE_URL"])
    rt = Runtime(settings, backend=hostile_backend())
    try:
        ids = [rt.solve("What is 3+4? " + H, mode=m).trace_id for m in ("slow", "fast")]
    finally:
        rt.close()
    store = TraceStore(env["AGENTRT_DATABASE_URL"])
    tid = store.start_trace(problem=H, requested_mode=S, model_id=H, backend=H[:60], tags={"t": H})
    store.add_steps(tid, [
        StepRecord(kind="llm", name=H, node=H, outputs={"text": H}),
        StepRecord(kind="tool", name=H, node=H, status="error", error=H),
        StepRecord(kind="decision", name=H, outputs={"route": H, H: [H]}),
        StepRecord(kind="tool", name="python", outputs={"stdout": H})])
    store.finish_trace(tid, answer=H, status=H[:60], mode=S, verdict=S, error=H)
    store.close()
    return [*ids, tid]


def test_traces_show_and_list_escape_every_field(env, hostile_traces):
    for tid in hostile_traces:
        shown = cli(["traces", "show", tid], env)
        assert shown.returncode == 0, shown.stderr
        assert "\\x1b[2J" in shown.stdout and "\\u202e" in shown.stdout
        assert "[bold]loud[/bold]" in shown.stdout  # markup shown, not interpreted
        as_json = cli(["traces", "show", tid, "--json"], env)
        trace = json.loads(as_json.stdout)
        assert H in trace["problem"] and "\x1b[2J\x1b]0;owned\x07" in trace["answer"]
    assert "workflow" in cli(["traces", "show", hostile_traces[0]], env).stdout
    listed = cli(["traces", "list"], env)
    assert listed.returncode == 0 and "\\x1b" in listed.stdout
    rows = json.loads(cli(["traces", "list", "--json"], env).stdout)
    assert {r["problem"] for r in rows} == {H, "What is 3+4? " + H}


def test_solve_escapes_progress_answer_and_json(monkeypatch, capsys, env):
    from agentrt.cli import main

    for key in ("AGENTRT_HOME", "AGENTRT_DATABASE_URL"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.setattr(FakeBackend, "from_options", classmethod(
        lambda cls, model="fake", **options: hostile_backend()))
    main(["solve", "What is 3+4? " + H, "--mode", "slow", "--backend", "fake"])
    out = capsys.readouterr()
    assert_clean(out.out)
    assert_clean(out.err)
    assert "answer: 7\\x1b[2J" in out.out and "[bold]loud[/bold]" in out.out
    main(["solve", "What is 3+4? " + H, "--mode", "fast", "--backend", "fake", "--json"])
    out = capsys.readouterr()
    assert_clean(out.out)
    assert json.loads(out.out)["answer"].startswith("7\x1b[2J\x1b]0;owned\x07")


def test_tool_output_and_errors_are_escaped(env):
    code = f"import sys\nprint({H!r})\nprint({H!r}, file=sys.stderr)\n"
    ran = cli(["tools", "run", "python"], env, stdin=code)
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert result["stdout"] == H + "\n" and result["stderr"] == H + "\n"  # JSON keeps it exactly
    failed = cli(["tools", "run", "sympy", "--op", "simplify", "--expr", "(" + H], env)
    assert failed.returncode == 2 and failed.stderr.startswith("error: tool_input_error:")
    assert failed.stderr.count("\n") == 1


def test_eval_cli_escapes_problem_ids_errors_and_rows(monkeypatch, capsys, env, tmp_path):
    from agentrt.cli import main

    monkeypatch.setenv("AGENTRT_HOME", env["AGENTRT_HOME"])
    monkeypatch.setattr(FakeBackend, "from_options", classmethod(
        lambda cls, model="fake", **options: hostile_backend()))
    data = tmp_path / "q.jsonl"
    # Without NEL (U+0085): the run's results.jsonl is read back with str.splitlines, which
    # splits lines there (a limit of agentrt.eval.runs, not of the display).
    e = H.replace("\x85", "")
    data.write_text(json.dumps({"id": "p" + e, "question": "3+4? " + e, "answer": "7",
                                "grader": "numeric", "family": "f" + e}) + "\n"
                    + json.dumps({"question": e, "answer": "1", "grader": e}) + "\n")
    db = ["--database-url", env["AGENTRT_DATABASE_URL"]]
    runs = []
    for _ in range(2):
        main(["eval", "--bench", f"jsonl:{data}", "--backend", "fake", "--no-report", "--json",
              *db])
        out = capsys.readouterr()
        assert_clean(out.out)
        assert_clean(out.err)
        runs.append(json.loads(out.out)["run_id"])
    main(["eval", "--bench", f"jsonl:{data}", "--backend", "fake", "--no-report", *db])
    main(["eval", "list"])
    main(["eval", "compare", *runs])
    out = capsys.readouterr()
    assert_clean(out.out)
    assert_clean(out.err)
    assert "skipped row 2" in out.err and "accuracy ·" in out.out and "f\\x1b[2J" in out.out


def test_log_records_are_escaped():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(EscapingFilter())
    log = logging.getLogger("agentrt.test.display")
    log.addHandler(handler)
    try:
        log.warning("model said %s (%d)", H, 3)
        log.warning(H)
        try:
            raise RuntimeError(H)
        except RuntimeError:
            log.exception("failed: %(what)s", {"what": H})
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert_clean(text.replace("\n", " "))
    assert "(3)" in text and "RuntimeError: \\x1b[2J" in text


def test_escaping_functions():
    assert printable("a\tb\nc\x1b[0m\x9b\u202e") == "a\tb\nc\\x1b[0m\\x9b\\u202e"
    assert printable("\ud800\x00") == "\\ud800\\x00"
    assert markup("[bold]x[/bold]") == "\\[bold]x\\[/bold]"
    text = dumps({"k": H, "s": "\ud800", "ok": "naïve 数"})
    assert_clean(text)
    assert json.loads(text) == {"k": H, "s": "\ud800", "ok": "naïve 数"}
    assert "naïve 数" in text  # other non-ASCII stays readable
    assert strip_source_paths("cannot compile JSON schema: [04:07:18] /project/cpp/"
                              "json_schema_converter.cc:5082: Unsupported type") == \
        "cannot compile JSON schema: Unsupported type"
    assert strip_source_paths('x File "/usr/lib/python3.11/site-packages/sympy/core/a.py", '
                              "line 3, in f: bad") == "x bad"
    assert strip_source_paths("config /home/u/agentrt.toml is not valid TOML") == \
        "config /home/u/agentrt.toml is not valid TOML"
