"""The `agentrt` command on input a user or a script may give it: a problem on standard input
(empty, not UTF-8), filters that can match nothing, benchmarks and settings that would fail
every problem. Each gives one line on stderr and exit 2, or works; none leaves a trace running.

Every case runs through the console script's entry point, `agentrt.cli.main`, in ONE subprocess
(each spawn would import the whole CLI again), on the scripted backend.
"""

from __future__ import annotations

import json
import os

import pytest

from agentrt.store import TraceStore
from helpers import run_cli


TWINS = ("abcdef" + "0" * 26, "abcdef" + "1" * 26)  # two traces sharing a 6-character prefix
ROW = {"id": "p1", "problem": "What is 2+2?", "answer": "4", "grader": "numeric"}


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    """Run every case of CASES in one process: (case -> result, the folder of the benchmark
    file and the runs, the store's URL)."""
    root = tmp_path_factory.mktemp("hostile")
    db = f"sqlite:///{root / 'traces.db'}"
    store = TraceStore(db)
    for tid in TWINS:
        store.start_trace(problem="p", requested_mode="fast", model_id="fake", backend="fake",
                          trace_id=tid)
        store.finish_trace(tid, answer="4", status="ok", mode="fast")
    store.close()
    (root / "bench.jsonl").write_text(json.dumps(ROW) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTRT_")}
    env.update(AGENTRT_HOME=str(root / "home"), AGENTRT_DATABASE_URL=db, HF_HUB_OFFLINE="1",
               AGENTRT_BACKEND="fake", AGENTRT_MODEL="fake")
    cases = [[[a.replace("{root}", str(root)) for a in argv], stdin] for argv, stdin in CASES]
    results = dict(zip((" ".join(argv) + f" <{stdin!r}" for argv, stdin in CASES),
                       run_cli(cases, env)))
    return results, root, db


def result(cli, argv, stdin=None):
    return cli[0][" ".join(argv) + f" <{stdin!r}"]


def one_line_error(found, *fragments, hint=False):
    code, stdout, stderr = found
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert code == 2 and stdout == "" and "Traceback" not in stderr, found
    assert len(lines) == (2 if hint else 1), stderr
    assert lines[0].startswith("error: "), lines
    for frag in fragments:
        assert frag in lines[0], lines[0]


STDIN = ["solve", "-", "--mode", "fast", "--json"]
STDIN_EMPTY = ["solve", "-", "--json"]
BAD_STATUS = ["traces", "list", "--status", "Error"]
TEAM_MODE = ["traces", "list", "--mode", "team"]
GOOD_STATUS = ["traces", "list", "--status", "budget_exceeded:tokens", "--json"]
UNKNOWN_BENCH = ["eval", "--bench", "nope", "--out", "{root}/runs"]
HUGE_TOKENS = ["eval", "--bench", "jsonl:{root}/bench.jsonl", "--max-tokens", "40000",
               "--no-report", "--out", "{root}/runs"]
BAD_ROUTER = ["eval", "--bench", "jsonl:{root}/bench.jsonl", "--mode", "auto", "--router",
              "escalte", "--no-report", "--out", "{root}/runs"]
ONE_CHAR = ["traces", "show", "a"]
AMBIGUOUS = ["traces", "show", "abcdef"]

CASES = [
    [STDIN, "What is 2+2?\n"],
    [STDIN, "What is \xff 2+2?"],
    [STDIN_EMPTY, " \n"],
    [BAD_STATUS, None],
    [TEAM_MODE, None],
    [GOOD_STATUS, None],
    [UNKNOWN_BENCH, None],
    [HUGE_TOKENS, None],
    [BAD_ROUTER, None],
    [ONE_CHAR, None],
    [AMBIGUOUS, None],
]


def test_a_dash_reads_the_problem_from_standard_input(cli):
    code, stdout, stderr = result(cli, STDIN, "What is 2+2?\n")
    assert code == 0, stderr
    plain = json.loads(stdout)
    code, stdout, stderr = result(cli, STDIN, "What is \xff 2+2?")
    assert code == 0, stderr
    odd = json.loads(stdout)
    store = TraceStore(cli[2])
    try:
        assert store.get_trace(plain["trace_id"]).problem == "What is 2+2?"
        assert store.get_trace(odd["trace_id"]).problem == "What is \ufffd 2+2?"
    finally:
        store.close()
    one_line_error(result(cli, STDIN_EMPTY, " \n"), "problem is empty")


def test_trace_filters_that_can_match_nothing_are_refused(cli):
    one_line_error(result(cli, BAD_STATUS), "--status", "'Error' is not one of", "ok",
                   "budget_exceeded:tokens", hint=True)
    one_line_error(result(cli, TEAM_MODE), "--mode", "'team' is not one of: fast, slow",
                   hint=True)
    code, stdout, _ = result(cli, GOOD_STATUS)
    assert code == 0 and json.loads(stdout) == []


def test_an_unknown_benchmark_is_one_line_without_a_progress_bar(cli):
    one_line_error(result(cli, UNKNOWN_BENCH), "unknown benchmark 'nope'")


def test_settings_that_would_fail_every_problem_stop_eval_before_it_starts(cli):
    one_line_error(result(cli, HUGE_TOKENS), "limits.max_tokens_per_call", "32768")
    one_line_error(result(cli, BAD_ROUTER), "unknown router policy 'escalte'")
    assert not (cli[1] / "runs").exists()  # no run was started


def test_short_and_ambiguous_trace_ids_are_one_line(cli):
    one_line_error(result(cli, ONE_CHAR), "'a'", "6 to 31 hex characters")
    one_line_error(result(cli, AMBIGUOUS), "ambiguous", *TWINS)
