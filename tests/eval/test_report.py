"""Reports (Markdown + PNG plots) and run comparison."""

import json

import pytest

from agentrt.eval.benchmarks import RowError
from agentrt.eval.compare import compare_runs, mcnemar_p, render_comparison
from agentrt.eval.report import write_report
from agentrt.eval.runs import EvalRun, EvalSpec, ProblemResult, RunManifest

PNG = b"\x89PNG\r\n\x1a\n"


def make_run(run_id, mode, correct, families=("arith", "logic"), tokens=100, slow=()):
    results = [
        ProblemResult(index=i, problem_id=f"p{i}", family=families[i % len(families)],
                      grader="numeric", reference="1", requested_mode=mode, correct=c,
                      mode="slow" if i in slow or mode == "slow" else "fast",
                      fast_correct=(not c) if mode == "auto" and i in slow else None,
                      prompt_tokens=tokens, completion_tokens=tokens // 2, llm_calls=2,
                      latency_s=0.5)
        for i, c in enumerate(correct)
    ]
    manifest = RunManifest(run_id=run_id, spec=EvalSpec(bench="gsm8k", mode=mode),
                           created_at="2025-01-01T00:00:00", status="done", backend="fake",
                           model_id="fake", router="escalate" if mode == "auto" else None,
                           problems=len(results), done=len(results), wall_s=12.0)
    return EvalRun(manifest=manifest, results=results, path=f"/runs/{run_id}")


def test_report_written_with_plots(tmp_path):
    fast = make_run("r-fast", "fast", [True, False, False, True, False, False])
    slow = make_run("r-slow", "slow", [True, True, False, True, True, False], tokens=900)
    auto = make_run("r-auto", "auto", [True, True, False, True, False, False], tokens=300,
                    slow=(1, 2))
    auto.manifest.row_errors = [RowError(source="x.jsonl", row=3, reason="needs an 'answer'")]
    auto.results[5].error = "BackendError: boom"
    path = write_report([fast, slow, auto], tmp_path / "rep")
    text = path.read_text()
    for name in ("accuracy_vs_tokens.png", "per_task.png"):
        data = (tmp_path / "rep" / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000
        assert f"]({name})" in text
    assert "| `r-fast` | gsm8k | fast | 6 | 33.3% (" in text
    assert "auto (escalate)" in text
    assert "## Routing (auto runs)" in text and "| `r-auto` | 2 |" in text
    assert "| task | fast | slow | auto (escalate) |" in text
    assert "| arith | 33.3% of 3 (" in text and "| logic |" in text
    assert "malformed row 3 of x.jsonl" in text and "p5 failed: BackendError: boom" in text
    with pytest.raises(ValueError):
        write_report([], tmp_path / "none")


def test_compare_runs_paired(capsys):
    from rich.console import Console

    a = make_run("a", "fast", [True, False, False, True, False, False])
    b = make_run("b", "slow", [True, True, True, True, True, False], tokens=900)
    cmp = compare_runs(a, b)
    rows = {r.metric: r for r in cmp.rows}
    assert rows["accuracy"].diff == pytest.approx(3 / 6)
    assert rows["tokens / problem"].a == 150 and rows["tokens / problem"].b == 1350
    p = cmp.paired
    assert (p.shared, p.both_right, p.only_a, p.only_b, p.both_wrong) == (6, 2, 0, 3, 1)
    assert p.mcnemar_p == pytest.approx(0.25)
    assert {t.metric for t in cmp.tasks} == {"arith", "logic"}
    render_comparison(cmp, Console(width=120))
    out = capsys.readouterr().out
    assert "+50.0%" in out and "McNemar p = 0.25" in out
    assert json.loads(cmp.model_dump_json())["paired"]["only_b"] == 3


def test_mcnemar():
    assert mcnemar_p(0, 0) is None
    assert mcnemar_p(5, 5) == 1.0
    assert mcnemar_p(0, 10) == pytest.approx(2 / 1024)
