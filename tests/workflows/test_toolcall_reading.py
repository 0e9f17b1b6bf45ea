"""Reading experts' answers and tool calls, and the compact python call's grammar."""

from __future__ import annotations

import json

import pytest
from helpers import FakeTool, crashed, ok


def test_answer_and_tool_call_reading():
    from agentrt.workflows.slow.experts import answer_of
    from agentrt.workflows.slow.toolcall import call_schema, read_call, run_failure, tool_answer

    assert answer_of("work\nFinal answer: 7\nProblem: next\nFinal answer: 9") == "7"
    assert answer_of("123*456 - 789 = 55299") == "55299"
    py = FakeTool()
    assert read_call(py, '{"code": "print(1)"}') == ({"code": "print(1)"}, "")
    assert read_call(py, "Here:\n```python\nprint(2)\n```") == ({"code": "print(2)\n"}, "")
    assert read_call(py, "no code at all")[0] is None
    assert run_failure(py, crashed("Traceback: boom")).startswith("exit code 1")
    assert "printed nothing" in run_failure(py, ok(""))
    assert "timed out" in run_failure(py, {"timed_out": True, "exit_code": -9})
    assert run_failure(py, ok("3\n")) is None and tool_answer(ok("a\n55299\n")) == "55299"

    sym = FakeTool(name="sympy")
    sym.input_schema = {"type": "object", "required": ["op", "timeout_s"], "properties": {
        "op": {"enum": ["solve", "simplify"], "type": "string"},
        "expr": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "timeout_s": {"type": "number"}}}
    schema = call_schema(sym, 50)
    assert set(schema["properties"]) == {"op", "expr"} and schema["required"] == ["op"]
    assert schema["properties"]["expr"]["anyOf"][0]["maxLength"] == 50  # strings are capped
    assert read_call(sym, '{"op": "solve", "expr": "x-1", "timeout_s": 999}') == (
        {"op": "solve", "expr": "x-1"}, "")  # run limits are not the model's to set


def test_compact_python_calls_are_named_arithmetic_steps_then_a_print():
    xgr = pytest.importorskip("xgrammar")
    from agentrt.workflows.slow.toolcall import call_schema

    vocab = [chr(i) for i in range(32, 127)] + ["<eos>"]
    info = xgr.TokenizerInfo(vocab, stop_token_ids=[len(vocab) - 1])
    grammar = xgr.GrammarCompiler(info).compile_json_schema(
        json.dumps(call_schema(FakeTool(), 384, one_line=True)), any_whitespace=False,
        strict_mode=True)

    def admits(text):
        m = xgr.GrammarMatcher(grammar)
        return all(m.accept_string(ch) for ch in text)

    assert admits('{"code": "print(123*456 - 789)"}')
    assert admits('{"code": "print((2**10 - 1) % 7)"}')
    assert admits('{"code": "eggs = 16 - 3 - 4; dollars = eggs * 2; print(dollars)"}')
    for bad in ('{"code": "x = 1"}', '{"code": "print(1}"}', '{"code": "x=1; print(x)"}',
                '{"code": "print(1) # done"}', '{"code": "Eggs = 2; print(Eggs)"}',
                '{"code": "x = 1\\nprint(x)"}', '{"code": "print(max(1, 2))"}',
                '{"code": "import os; print(1)"}'):
        assert not admits(bad), bad
    free = call_schema(FakeTool(), 384)["properties"]["code"]
    assert free == {"type": "string", "minLength": 1, "maxLength": 384}
