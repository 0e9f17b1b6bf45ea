"""WorkflowSpec: models, validation rules with readable errors, and the constrained-decoding schema."""

import json

import pytest

from agentrt.core.config import Limits
from agentrt.core.errors import WorkflowError
from agentrt.workflows.profiles import COMPACT, FULL
from agentrt.workflows.spec import (
    FINAL_ID,
    SchemaCaps,
    WorkflowSpec,
    caps_for_budget,
    check_spec,
    design_schema,
    validate_spec,
)

TOOLS = ["python", "sympy"]


def node(id, inputs=(), kind="llm", tool=None, **kw):
    d = {"id": id, "kind": kind, "role": kw.get("role", "expert"),
         "instruction": kw.get("instruction", "do the part"), "inputs": list(inputs)}
    if tool is not None:
        d["tool"] = tool
    return d


def design(*nodes, final):
    return {"nodes": list(nodes), "final": final}


THREE_BRANCH = design(node("a"), node("b"), node("calc", kind="tool", tool="python"),
                      node("fin", ["a", "b", "calc"]), final="fin")


def errors_of(data, **limits):
    spec, errors = check_spec(data, limits=Limits(**limits), tools=TOOLS)
    return errors


def test_valid_design_has_layers_and_edges():
    spec = validate_spec(THREE_BRANCH, limits=Limits(), tools=TOOLS)
    assert spec.layers() == [["a", "b", "calc"], ["fin"]]
    assert sorted(spec.edges) == [("a", "fin"), ("b", "fin"), ("calc", "fin")]
    assert spec.readers("a") == ["fin"] and spec.node("calc").tool == "python"
    # JSON text and an already-built spec are accepted too
    assert check_spec(json.dumps(THREE_BRANCH), limits=Limits(), tools=TOOLS)[1] == []
    assert check_spec(spec, limits=Limits(), tools=TOOLS)[1] == []


def test_deeper_layers_follow_longest_chain():
    spec = validate_spec(design(node("a"), node("b", ["a"]), node("c", ["a", "b"]), final="c"),
                         limits=Limits(), tools=TOOLS)
    assert spec.layers() == [["a"], ["b"], ["c"]]


def test_cycle_is_rejected_with_its_path():
    errs = errors_of(design(node("s"), node("a", ["s", "b"]), node("b", ["a"]),
                            node("fin", ["b"]), final="fin"))
    cycle = [e for e in errs if "cycle" in e]
    assert cycle and ("a -> b -> a" in cycle[0] or "b -> a -> b" in cycle[0])


def test_layers_of_a_cyclic_spec_raise():
    spec, errors = check_spec(design(node("a", ["b"]), node("b", ["a"]), final="b"),
                              limits=Limits(), tools=TOOLS)
    assert errors and spec is not None
    with pytest.raises(WorkflowError, match="cycle"):
        spec.layers()


def test_oversized_design_is_rejected():
    nodes = [node(f"n{i}") for i in range(4)] + [node("fin", [f"n{i}" for i in range(4)])]
    errs = errors_of(design(*nodes, final="fin"), max_nodes=3, max_fan_out=4)
    assert any("5 nodes; the limit is 3" in e for e in errs)


def test_dangling_input_is_rejected():
    errs = errors_of(design(node("a"), node("fin", ["a", "ghost"]), final="fin"))
    assert any("'fin' reads 'ghost', which is not a node" in e for e in errs)


def test_unknown_and_missing_tools_are_rejected():
    errs = errors_of(design(node("calc", kind="tool", tool="calculator"),
                            node("t", kind="tool"), node("fin", ["calc", "t"]), final="fin"))
    assert any("unknown tool 'calculator'" in e and "python, sympy" in e for e in errs)
    assert any("'t' is a tool node but names no tool" in e for e in errs)
    errs = errors_of(design(node("a", tool="python"), node("fin", ["a"]), final="fin"))
    assert any("llm node but names tool 'python'" in e for e in errs)


def test_sink_rules():
    errs = errors_of(design(node("a"), node("stray"), node("fin", ["a"]), final="fin"))
    assert any("'stray' feeds no other node" in e for e in errs)
    errs = errors_of(design(node("a"), node("fin", ["a"]), node("after", ["fin"]), final="fin"))
    assert any("final node 'fin' is read by after" in e for e in errs)
    errs = errors_of(design(node("a"), final="zzz"))
    assert any("final node 'zzz' is not one of the nodes" in e for e in errs)


def test_fan_out_limits():
    errs = errors_of(design(node("a"), node("x", ["a"]), node("y", ["a"]), node("z", ["a"]),
                            node("fin", ["x", "y", "z"]), final="fin"), max_fan_out=2)
    assert any("'a' feeds 3 nodes; the fan-out limit is 2" in e for e in errs)
    errs = errors_of(design(node("a"), node("b"), node("c"), node("fin", ["a", "b", "c"]),
                            final="fin"), max_fan_out=2)
    assert any("3 nodes start in parallel" in e for e in errs)


def test_duplicates_and_self_reads():
    errs = errors_of(design(node("a"), node("a"), node("fin", ["a", "a", "fin"]), final="fin"))
    assert any("'a' is used by more than one node" in e for e in errs)
    assert any("'fin' reads its own output" in e for e in errs)
    assert any("lists input 'a' more than once" in e for e in errs)


@pytest.mark.parametrize("data, expected", [
    ("not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ({"nodes": []}, "final"),
    ({"nodes": [{"id": "Bad Id", "kind": "llm", "role": "r", "instruction": "i"}], "final": "x"},
     "nodes[0].id"),
    ({"nodes": [{"id": "a", "kind": "robot", "role": "r", "instruction": "i"}], "final": "a"},
     "nodes[0].kind"),
])
def test_shape_errors_are_readable(data, expected):
    spec, errors = check_spec(data, limits=Limits(), tools=TOOLS)
    assert spec is None and any(expected in e for e in errors), errors


def test_validate_spec_raises_with_every_error():
    bad = design(node("a", ["ghost"]), node("calc", kind="tool", tool="abacus"), final="a")
    with pytest.raises(WorkflowError) as info:
        validate_spec(bad, limits=Limits(), tools=TOOLS)
    errors = info.value.details["errors"]
    assert len(errors) >= 3 and all(isinstance(e, str) for e in errors)


def test_caps_fit_the_token_budget():
    limits = Limits(max_nodes=8, max_fan_out=4)
    for max_tokens in (96, 160, 256, 512, 2048):
        for compact in (False, True):
            sizes = (COMPACT if compact else FULL).design_sizes
            caps = caps_for_budget(limits, TOOLS, max_tokens, sizes=sizes)
            if caps.max_nodes > 1 or caps.instruction_chars > 48:
                assert caps.max_doc_chars(TOOLS) <= max_tokens * 2.5
            assert caps.max_nodes <= (4 if compact else 8)
    assert caps_for_budget(Limits(max_fan_out=1), TOOLS, 4096, sizes=COMPACT.design_sizes).max_nodes == 2
    small = caps_for_budget(limits, TOOLS, 256, sizes=COMPACT.design_sizes)
    big = caps_for_budget(limits, TOOLS, 2048)
    assert small.max_nodes < big.max_nodes and small.instruction_chars <= big.instruction_chars


def test_design_schema_constrains_what_a_model_can_write():
    xgr = pytest.importorskip("xgrammar")
    caps = SchemaCaps(max_nodes=4, max_inputs=3, role_chars=20, instruction_chars=60)
    schema = design_schema(TOOLS, caps)
    vocab = [chr(i) for i in range(32, 127)] + ["<eos>"]
    info = xgr.TokenizerInfo(vocab, stop_token_ids=[len(vocab) - 1])
    grammar = xgr.GrammarCompiler(info).compile_json_schema(
        json.dumps(schema), any_whitespace=False, strict_mode=True)

    def accepts(text):
        m = xgr.GrammarMatcher(grammar)
        return all(m.accept_string(ch) for ch in text)

    order = ["id", "kind", "tool", "role", "instruction", "inputs"]  # the order the model writes
    nodes = [{k: n[k] for k in order if k in n} for n in THREE_BRANCH["nodes"]]
    doc = json.dumps({"nodes": nodes, "final": "fin"}, separators=(", ", ": "))
    assert accepts(doc)
    WorkflowSpec.model_validate_json(doc)  # what the grammar admits, the model parses
    assert not accepts('{"nodes": [{"id": "a", "kind": "llm", "tool": "python"')  # no contradiction
    assert not accepts('{"nodes": [{"id": "a", "kind": "tool", "tool": "calculator"')
    assert not accepts('{"nodes": [{"id": "a", "kind": "llm", "role": "' + "r" * 21)
    assert not accepts('{"nodes": [{"id": "Bad"')
    five = ", ".join(json.dumps(node(f"n{i}"), separators=(", ", ": ")) for i in range(5))
    assert not accepts('{"nodes": [' + five + "]")


def test_schema_without_tools_offers_llm_nodes_only():
    caps = SchemaCaps(max_nodes=2, max_inputs=1, role_chars=10, instruction_chars=20)
    shapes = design_schema([], caps)["properties"]["nodes"]["items"]["anyOf"]
    assert [s["properties"]["kind"]["const"] for s in shapes] == ["llm"]


def _grammar(schema):
    xgr = pytest.importorskip("xgrammar")
    vocab = [chr(i) for i in range(32, 127)] + ["<eos>"]
    info = xgr.TokenizerInfo(vocab, stop_token_ids=[len(vocab) - 1])
    compiled = xgr.GrammarCompiler(info).compile_json_schema(
        json.dumps(schema), any_whitespace=False, strict_mode=True)
    return xgr, vocab, compiled


def _random_document(xgr, vocab, compiled, rng):
    """A random walk through the grammar: a document a constrained model could write."""
    matcher = xgr.GrammarMatcher(compiled)
    mask = xgr.allocate_token_bitmask(1, len(vocab))
    out = []
    while not matcher.is_terminated():
        matcher.fill_next_token_bitmask(mask)
        words = mask[0].tolist()
        allowed = [t for t in range(len(vocab)) if (words[t // 32] >> (t % 32)) & 1]
        # favour closing quotes and brackets so strings stay short and walks end quickly
        closing = [t for t in allowed if vocab[t] in '"]}' or t == len(vocab) - 1]
        token = rng.choice(closing) if closing and rng.random() < 0.35 else rng.choice(allowed)
        assert matcher.accept_token(token)
        if token != len(vocab) - 1:
            out.append(vocab[token])
    return "".join(out)


def test_fixed_id_schema_admits_only_valid_designs():
    import random

    limits = Limits(max_nodes=8, max_fan_out=4)
    caps = caps_for_budget(limits, TOOLS, 512, sizes=COMPACT.design_sizes)
    assert caps.max_nodes == 4
    xgr, vocab, compiled = _grammar(design_schema(TOOLS, caps, fixed_ids=True))
    rng = random.Random(7)
    sizes = set()
    for _ in range(60):
        doc = _random_document(xgr, vocab, compiled, rng)
        spec, errors = check_spec(doc, limits=limits, tools=TOOLS)
        assert spec is not None and errors == [], (doc, errors)
        assert spec.final == FINAL_ID and len(doc) <= caps.max_doc_chars(TOOLS)
        sizes.add(len(spec.nodes))
    assert sizes == {1, 2, 3, 4}  # every shape is reachable


def test_free_schema_leaves_graph_rules_to_validation():
    caps = SchemaCaps(max_nodes=3, max_inputs=2, role_chars=12, instruction_chars=20)
    xgr, vocab, compiled = _grammar(design_schema(TOOLS, caps))
    m = xgr.GrammarMatcher(compiled)
    cyclic = json.dumps({"nodes": [
        {"id": "a", "kind": "llm", "role": "r", "instruction": "i", "inputs": ["b"]},
        {"id": "b", "kind": "llm", "role": "r", "instruction": "i", "inputs": ["a"]}],
        "final": "b"}, separators=(", ", ": "))
    assert all(m.accept_string(ch) for ch in cyclic)  # the grammar admits it ...
    assert any("cycle" in e for e in check_spec(cyclic, limits=Limits(), tools=TOOLS)[1])
