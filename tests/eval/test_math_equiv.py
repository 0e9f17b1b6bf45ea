"""MATH answer equivalence with an injected symbolic check (the sandboxed tool is the seam)."""

from agentrt.eval.math_equiv import math_equivalent


def _never(a, b):
    raise AssertionError(f"symbolic check should not run for {a} vs {b}")


def test_fast_paths_do_not_call_the_symbolic_check():
    assert math_equivalent(r"\frac{1}{2}", "0.5", symbolic=_never)[0]
    assert math_equivalent("0.5", "1/2", symbolic=_never)[0]
    assert not math_equivalent("2", "3", symbolic=_never)[0]
    assert math_equivalent("3, 5, 7", "7,3,5", symbolic=_never)[0]
    assert not math_equivalent("(1,2)", "(1,2,3)", symbolic=_never)[0]


def test_symbolic_check_gets_sympy_syntax_per_component():
    seen = []

    def check(a, b):
        seen.append((a, b))
        return a == r"2\sqrt{2}" and b == r"\sqrt{8}", "fake"

    ok, why, norm = math_equivalent(r"(1, 2\sqrt{2})", r"(1, \sqrt{8})", symbolic=check)
    assert ok and why == "all components equal" and norm == r"(1,2\sqrt{2})"
    assert seen == [(r"2\sqrt{2}", r"\sqrt{8}")]


def test_empty_answer_is_wrong():
    assert math_equivalent("  ", "1", symbolic=_never)[:2] == (False, "empty answer")
