"""Stopping pairs: a gold one-line program against the same program one step longer or shorter."""

from __future__ import annotations

import json
import re
from fractions import Fraction

from agentrt.data_synth.step_pairs import split_steps, step_pairs
from agentrt.eval.arith import evaluate_arithmetic


def _row(code, problem="I have $50 and spend $18.75 on lunch. How much is left?", **extra):
    prompt = f"Expert: step1, tool: python\nProblem: {problem}\nNumbers: 50, 18.75\nTask: x"
    return {"messages": [{"role": "system", "content": "You write python tool calls."},
                         {"role": "user", "content": prompt},
                         {"role": "assistant", "content": json.dumps({"code": code})}],
            "step": "tool_input", "source": "gold", "ok": True, "family": "everyday",
            "problem_id": "p1", **extra}


def _value(code: str) -> Fraction:
    """What a one-line program prints, evaluated step by step without running it."""
    steps, printed = split_steps(code)
    names: dict[str, Fraction] = {}

    def value(expr: str) -> Fraction:
        for name in sorted(names, key=len, reverse=True):
            expr = re.sub(rf"\b{name}\b", f"({names[name]})", expr)
        return evaluate_arithmetic(expr, decimals=True)[0]

    for name, expr in steps:
        names[name] = value(expr)
    return value(printed)


def _code(reply):
    return json.loads(reply[0]["content"])["code"]


def test_split_steps_reads_the_compact_form_and_refuses_others():
    assert split_steps("a = 2 * 3; b = a + 1; print(b)") == ([("a", "2 * 3"), ("b", "a + 1")], "b")
    assert split_steps("print( (2 + 3) * 4)") == ([], "(2 + 3) * 4")
    for other in ("a = 1\nprint(a)", "a = 1; b = 2", "for i in x: print(i)", "import os; print(1)"):
        assert split_steps(other) is None, other


def test_one_step_more_continues_from_the_printed_value_with_a_given_number():
    pairs = step_pairs([_row("left = 50 - 18.75; print(left)")], fewer_share=0.0)
    (pair,) = pairs
    assert pair["kind"] == "extra" and pair["prompt"] == _row("x")["messages"][:-1]
    rejected = _code(pair["rejected"])
    assert rejected.startswith("left = 50 - 18.75; left_2 = left ")
    assert rejected.endswith("; print(left_2)")
    assert any(f" {n}" in rejected.split("left_2 = ")[1] for n in ("50", "18.75"))
    assert _value(rejected) != _value(_code(pair["chosen"])) == 31.25


def test_a_printed_expression_goes_on_past_its_end_keeping_the_spaced_parenthesis():
    for seed in range(8):
        (pair,) = step_pairs([_row("print( (50 - 18.75) * 2)")], seed=seed)
        rejected = _code(pair["rejected"])
        assert rejected.startswith("print( (50 - 18.75) * 2 ") and rejected.endswith(")")
        assert _value(rejected) != 62.5


def test_one_step_fewer_prints_the_value_before_the_last():
    code = "spent = 2 * 15; total = spent + 12; change = 50 - total; print(change)"
    (pair,) = step_pairs([_row(code)], fewer_share=1.0)
    assert pair["kind"] == "fewer"
    assert _code(pair["rejected"]) == "spent = 2 * 15; total = spent + 12; print(total)"
    # one step has nothing to drop: the pair is a step more instead
    (single,) = step_pairs([_row("left = 50 - 18.75; print(left)")], fewer_share=1.0)
    assert single["kind"] == "extra"


def test_only_gold_python_calls_of_the_compact_form_make_pairs():
    rows = [_row("left = 50 - 18.75; print(left)", source="model"),
            _row("left = 50 - 18.75; print(left)", ok=False),
            _row("left = 50 - 18.75; print(left)", step="fast_answer"),
            _row("left = 50 - 18.75\nprint(left)"),
            {**_row("x"), "messages": _row("x")["messages"][:-1] + [
                {"role": "assistant", "content": "not json"}]}]
    assert step_pairs(rows) == []
    assert len(step_pairs(rows + [_row("left = 50 - 18.75; print(left)")] * 3)) == 3
