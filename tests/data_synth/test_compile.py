"""Dataset compilers: SFT rows that render token for token as the runtime's prompts, preference
pairs that never pair two right or two wrong replies, tool trajectories, router labels, mixing,
token caps, filters, stable hashes, and builds that crash without registering anything."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agentrt.core.config import Limits, load_settings
from agentrt.core.errors import InvalidInputError
from agentrt.eval.graders import grade
from agentrt.llm.fake import FakeBackend
from agentrt.runtime import Runtime
from agentrt.store import TraceStore
from agentrt.data_synth.compile import BuildSpec, build_dataset, get_dataset, list_datasets
from agentrt.data_synth.compile.dpo import Candidate, check_pair
from agentrt.data_synth.generators import generate
from agentrt.data_synth.teacher import gold_traces
from agentrt.data_synth.verify import problem_tags

REPO = Path(__file__).resolve().parents[2]
PROBLEM = generate("arithmetic", 1, seed=11, difficulty=1)[0]
WORD = generate("word", 1, seed=11, difficulty=1)[0]
WRONG = str(int(PROBLEM.answer) + 1)


class FakeTool:
    """A python tool at the seam: prints a fixed line."""

    name = "python"
    description = "Run a Python program."
    input_schema = {"type": "object", "required": ["code"],
                    "properties": {"code": {"type": "string"}, "timeout_s": {"type": "number"}}}

    def __init__(self, stdout):
        self.stdout = stdout

    def run(self, args):
        return {"stdout": self.stdout + "\n", "stderr": "", "exit_code": 0, "timed_out": False}


def _design(*cycle):
    nodes = [{"id": "calc", "kind": "tool", "tool": "python", "role": "coder",
              "instruction": "Compute it.", "inputs": list(cycle)},
             {"id": "fin", "kind": "llm", "role": "checker", "instruction": "State it.",
              "inputs": ["calc"]}]
    return json.dumps({"nodes": nodes, "final": "fin"})


def _student_slow(store, printed, *, repair):
    """A model's slow solve (scripted): optionally a rejected design first, then `printed`."""
    rules = [(r"Reflect on the following problem", "A product plus a number."),
             (r"Design a workflow of experts", _design("fin") if repair else _design()),
             (r"Your workflow design for the problem below was rejected", _design()),
             (r"tool: python", '{"code": "print(1)"}'),
             (r"Expert: fin ", f"The tool printed {printed}.\nFinal answer: {printed}"),
             (r"Judge whether its final answer", '{"reason": "ok", "verdict": "yes"}')]
    rt = Runtime(load_settings(backend="fake", model="student"),
                 backend=FakeBackend(rules=rules, model_id="student"), store=store,
                 tools={"python": FakeTool(printed)})
    return rt.solve(PROBLEM.text, mode="slow", tags=problem_tags(PROBLEM)).trace_id


def _student_fast(store, answer, verdict="yes", problem=PROBLEM):
    backend = FakeBackend(rules=[(r"Proposed", f"Verdict: {verdict}")],
                          default=f"Some work.\nFinal answer: {answer}", model_id="student")
    rt = Runtime(load_settings(backend="fake", model="student"), backend=backend, store=store)
    return rt.solve(problem.text, mode="fast", tags=problem_tags(problem)).trace_id


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """A store with gold traces and a student model's right and wrong solves."""
    root = tmp_path_factory.mktemp("compile")
    url = f"sqlite:///{root / 'traces.db'}"
    store = TraceStore(url)
    settings = load_settings(backend="fake", model="student", home=root)
    gold = gold_traces([PROBLEM, WORD], store=store, settings=settings, mode="both")
    assert gold.stored == {"slow": 2, "fast": 2}
    ids = {"right_fast": _student_fast(store, PROBLEM.answer),
           "wrong_fast": _student_fast(store, WRONG, verdict="yes"),
           "wrong_fast_no": _student_fast(store, WRONG, verdict="no"),
           "right_slow_repaired": _student_slow(store, PROBLEM.answer, repair=True),
           "wrong_slow": _student_slow(store, WRONG, repair=False)}
    yield {"store": store, "url": url, "root": root, "ids": ids}
    store.close()


def _build(db, kind, name, **kw):
    return build_dataset(db["store"], BuildSpec(kind=kind, out=db["root"] / name, **kw))


def _rows(record):
    from datasets import load_from_disk

    return list(load_from_disk(record.path))


def test_sft_rows_are_verified_calls_and_hashes_are_stable(db):
    first = _build(db, "sft", "sft-a")
    again = _build(db, "sft", "sft-b")
    assert first.content_hash == again.content_hash and first.rows == again.rows
    assert first.name != again.name and get_dataset(db["store"], first.name).trace_ids
    rows = _rows(first)
    ids = db["ids"]
    traces = {r["trace_id"] for r in rows}
    assert ids["right_fast"] in traces and ids["right_slow_repaired"] in traces
    assert not traces & {ids["wrong_fast"], ids["wrong_fast_no"], ids["wrong_slow"]}
    assert all(r["ok"] is True for r in rows)
    steps = {r["step"] for r in rows}
    assert {"fast_answer", "fast_check", "reflect", "design_repair", "tool_input", "expert",
            "judge"} <= steps
    assert "route_decision" not in steps  # the router decides fast or slow, not a model call
    # The rejected first design of the repaired solve is never a target; its repair is.
    repaired = [r for r in rows if r["trace_id"] == ids["right_slow_repaired"]]
    assert "design" not in {r["step"] for r in repaired}
    for r in rows:
        assert r["messages"][-1]["role"] == "assistant" and r["messages"][0]["role"] == "system"
    assert set(get_dataset(db["store"], first.name).trace_ids) == traces


def test_all_keeps_unverified_calls_marked(db):
    rows = _rows(_build(db, "sft", "sft-all", verified_only=False))
    wrong = [r for r in rows if r["trace_id"] == db["ids"]["wrong_fast"]]
    assert {r["step"]: r["ok"] for r in wrong} == {"fast_answer": False, "fast_check": False}
    checks = [r for r in rows if r["trace_id"] == db["ids"]["wrong_fast_no"]]
    assert {r["step"]: r["ok"] for r in checks}["fast_check"] is True  # a right "no"


def test_dpo_pairs_never_pair_two_right_or_two_wrong(db):
    rows = _rows(_build(db, "dpo", "dpo"))
    kinds = {r["kind"] for r in rows}
    assert kinds == {"answer", "design"}
    from agentrt.eval.extract import extract_answer

    for r in rows:
        assert r["chosen"][0]["content"] != r["rejected"][0]["content"]
        if r["kind"] == "answer":
            got = [grade(extract_answer(x[0]["content"], "numeric"), PROBLEM).correct
                   for x in (r["chosen"], r["rejected"])]
            assert got == [True, False]
            assert r["prompt"][-1]["content"].endswith(PROBLEM.text) or PROBLEM.text in \
                r["prompt"][-1]["content"]
        else:
            assert r["chosen_trace_id"] != db["ids"]["wrong_slow"]
            assert r["rejected_trace_id"] in (db["ids"]["wrong_slow"],
                                              db["ids"]["right_slow_repaired"])
    right = Candidate(prompt=(), reply="a", correct=True, trace_id="t", step_id=1, template="",
                      problem="p", family="")
    wrong = Candidate(prompt=(), reply="b", correct=False, trace_id="t", step_id=2, template="",
                      problem="p", family="")
    check_pair(right, wrong)
    for chosen, rejected in ((right, right), (wrong, wrong), (wrong, right)):
        with pytest.raises(AssertionError):
            check_pair(chosen, rejected)


def test_tool_rows_are_openai_tool_call_trajectories(db):
    rows = _rows(_build(db, "tool", "tool"))
    assert rows and all(r["ok"] for r in rows)
    for r in rows:
        msgs = r["messages"]
        call, result, final = msgs[2], msgs[3], msgs[-1]
        assert call["role"] == "assistant" and call["content"] is None
        tc = call["tool_calls"][0]
        assert tc["type"] == "function" and tc["function"]["name"] == "python"
        assert "code" in json.loads(tc["function"]["arguments"])
        assert "timeout_s" not in json.loads(tc["function"]["arguments"])
        assert result["role"] == "tool" and result["tool_call_id"] == tc["id"]
        assert final["role"] == "assistant" and "Final answer" in final["content"]
        assert json.loads(r["tools"])[0]["function"]["name"] == "python"


def test_router_labels(db):
    rows = _rows(_build(db, "router", "router"))
    labels = {r["trace_id"]: r["fast_succeeded"] for r in rows}
    ids = db["ids"]
    assert labels[ids["right_fast"]] is True and labels[ids["wrong_fast"]] is False
    assert ids["wrong_slow"] not in labels  # never tried fast thinking
    assert sum(1 for r in rows if r["source"] == "gold") == 2


def test_filters_and_empty_selection(db, tmp_path):
    gold = _rows(_build(db, "sft", "sft-gold", model_id="gold"))
    assert {r["source"] for r in gold} == {"gold"} and {r["model_id"] for r in gold} == {"gold"}
    word = _rows(_build(db, "sft", "sft-word", family="word"))
    assert {r["family"] for r in word} == {"word"}
    with pytest.raises(InvalidInputError, match="no finished traces match.*family=nope"):
        _build(db, "sft", "none", family="nope")
    with pytest.raises(InvalidInputError, match="no finished traces"):
        _build(db, "sft", "none", model_id="someone-else")
    with pytest.raises(InvalidInputError, match="none yields a dpo row"):
        _build(db, "dpo", "none", model_id="gold")
    with pytest.raises(ValueError):
        BuildSpec(kind="pretrain", out=tmp_path)
    with pytest.raises(ValueError, match="tokenizer"):
        BuildSpec(kind="sft", out=tmp_path, max_tokens=10)
    with pytest.raises(ValueError, match="sft and tool"):
        BuildSpec(kind="dpo", out=tmp_path, mix=tmp_path / "x.jsonl", mix_ratio=0.5)
    assert not (db["root"] / "none").exists()


def test_mixing_general_data_at_a_ratio(db, tmp_path):
    general = tmp_path / "general.jsonl"
    general.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"Say {i}."}, {"role": "assistant", "content": str(i)}]}) + "\n"
        for i in range(200)))
    base = _build(db, "sft", "sft-base")
    mixed = _build(db, "sft", "sft-mixed", mix=general, mix_ratio=0.25, seed=3)
    rows = _rows(mixed)
    n_general = sum(1 for r in rows if r["source"] == "general")
    assert n_general == round(base.rows * 0.25 / 0.75)
    assert mixed.rows == base.rows + n_general and mixed.meta["mix"]["taken"] == n_general
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(InvalidInputError, match="line 1: the last message"):
        _build(db, "sft", "sft-bad", mix=bad, mix_ratio=0.5)


def test_token_caps_use_the_models_tokenizer(db, smollm2_dir):
    full = _build(db, "sft", "sft-tok", tokenizer=str(smollm2_dir))
    rows = _rows(full)
    lengths = sorted(r["tokens"] for r in rows)
    cap = lengths[len(lengths) // 2]
    capped = _build(db, "sft", "sft-cap", tokenizer=str(smollm2_dir), max_tokens=cap)
    assert capped.rows == sum(1 for n in lengths if n <= cap) < full.rows
    assert capped.meta["over_token_cap"] == full.rows - capped.rows
    assert full.meta["composition"]["tokens"]["total"] == sum(lengths)


def test_sft_rows_render_token_for_token_as_the_prompt_the_runtime_sent(tmp_path, tiny_llama_dir,
                                                                       monkeypatch):
    """A real solve on the hf backend: each row's prompt equals the ids the backend computed."""
    from transformers import AutoTokenizer

    from agentrt.llm.hf import HFBackend

    sent = []
    original = HFBackend._prepare

    def recording(self, request):
        job = original(self, request)
        sent.append(([m.model_dump(exclude_none=True) for m in request.messages],
                     list(job.prompt_ids)))
        return job

    monkeypatch.setattr(HFBackend, "_prepare", recording)
    backend = HFBackend(str(tiny_llama_dir), device="cpu")
    store = TraceStore(f"sqlite:///{tmp_path / 'hf.db'}")
    settings = load_settings(backend="hf", model=str(tiny_llama_dir), home=tmp_path,
                             limits=Limits(max_tokens_per_call=6))
    try:
        Runtime(settings, backend=backend, store=store).solve(
            PROBLEM.text, mode="fast", tags=problem_tags(PROBLEM))
        record = build_dataset(store, BuildSpec(kind="sft", out=tmp_path / "sft",
                                                verified_only=False,
                                                tokenizer=str(tiny_llama_dir)))
        trace = store.get_trace(record.trace_ids[0])
    finally:
        backend.close()
        store.close()
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    rows = [r for r in _rows(record) if r["step"] != "route_decision"]
    assert [r["step"] for r in rows] == ["fast_answer", "fast_check"] and len(sent) == 2
    prompt_tokens = {s.id: s.prompt_tokens for s in trace.steps}
    for row, (messages, ids) in zip(rows, sent):
        prompt = row["messages"][:-1]
        text = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        assert tok(text, add_special_tokens=False).input_ids == ids
        assert prompt == [{"role": m["role"], "content": m["content"]} for m in messages]
        assert prompt_tokens[row["step_id"]] == len(ids)
        whole = tok.apply_chat_template(row["messages"], tokenize=False)
        assert tok(whole, add_special_tokens=False).input_ids[: len(ids)] == ids


def test_a_crash_mid_build_registers_nothing(db, monkeypatch):
    from agentrt.data_synth.compile import writer

    out = db["root"] / "crashed"
    before = len(list_datasets(db["store"]))

    def broken(rows, path):
        Path(path).mkdir()
        (Path(path) / "half-written.arrow").write_text("x")
        raise OSError("disk full")

    monkeypatch.setattr(writer, "_save_quietly", broken)
    with pytest.raises(OSError, match="disk full"):
        _build(db, "sft", "crashed")
    monkeypatch.undo()
    assert not out.exists() and not list(db["root"].glob(".crashed.*"))

    import agentrt.data_synth.compile.build as build_module

    def refuse(*a, **k):
        raise InvalidInputError("registry down")

    monkeypatch.setattr(build_module, "register_dataset", refuse)
    with pytest.raises(InvalidInputError, match="registry down"):
        _build(db, "sft", "crashed")
    assert not out.exists()  # the saved directory is removed again
    assert len(list_datasets(db["store"])) == before


def test_a_killed_build_registers_nothing_and_its_leftovers_are_cleaned(db):
    out = db["root"] / "killed"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from agentrt.store import TraceStore
        from agentrt.data_synth.compile import BuildSpec, build_dataset, writer

        def slow(rows, path):
            Path(path).mkdir()
            (Path(path) / "part").write_text("x")
            time.sleep(60)

        writer._save_quietly = slow
        build_dataset(TraceStore({db["url"]!r}), BuildSpec(kind="sft", out=Path({str(out)!r})))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    try:
        deadline = time.time() + 120
        while not list(db["root"].glob(".killed.tmp-*/part")):
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.2)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert list(db["root"].glob(".killed.tmp-*")) and not out.exists()
    assert not [d for d in list_datasets(db["store"]) if d.path == str(out)]
    record = _build(db, "sft", "killed")
    assert record.path == str(out) and not list(db["root"].glob(".killed.tmp-*"))


def test_references_from_a_problems_file_or_eval_tags(tmp_path):
    store = TraceStore(f"sqlite:///{tmp_path / 'refs.db'}")
    backend = FakeBackend(rules=[(r"Proposed", "Verdict: yes")],
                          default=f"Final answer: {PROBLEM.answer}", model_id="student")
    rt = Runtime(load_settings(backend="fake", model="student"), backend=backend, store=store)
    by_id = rt.solve(PROBLEM.text, mode="fast", tags={"problem_id": PROBLEM.id}).trace_id
    by_eval = rt.solve(PROBLEM.text, mode="fast", tags={"eval_correct": "1"}).trace_id
    untied = rt.solve(PROBLEM.text, mode="fast").trace_id
    try:
        record = build_dataset(store, BuildSpec(kind="sft", out=tmp_path / "sft"),
                               problems={PROBLEM.id: PROBLEM})
        used = set(record.trace_ids)
        assert by_id in used and by_eval in used and untied not in used
        assert record.meta["skipped"] == {"no reference answer": 1}
    finally:
        store.close()
