"""The evaluation harness end to end on the scripted backend, a temp store and a small JSONL."""

import json
import re

import pytest

from agentrt.cli import main
from agentrt.core.config import load_settings
from agentrt.core.errors import BackendError, ConfigError
from agentrt.eval.benchmarks import load_benchmark
from agentrt.eval.harness import EvalSpec, grade_answer, run_eval
from agentrt.execute import LocalExecutor
from agentrt.eval.metrics import compute_metrics
from agentrt.eval.runs import list_runs, load_run
from agentrt.llm.fake import FakeBackend
from agentrt.router import auto, train_router
from agentrt.runtime import Runtime
from agentrt.core.types import Outcome, Problem


def answer_sums(request):
    """Right for even first operands, off by one otherwise; fails outright on 'explode'."""
    text = request.messages[-1].content
    if "explode" in text:
        raise BackendError("engine fell over")
    a, b = map(int, re.search(r"(\d+) \+ (\d+)", text).groups())
    return f"{a} + {b} is {a + b if a % 2 == 0 else a + b + 1}.\nFinal answer: {a + b if a % 2 == 0 else a + b + 1}"


def checker(request):
    """The self-check says no exactly when the proposed answer is wrong."""
    text = request.messages[-1].content
    a, b = map(int, re.search(r"(\d+) \+ (\d+)", text).groups())
    proposed = re.search(r"Proposed (?:final )?answer: (\S+)", text).group(1)
    return '{"verdict": "%s", "reason": "re-added"}' % ("yes" if proposed == str(a + b) else "no")


def backend(delay_s=0.0):
    return FakeBackend(rules=[(r"Proposed (final )?answer", checker), (r".*", answer_sums)],
                       delay_s=delay_s)


def slow_stand_in(problem, context, ctx, **_):
    """Slow thinking replaced by an observable stand-in that always gets sums right."""
    ctx.recorder.decision("slow_stand_in", {}, {})
    a, b = map(int, re.search(r"(\d+) \+ (\d+)", problem).groups())
    return Outcome(mode="slow", answer=str(a + b), verdict="yes")


def write_jsonl(path, n=6, extra=()):
    rows = [{"id": f"s{i}", "question": f"What is {i + 2} + {3 * i}?", "answer": str(4 * i + 2),
             "grader": "numeric", "family": "even" if i % 2 == 0 else "odd"} for i in range(n)]
    lines = [json.dumps(r) for r in rows] + list(extra)
    path.write_text("\n".join(lines) + "\n")
    return path


def runtime(store, tmp_path, cls=Runtime, **kw):
    settings = load_settings(backend="fake", model="fake", home=tmp_path / "home", **kw)
    return cls(settings, backend=backend(), store=store)


def test_fast_run_end_to_end(store, tmp_path):
    bad = ['{"question": "no answer here"}', "not json at all",
           '{"question": "What is 1 + 1?", "answer": "2", "grader": "vibes"}']
    data = write_jsonl(tmp_path / "sums.jsonl", extra=bad)
    rt = runtime(store, tmp_path)
    seen = []
    run = run_eval(rt, EvalSpec(bench=f"jsonl:{data}", mode="fast", workers=3),
                   on_result=seen.append)
    m = run.manifest
    assert m.status == "done" and m.problems == 6 and m.done == 6 and len(seen) == 6
    assert [e.row for e in m.row_errors] == [7, 8, 9]  # each malformed row named, run went on
    assert all(e.reason for e in m.row_errors)
    assert [r.index for r in run.results] == list(range(6))
    assert [r.correct for r in run.results] == [True, False] * 3  # even first operands only
    assert all(r.mode == "fast" and r.fast_correct == r.correct for r in run.results)
    assert all(r.prompt_tokens > 0 and r.llm_calls == 2 for r in run.results)
    # every solve is a trace tagged with the run, and graded
    traces = store.list_traces(limit=50, tags={"eval_run": m.run_id})
    assert len(traces) == 6
    by_id = {t.id: t for t in traces}
    for r in run.results:
        tags = by_id[r.trace_id].tags
        assert tags["eval_problem"] == r.problem_id
        assert tags["eval_correct"] == tags["fast_correct"] == ("1" if r.correct else "0")
    assert list_runs(tmp_path / "home" / "eval_runs")[0].run_id == m.run_id
    assert load_run(run.path).results == run.results


def test_auto_run_grades_fast_attempt_and_scores_router(store, tmp_path, monkeypatch):
    monkeypatch.setattr(auto, "run_slow", slow_stand_in)  # the router's slow path
    data = write_jsonl(tmp_path / "sums.jsonl", n=8)
    rt = runtime(store, tmp_path, router="escalate")
    run = run_eval(rt, EvalSpec(bench=f"jsonl:{data}", mode="auto", workers=2))
    odd = [r for r in run.results if r.family == "odd"]
    even = [r for r in run.results if r.family == "even"]
    assert all(r.mode == "slow" and r.correct and r.fast_correct is False for r in odd)
    assert all(r.mode == "fast" and r.correct and r.fast_correct is True for r in even)
    router = compute_metrics(run.results).router
    assert (router.precision, router.recall, router.escalated) == (1.0, 1.0, 4)
    # the graded fast attempts of escalated traces are router training labels
    t = store.get_trace(odd[0].trace_id)
    assert t.tags["fast_correct"] == "0" and t.tags["slow_correct"] == "1"
    for i in range(3):  # a few more graded runs so there is enough to learn from
        run_eval(rt, EvalSpec(bench=f"jsonl:{data}", mode="fast"))
    model = train_router(store, home=tmp_path / "home", save=False)
    assert model.metrics["n"] == 32 and model.metrics["fast_fail_rate"] == 0.5


def test_failing_problem_is_reported_and_run_goes_on(store, tmp_path):
    data = write_jsonl(tmp_path / "sums.jsonl", n=4,
                       extra=['{"id": "boom", "question": "explode 1 + 1", "answer": "2"}'])
    rt = runtime(store, tmp_path)
    run = run_eval(rt, EvalSpec(bench=f"jsonl:{data}", grader="numeric", workers=2))
    assert run.manifest.done == 5 and run.manifest.errors == 1
    boom = next(r for r in run.results if r.problem_id == "boom")
    assert not boom.correct and "engine fell over" in boom.error and boom.status == "error"
    assert store.get_trace(boom.trace_id).status == "error"  # its trace was found and kept
    assert sum(r.correct for r in run.results) == 2


class LosesFirstResults(LocalExecutor):
    """Runs each item, throws the first result of the given items away and runs them again:
    what a cluster does when a worker dies after its item finished but before it returned."""

    def __init__(self, lost):
        super().__init__(1)
        self.lost, self.runs = set(lost), []

    def map(self, fn, items, *, context=None):
        def work(ctx, item, cancel):
            self.runs.append(item[0])
            result = fn(ctx, item, cancel)
            if item[0] in self.lost:
                self.lost.discard(item[0])
                return work(ctx, item, cancel)  # the retry
            return result
        return super().map(work, items, context=context)


def test_a_retried_item_takes_the_solve_its_lost_worker_stored(store, tmp_path):
    data = write_jsonl(tmp_path / "sums.jsonl", n=4)
    rt = runtime(store, tmp_path)
    executor = LosesFirstResults(lost=[1, 2])
    run = run_eval(rt, EvalSpec(bench=f"jsonl:{data}", mode="fast"), executor=executor)
    assert sorted(executor.runs) == [0, 1, 1, 2, 2, 3]
    assert [r.correct for r in run.results] == [True, False, True, False]
    traces = store.list_traces(limit=50, tags={"eval_run": run.manifest.run_id})
    assert sorted(t.tags["eval_problem"] for t in traces) == ["s0", "s1", "s2", "s3"]
    assert {t.id for t in traces} == {r.trace_id for r in run.results}
    assert all(r.llm_calls == 2 and r.prompt_tokens > 0 for r in run.results)
    assert len(rt.backend.requests) == 8  # 4 solves of 2 calls: the retries solved nothing again


def test_interrupt_keeps_finished_results(store, tmp_path):
    data = write_jsonl(tmp_path / "sums.jsonl", n=6)
    settings = load_settings(backend="fake", model="fake", home=tmp_path / "home")
    rt = Runtime(settings, backend=backend(delay_s=0.05), store=store)

    def stop(result):
        raise KeyboardInterrupt

    run = run_eval(rt, EvalSpec(bench=f"jsonl:{data}", workers=1), on_result=stop)
    assert run.manifest.status == "interrupted"
    assert 1 <= len(run.results) < 6 and run.manifest.finished_at


class InterruptedWhileStarting:
    """An executor that gets Ctrl-C before its batch starts (connecting to a cluster, say)."""

    def map(self, fn, items, *, context=None):
        raise KeyboardInterrupt


def test_interrupt_before_any_solve_marks_the_run(store, tmp_path):
    data = write_jsonl(tmp_path / "sums.jsonl", n=3)
    with pytest.raises(KeyboardInterrupt):
        run_eval(runtime(store, tmp_path), EvalSpec(bench=f"jsonl:{data}"),
                 executor=InterruptedWhileStarting())
    [manifest] = list_runs(tmp_path / "home" / "eval_runs")
    assert manifest.status == "interrupted" and manifest.done == 0 and manifest.finished_at


def test_bad_input(store, tmp_path):
    rt = runtime(store, tmp_path)
    with pytest.raises(ConfigError, match="unknown benchmark 'gsm9k'"):
        run_eval(rt, EvalSpec(bench="gsm9k"))
    with pytest.raises(ConfigError, match="not found"):
        run_eval(rt, EvalSpec(bench="gsm8k", data=str(tmp_path / "nowhere")))
    junk = tmp_path / "junk.jsonl"
    junk.write_text("{]\n")
    with pytest.raises(ConfigError, match="no readable problems"):
        run_eval(rt, EvalSpec(bench=f"jsonl:{junk}"))
    with pytest.raises(ValueError):
        EvalSpec(bench="gsm8k", mode="medium")


def test_grade_answer_extracts_for_the_grader():
    p = Problem(id="p", text="?", answer="12", grader="numeric")
    assert grade_answer("The total is 12 dollars", p)[1]
    assert not grade_answer("13", p)[1]


def test_cli_run_list_report_compare(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    monkeypatch.setenv("AGENTRT_HOME", str(home))
    data = tmp_path / "q.jsonl"
    # the scripted CLI backend answers "42" to everything
    data.write_text('{"id": "a", "question": "6*7?", "answer": "42", "grader": "numeric"}\n'
                    '{"id": "b", "question": "6*8?", "answer": "48", "grader": "numeric"}\n'
                    '{"id": "c", "question": "broken"}\n')
    common = ["--backend", "fake", "--model", "fake",
              "--database-url", f"sqlite:///{tmp_path / 't.db'}"]
    main(["eval", "--bench", f"jsonl:{data}", "--workers", "2", "--json", *common])
    first = json.loads(capsys.readouterr().out)
    assert first["metrics"]["overall"]["correct"] == 1 and first["metrics"]["overall"]["n"] == 2
    assert (tmp_path / "home" / "eval_runs" / first["run_id"] / "report" / "per_task.png").is_file()
    main(["eval", "--bench", f"jsonl:{data}", "--mode", "auto", "--router", "fast", *common])
    captured = capsys.readouterr()
    assert "skipped row 3" in captured.err
    runs = list_runs(home / "eval_runs")
    assert len(runs) == 2 and runs[0].spec.mode == "auto" and runs[0].router == "fast"
    main(["eval", "list"])
    assert first["run_id"] in capsys.readouterr().out
    main(["eval", "compare", first["run_id"], runs[0].run_id[:-3]])
    text = capsys.readouterr().out
    assert "accuracy" in text and "McNemar" in text
    main(["eval", "report", first["run_id"], runs[0].run_id, "--out", str(tmp_path / "rep")])
    assert (tmp_path / "rep" / "accuracy_vs_tokens.png").stat().st_size > 1000
    with pytest.raises(SystemExit) as e:
        main(["eval", "--bench", "nope", *common])
    assert e.value.code == 2
    assert "unknown benchmark" in capsys.readouterr().err


def test_team_run_gives_each_agent_only_its_part(store, tmp_path):
    """`--mode team` on an information-exchange benchmark: the harness hands the problem's
    agents to the team mode, and each agent's prompts hold its own facts, not the other's."""
    from agentrt.data_synth import infox  # noqa: F401 - registers the infox benchmarks

    settings = load_settings(backend="fake", model="fake", home=tmp_path / "home")
    reply = '{"message": "I have my facts.", "answer": "7", "agree": true}'
    rt = Runtime(settings, backend=FakeBackend(default=reply), store=store)
    run = run_eval(rt, EvalSpec(bench="infox", limit=2, mode="team", workers=1))
    assert run.manifest.status == "done" and len(run.results) == 2
    problems = {p.id: p for p in load_benchmark("infox", limit=2).problems}
    for r in run.results:
        assert r.status == "ok" and r.answer == "7" and r.requested_mode == "team"
        agents = problems[r.problem_id].meta["agents"]
        steps = [s for s in store.get_trace(r.trace_id).steps if s.kind == "llm"]
        assert len(steps) >= len(agents)
        for step in steps:
            prompt = json.dumps(step.inputs.get("messages"))
            holds = [a["private"] in prompt for a in agents]
            assert sum(holds) <= 1, "an agent saw another agent's private facts"
