"""Fitting the vote verifier: graded votes read back from an evaluation run, weights that pick
the right run where majority voting does not, and cross-validation."""

from __future__ import annotations

import itertools
import json
import re

import pytest
from helpers import ok

from agentrt.core.config import VERIFIER_FEATURES, Limits, load_settings
from agentrt.eval.harness import EvalSpec, run_eval
from agentrt.llm.fake import FakeBackend
from agentrt.runtime import Runtime
from agentrt.store import TraceStore
from agentrt.training.verifier import (
    Vote, cross_validated, fit_weights, main, picks, votes_of_runs)
from agentrt.workflows.slow.verifier import vote_features

DESIGN = json.dumps({"nodes": [{"id": "calc", "kind": "tool", "tool": "python", "role": "coder",
                                "instruction": "compute", "inputs": []}], "final": "calc"})


def vote(answers, covered, right_answer, numbers=frozenset({"3", "4", "5"})):
    return Vote("p", answers, covered, vote_features(set(numbers), answers, covered),
                [a == right_answer for a in answers])


def well_covered_votes(n=30):
    """Wrong programs agree (and leave a number out); the right one uses every number."""
    return [vote(["7", "7", "7", "17", None], [1, 1, 1, 3, -1], "17") for _ in range(n)] + \
        [vote(["9", "9", "2", "2", "2"], [3, 3, 1, 1, 1], "9") for _ in range(n)]


def test_weights_learn_what_tells_right_runs_apart():
    votes = well_covered_votes()
    weights = fit_weights(votes)
    assert set(weights) == {*VERIFIER_FEATURES, "bias"}
    assert weights["best_coverage"] > 1.0
    assert picks(votes, weights) == {"votes": 60, "any_run_right": 60, "greedy": 30,
                                     "majority": 0, "coverage": 60, "verifier": 60}
    assert cross_validated(votes, folds=3) == 60
    Limits(vote_rule="verifier", vote_weights=weights)  # loads as settings


def test_fitting_needs_right_and_wrong_runs():
    with pytest.raises(ValueError, match="both right and wrong"):
        fit_weights([vote(["7", "7"], [1, 1], "8")])


class CodeTool:
    """A python-like tool that prints what the test's own programs would print."""

    name = "python"
    description = "Run a Python program."
    input_schema = {"type": "object", "required": ["code"],
                    "properties": {"code": {"type": "string"}, "timeout_s": {"type": "number"}}}

    outputs = {f"print({a}+4{tail})": ok(f"{a + 4 + extra}\n")
               for a in (1, 2, 3) for tail, extra in (("", 0), ("+5", 5))}

    def run(self, args):
        return self.outputs[args["code"]]


def test_votes_are_read_back_from_an_evaluation_run_and_scored(tmp_path, capsys):
    rows = [{"id": f"q{i}", "question": f"Add {i} and 4 and 5.", "answer": str(i + 9),
             "grader": "numeric"} for i in (1, 2, 3)]
    (tmp_path / "q.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    sampled = itertools.cycle(["print({a}+4)", "print({a}+4)", "print({a}+4+5)"])

    def call(request):
        a = re.search(r"Add (\d+)", request.messages[-1].content).group(1)
        code = "print({a}+4+5)" if request.params.temperature == 0 and a == "1" else next(sampled)
        return json.dumps({"code": code.format(a=a)})

    fake = FakeBackend(rules=[(r"Reflect on", "Add them."), (r"Design a workflow", DESIGN),
                              (r"Judge whether", '{"reason": "ok", "verdict": "yes"}'),
                              (r"tool: python", call)])
    out = tmp_path / "eval"
    out.mkdir()
    settings = load_settings(backend="fake", model="fake",
                             database_url=f"sqlite:///{out}/traces.db",
                             limits=Limits(max_rounds=1, tool_votes=3))
    rt = Runtime(settings, backend=fake, store=TraceStore(settings.db_url),
                 tools={"python": CodeTool()})
    run_eval(rt, EvalSpec(bench=f"jsonl:{tmp_path / 'q.jsonl'}", mode="slow", workers=1),
             out=out / "runs")
    rt.close()
    graded = votes_of_runs([out])
    assert graded.problems == 3 and len(graded.votes) == 3 and graded.right_without_vote == 0
    first = next(v for v in graded.votes if v.answers[0] == "10")  # q1: greedy 1+4+5
    assert first.right == [True, False, False] and first.coverage == [3, 2, 2]
    assert picks(graded.votes, None)["majority"] == 0  # two wrong samples outvote it
    weights_file = tmp_path / "w.json"
    assert main(["fit", str(out), "--out", str(weights_file)]) == 0
    fitted = json.loads(capsys.readouterr().out)
    assert fitted["votes"] == 3 and fitted["verifier"] >= fitted["majority"]
    assert main(["score", *map(str, (out / "runs").iterdir()), "--weights",
                 str(weights_file)]) == 0
    assert json.loads(capsys.readouterr().out)["problems"] == 3
