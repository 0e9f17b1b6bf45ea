"""Self-consistency over tool calls: `limits.tool_votes` calls written, all run, majority answer."""

from __future__ import annotations

import itertools
import json
import re

import pytest
from helpers import crashed, ok
from pydantic import ValidationError

from agentrt.core.config import Limits, load_settings
from agentrt.llm.fake import FakeBackend
from agentrt.runtime import Runtime
from agentrt.workflows.slow.experts import coverage, numbers_in, vote_key
from agentrt.workflows.slow.verifier import pick_verified, vote_features

PROBLEM = "Tom has 3 bags of 4 apples and eats 5. How many are left?"
DESIGN = json.dumps({"nodes": [
    {"id": "calc", "kind": "tool", "tool": "python", "role": "coder", "instruction": "compute",
     "inputs": []},
    {"id": "fin", "kind": "llm", "role": "checker", "instruction": "state it",
     "inputs": ["calc"]}], "final": "fin"})


class CodeTool:
    """A python-like tool whose output depends on the code it is given."""

    name = "python"
    description = "Run a Python program."
    input_schema = {"type": "object", "required": ["code"],
                    "properties": {"code": {"type": "string"}, "timeout_s": {"type": "number"}}}

    def __init__(self, outputs: dict[str, dict]):
        self.outputs, self.calls = outputs, []

    def run(self, args):
        self.calls.append(args["code"])
        return self.outputs[args["code"]]


def backend(greedy: str, sampled: list[str]) -> FakeBackend:
    """Greedy tool calls get `greedy`; sampled ones cycle through `sampled`."""
    cycle = itertools.cycle(sampled)

    def tool_call(request):
        code = greedy if request.params.temperature == 0 else next(cycle)
        return json.dumps({"code": code})

    return FakeBackend(rules=[
        (r"Reflect on the following problem", "Count the apples, subtract the eaten ones."),
        (r"Design a workflow of experts", DESIGN),
        (r"Judge whether its final answer", '{"reason": "checked", "verdict": "yes"}'),
        (r"Expert: \w+ \([^)]*\), tool: python", tool_call),
        (r"Expert: fin ", lambda r: "Final answer: " + re.search(
            r"\[calc — coder\]\n(\S+)", r.messages[-1].content).group(1)),
    ])


def solve(store, fake, tool, options=None, **limits):
    settings = load_settings(backend="fake", model="fake", limits=Limits(max_rounds=1, **limits))
    return Runtime(settings, backend=fake, store=store, tools={"python": tool}).solve(
        PROBLEM, mode="slow", **(options or {}))


def steps(store, trace_id, name):
    return [s for s in store.get_trace(trace_id).steps if s.name == name]


OUTPUTS = {"print(3*4-5)": ok("7\n"), "print(3*4+5)": ok("17\n"), "print(3+4-5)": ok("2\n"),
           "x = 12; print(x - 5)": ok("7.0\n"), "print(y)": crashed("NameError: name 'y'"),
           "print(12 - 5)": ok("7\n")}


def test_the_most_frequent_answer_wins_over_the_greedy_call(store):
    fake = backend("print(3*4+5)", ["print(3*4-5)", "x = 12; print(x - 5)", "print(y)"])
    tool = CodeTool(OUTPUTS)
    sol = solve(store, fake, tool, tool_votes=4)
    assert len(tool.calls) == 4  # the greedy call and three samples, each run once
    [vote] = steps(store, sol.trace_id, "tool_vote")
    assert vote.inputs == {"calls": 4, "runs_ok": 3, "rule": "majority"}
    assert vote.outputs["counts"] == {"7": 2, "17": 1} and vote.outputs["chosen"] == "7"
    [node] = [s for s in steps(store, sol.trace_id, "node") if s.node == "calc"]
    assert node.outputs["text"].strip() == "7" and node.outputs["attempts"] == 1
    # the samples came from one request: n = votes - 1, sampled, unseeded (batched with others)
    [sample] = {id(r): r for r in fake.requests if r.params.n > 1}.values()
    assert sample.params.n == 3 and sample.params.temperature == 0.7
    assert sample.params.seed is None


def test_a_tie_goes_to_the_greedy_call(store):
    fake = backend("print(3*4+5)", ["print(3*4-5)", "print(3+4-5)"])
    sol = solve(store, fake, CodeTool(OUTPUTS), tool_votes=3)
    [vote] = steps(store, sol.trace_id, "tool_vote")
    assert vote.outputs["chosen"] == "17" and vote.outputs["votes"] == 1


def test_a_seeded_solve_seeds_its_samples(store):
    seeds = []
    for seed in (7, 7, 8):
        fake = backend("print(3*4+5)", ["print(3*4-5)"])
        solve(store, fake, CodeTool(OUTPUTS), {"seed": seed}, tool_votes=3)
        seeds += {id(r): r.params.seed for r in fake.requests if r.params.n > 1}.values()
    assert None not in seeds and seeds[0] == seeds[1] != seeds[2]


def test_when_every_call_fails_the_greedy_one_is_repaired(store):
    fake = backend("print(y)", ["print(y)"])
    fake._rules.insert(0, (re.compile(r"It failed with"), json.dumps({"code": "print(3*4-5)"})))
    tool = CodeTool(OUTPUTS)
    sol = solve(store, fake, tool, tool_votes=3, max_repairs=1)
    assert tool.calls == ["print(y)", "print(y)", "print(y)", "print(3*4-5)"]
    assert sol.answer == "7" and not steps(store, sol.trace_id, "tool_vote")
    # repairs are single, greedy calls
    assert [r.params.n for r in fake.requests if "It failed with" in r.messages[-1].content] == [1]


def test_samples_never_spend_the_budget_the_solve_needs(store):
    fake = backend("print(3*4-5)", ["print(3*4+5)"])
    tool = CodeTool(OUTPUTS)
    sol = solve(store, fake, tool, tool_votes=5, max_tool_runs=3)
    assert sol.answer == "7" and sol.status == "ok"
    assert len(tool.calls) == 2  # the greedy run and one sample; the last run is kept back
    fake = backend("print(3*4-5)", ["print(3*4+5)"])
    sol = solve(store, fake, CodeTool(OUTPUTS), tool_votes=5, max_llm_calls=4)
    assert not [r for r in fake.requests if r.params.n > 1]  # no call left to sample with


def test_one_vote_is_the_plain_tool_call(store):
    fake = backend("print(3*4+5)", ["print(3*4-5)"])
    sol = solve(store, fake, CodeTool(OUTPUTS))
    assert sol.answer == "17" and all(r.params.n == 1 for r in fake.requests)
    assert not steps(store, sol.trace_id, "tool_vote")


@pytest.mark.parametrize("rule, chosen", [("majority", "7"), ("coverage", "17")])
def test_the_coverage_rule_prefers_calls_that_use_the_problems_numbers(store, rule, chosen):
    # two calls agree on 7 but use only the 5 of "3 bags of 4 apples and eats 5"; one uses all
    fake = backend("x = 12; print(x - 5)", ["print(12 - 5)", "print(3*4+5)"])
    sol = solve(store, fake, CodeTool(OUTPUTS), tool_votes=3, vote_rule=rule)
    [vote] = steps(store, sol.trace_id, "tool_vote")
    assert vote.inputs["rule"] == rule and vote.outputs["coverage"] == [1, 1, 3]
    assert vote.outputs["chosen"] == chosen and vote_key(sol.answer) == chosen
    assert vote.outputs["votes"] == (2 if chosen == "7" else 1)


def test_the_verifier_rule_picks_the_run_its_weights_score_highest(store):
    # Two calls agree on 7 using one of the problem's numbers; one writes 17 using all three.
    fake = backend("x = 12; print(x - 5)", ["print(12 - 5)", "print(3*4+5)"])
    coverage_first = {"best_coverage": 4.0, "share": 1.0, "bias": -3.0}
    sol = solve(store, fake, CodeTool(OUTPUTS), tool_votes=3, vote_rule="verifier",
                vote_weights=coverage_first)
    [vote] = steps(store, sol.trace_id, "tool_vote")
    assert vote.inputs["rule"] == "verifier" and vote.outputs["chosen"] == "17"
    scores = vote.outputs["scores"]
    assert scores[2] == max(scores) and scores[0] == scores[1] < scores[2]
    assert vote_key(sol.answer) == "17"
    agreement_first = {"share": 6.0, "best_coverage": 1.0, "bias": -3.0}
    fake = backend("x = 12; print(x - 5)", ["print(12 - 5)", "print(3*4+5)"])
    sol = solve(store, fake, CodeTool(OUTPUTS), tool_votes=3, vote_rule="verifier",
                vote_weights=agreement_first)
    assert vote_key(sol.answer) == "7"


def test_vote_features_describe_each_run():
    answers = ["7", None, "7", "-3/2", "12"]
    feats = vote_features(numbers_in(PROBLEM), answers, [1, -1, 3, 2, 0])
    assert feats[1] is None
    assert feats[0]["share"] == 0.5 and feats[0]["first"] == 1.0 and feats[2]["first"] == 0.0
    assert feats[2]["agrees_first"] == 1.0 and feats[3]["agrees_first"] == 0.0
    assert feats[2]["coverage"] == 1.0 and feats[2]["best_coverage"] == 1.0
    assert feats[0]["best_coverage"] == 0.0 and feats[4]["coverage"] == 0.0
    assert feats[3]["negative"] == 1.0 and feats[3]["integer"] == 0.0
    assert feats[3]["long_fraction"] == 0.0  # -1.5 is a short decimal
    assert vote_features(set(), ["1/3"], [0])[0]["long_fraction"] == 1.0
    assert feats[4]["given"] == 0.0 and vote_features({"12"}, ["12"], [1])[0]["given"] == 1.0
    assert all(f["ok_share"] == 0.8 for f in feats if f)
    assert feats[4]["scale"] > 0 > feats[3]["scale"]  # 12 is above the problem's 5; 1.5 below
    assert vote_features({"2"}, ["3000000000"], [1])[0]["scale"] == 1.0  # clipped
    assert vote_features(set(), [None, None], [-1, -1]) == [None, None]


def test_the_verifier_ties_to_the_earliest_run():
    feats = vote_features(set(), ["5", "6"], [0, 0])
    assert pick_verified(["5", "6"], feats, {"integer": 1.0}) == 0


def test_coverage_counts_the_problems_numbers_a_call_uses():
    assert numbers_in("Sold 1,200 pens at $2.50, then 3. Age 12.") == {"1200", "5/2", "3", "12"}
    assert numbers_in("x1 = v2; no numbers") == set()
    call = json.dumps({"code": "bags = 3\nper_bag = 4\nprint(bags * per_bag - 5.0)"})
    assert coverage(PROBLEM, call) == 3  # numbers after an escaped newline are read too
    assert coverage(PROBLEM, json.dumps({"code": "print(12 - 5)"})) == 1
    assert coverage(PROBLEM, "not json: 3 and 4") == 2


@pytest.mark.parametrize("a, b", [("1,200.0", "$1200"), ("7", "7.0"), ("0.5", "1/2"),
                                  ("Paris", "paris."), ("12.50", "12.5")])
def test_votes_count_equal_numbers_as_one(a, b):
    assert vote_key(a) == vote_key(b)


@pytest.mark.parametrize("a, b", [("7", "17"), ("1/3", "0.33"), ("inf", "nan")])
def test_votes_keep_different_answers_apart(a, b):
    assert vote_key(a) != vote_key(b)


@pytest.mark.parametrize("bad", [{"tool_votes": 0}, {"tool_votes": 17}, {"vote_temperature": 0},
                                 {"vote_rule": "random"}, {"vote_rule": "verifier"},
                                 {"vote_weights": {"length": 1.0}},
                                 {"vote_weights": {"share": float("nan")}}])
def test_vote_settings_are_validated(bad):
    with pytest.raises(ValidationError):
        Limits(**bad)


def test_sampled_calls_become_training_rows_graded_by_what_they_printed(store):
    """Rejection sampling for free: right samples are SFT rows, right-vs-wrong DPO pairs."""
    from agentrt.core.types import Problem
    from agentrt.data_synth.compile.dpo import dpo_rows
    from agentrt.data_synth.compile.sft import sft_rows
    from agentrt.data_synth.verify import judge_trace, problem_tags

    fake = backend("print(3*4-5)", ["print(3*4+5)", "x = 12; print(x - 5)", "print(y)"])
    settings = load_settings(backend="fake", model="fake", limits=Limits(max_rounds=1,
                                                                         tool_votes=4))
    problem = Problem(id="apples", text=PROBLEM, answer="7", grader="numeric")
    sol = Runtime(settings, backend=fake, store=store, tools={"python": CodeTool(OUTPUTS)}).solve(
        PROBLEM, mode="slow", tags=problem_tags(problem))
    judge = judge_trace(store.get_trace(sol.trace_id))
    assert judge.final_correct is True
    rows, _, _ = sft_rows([judge])
    samples = [json.loads(r["messages"][-1]["content"])["code"] for r in rows
               if r["step"] == "tool_sample"]
    assert samples == ["x = 12; print(x - 5)"]  # the right sample; the wrong and crashed are not
    pairs, _, _ = dpo_rows([judge])
    chosen = {json.loads(p["chosen"][-1]["content"])["code"] for p in pairs}
    rejected = {json.loads(p["rejected"][-1]["content"])["code"] for p in pairs}
    assert chosen == {"x = 12; print(x - 5)"} and rejected == {"print(3*4+5)", "print(y)"}
