"""`agentrt synth` and `agentrt data` end to end through the CLI entry point, and its errors."""

import json
import os
from pathlib import Path

import pytest

from agentrt.cli import main


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTRT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AGENTRT_DATABASE_URL", f"sqlite:///{tmp_path / 'traces.db'}")
    monkeypatch.setenv("AGENTRT_BACKEND", "fake")
    monkeypatch.setenv("AGENTRT_MODEL", "a-large-model")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys, *argv):
    """Run the CLI; (exit code, stdout, stderr)."""
    try:
        main(list(argv))
        code = 0
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, " ".join(captured.err.split())


def test_problems_traces_build_and_list(env, capsys):
    code, out, _ = run(capsys, "synth", "problems", "--family", "arithmetic", "--n", "3",
                       "--seed", "4", "--difficulty", "1", "--out", "p.jsonl")
    assert code == 0 and "wrote 3 arithmetic problems" in out
    rows = [json.loads(line) for line in (env / "p.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(r["meta"]["program"] for r in rows)

    code, out, _ = run(capsys, "synth", "traces", "--from", "p.jsonl", "--mode", "both", "--json")
    report = json.loads(out)
    assert code == 0 and report["stored"] == {"slow": 3, "fast": 3} and not report["rejected"]

    code, out, _ = run(capsys, "data", "build", "sft", "--out", "sft", "--json")
    built = json.loads(out)
    assert code == 0 and built["kind"] == "sft" and built["rows"] > 0
    assert built["meta"]["composition"]["sources"] == {"gold": built["rows"]}
    assert (env / "sft" / "agentrt-dataset.json").is_file()

    code, out, _ = run(capsys, "data", "list", "--json")
    listed = json.loads(out)
    assert [d["name"] for d in listed] == [built["name"]]
    assert listed[0]["content_hash"] == built["content_hash"]

    code, out, _ = run(capsys, "data", "show", built["name"])
    assert code == 0 and len(json.loads(out)["trace_ids"]) == 6

    code, _, err = run(capsys, "data", "build", "dpo", "--out", "dpo")
    assert code == 2 and "none yields a dpo row" in err and not (env / "dpo").exists()


@pytest.mark.parametrize("argv, message", [
    (("synth", "problems", "--family", "nope", "--n", "3", "--out", "x.jsonl"),
     "unknown problem family 'nope'"),
    (("synth", "problems", "--family", "word", "--n", "0", "--out", "x.jsonl"),
     "must be a positive integer, got 0"),
    (("synth", "problems", "--family", "word", "--n", "-2", "--out", "x.jsonl"),
     "must be a positive integer, got -2"),
    (("synth", "traces", "--from", "missing.jsonl"), "cannot read problems from missing.jsonl"),
    (("data", "build", "sft", "--out", "d"), "no finished traces match the selection"),
    (("data", "build", "sft", "--out", "d", "--family", "word", "--model-id", "m"),
     "family=word, model_id=m"),
    (("data", "build", "pretrain", "--out", "d"), "invalid build options: kind"),
    (("data", "build", "sft", "--out", "d", "--since", "yesterday"), "--since must be an ISO"),
    (("data", "build", "sft", "--out", "d", "--mix-ratio", "0.3"), "mix file and a mix ratio"),
    (("data", "show", "nothing"), "no dataset named 'nothing'"),
    (("synth", "traces", "--from", "p.jsonl", "--executor", "slurm"),
     "invalid --executor 'slurm': choose one of local, ray"),
    (("synth", "traces", "--from", "p.jsonl", "--executor", "ray"),
     "apply to a teacher model's solves"),
    (("synth", "model-problems", "--out", "x.jsonl", "--n", "1", "--topic", "t", "--executor",
      "slurm"), "invalid --executor 'slurm'"),
])
def test_bad_input_is_one_clear_error(env, capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and message in err, err
    assert not (env / "x.jsonl").exists()


def test_teacher_traces_on_local_workers(env, capsys):
    (env / "p.jsonl").write_text("".join(
        json.dumps({"id": f"p{i}", "text": f"What is {i} + 40?", "answer": str(i + 40),
                    "grader": "numeric"}) + "\n" for i in (1, 2, 3)))
    code, out, _ = run(capsys, "synth", "traces", "--from", "p.jsonl", "--mode", "fast",
                       "--teacher-backend", "fake", "--teacher-model", "fake", "--workers", "2",
                       "--json")
    report = json.loads(out)  # the fake teacher answers 42 to everything: right for p2 only
    assert code == 0 and report["requested"] == 3 and report["stored"] == {"fast": 1}
    assert [r["problem_id"] for r in report["rejected"]] == ["p1", "p3"]


def test_bad_problem_file_names_the_line(env, capsys):
    (env / "bad.jsonl").write_text(json.dumps({"id": "a", "text": "t", "answer": "1",
                                               "grader": "numeric"}) + "\n{not json\n")
    code, _, err = run(capsys, "synth", "traces", "--from", "bad.jsonl")
    assert code == 2 and "bad.jsonl line 2: invalid JSON" in err


DATA = Path(os.environ.get("AGENTRT_DATA")
            or Path(__file__).resolve().parents[2].parent / "shared" / "data")


@pytest.mark.skipif(not (DATA / "README.md").is_file(), reason="benchmark data folder not present")
def test_worked_solutions_become_problems_with_programs(env, capsys):
    data = DATA  # the test sets the problems are decontaminated against
    rows = [{"q": "Ann has 3 bags of 4 apples. How many apples?", "s": "3*4 = <<3*4=12>>12 apples",
             "a": "12"},
            {"q": "No arithmetic to see here?", "s": "It is 5.", "a": "5"}]
    (env / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, _ = run(capsys, "synth", "worked", "--from", "rows.jsonl", "--source", "mine",
                       "--out", "p.jsonl", "--question-key", "q", "--solution-key", "s",
                       "--answer-key", "a", "--data", str(data), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["written"] == 1 and report["dropped"] == {"no calculator annotations": 1}
    problem = json.loads((env / "p.jsonl").read_text())
    assert problem["meta"]["program"] == "apples = 3 * 4\nprint(apples)"
    code, out, _ = run(capsys, "synth", "traces", "--from", "p.jsonl", "--mode", "slow")
    assert code == 0 and "stored 1" in out.replace("\n", " ")


@pytest.mark.skipif(not (DATA / "README.md").is_file(), reason="benchmark data folder not present")
def test_worked_solutions_can_bring_their_number_variants(env, capsys):
    rows = [{"q": "Ann has 3 bags of 14 apples and eats 5. How many apples are left?",
             "s": "3*14 = <<3*14=42>>42 apples\n42-5 = <<42-5=37>>37 left", "a": "37"}]
    (env / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, _ = run(capsys, "synth", "worked", "--from", "rows.jsonl", "--source", "mine",
                       "--out", "p.jsonl", "--question-key", "q", "--solution-key", "s",
                       "--answer-key", "a", "--data", str(DATA), "--variants", "2", "--json")
    assert code == 0
    report = json.loads(out)
    written = [json.loads(line) for line in (env / "p.jsonl").read_text().splitlines()]
    assert report["written"] == len(written) == 3
    assert report["variants"]["mine-variant"]["kept"] == 2
    original, *variants = written
    for v in variants:
        assert v["meta"]["variant_of"] == original["id"] and v["text"] != original["text"]


def test_step_pairs_from_a_saved_dataset(env, capsys):
    from datasets import Dataset, load_from_disk

    def row(code, family, **extra):
        return {"messages": [{"role": "user", "content": "Problem: 4 boxes of 6 eggs\nTask: x"},
                             {"role": "assistant", "content": json.dumps({"code": code})}],
                "step": "tool_input", "source": "gold", "ok": True, "family": family,
                "problem_id": family, **extra}

    rows = [row("eggs = 4 * 6; print(eggs)", "word")] * 3 + \
        [row("a = 4 * 6; b = a - 6; print(b)", "gsm8k")] * 2 + \
        [row("eggs = 4 * 6; print(eggs)", "word", source="model")]
    Dataset.from_list(rows).save_to_disk(str(env / "sft"))
    code, out, err = run(capsys, "data", "step-pairs", "--from", "sft", "--out", "pairs",
                         "--per-family", "2", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["pairs"] == 4 and report["families"] == {"gsm8k": 2, "word": 2}
    pairs = load_from_disk(str(env / "pairs"))
    assert {"prompt", "chosen", "rejected", "kind"} <= set(pairs.column_names)
    assert all(p["chosen"] != p["rejected"] for p in pairs)
    code, _, err = run(capsys, "data", "step-pairs", "--from", "sft", "--out", "pairs")
    assert code != 0 and "exists" in err  # nothing is overwritten
    code, _, err = run(capsys, "data", "step-pairs", "--from", "missing", "--out", "p2")
    assert code != 0 and "not a saved dataset" in err and not (env / "p2").exists()
