"""`training/train.py` on input a user may give it: unknown or out-of-range settings, a folder
that is not a saved dataset, a model that cannot be loaded, an output that exists, router tags
that are not JSON. Each is one line on stderr and exit 2, before anything is written."""

from __future__ import annotations

import pytest

from agentrt.training.train import main


@pytest.fixture
def saved(tmp_path):
    from datasets import Dataset

    path = tmp_path / "sft-data"
    Dataset.from_list([{"messages": [{"role": "user", "content": "hi"},
                                     {"role": "assistant", "content": "hello"}]}]).save_to_disk(
        str(path))
    return path


@pytest.mark.parametrize(("kind", "sets", "fragment"), [
    ("sft", ["bogus=1"], "unexpected keyword argument 'bogus'"),
    ("sft", ["batch_size=0"], "batch_size and grad_accum must be >= 1"),
    ("sft", ["max_steps=-3"], "max_steps must be -1"),
    ("sft", ['lora="x"'], "lora must be LoRA settings"),
    ("sft", ['lora={"r": 0}'], "LoRA rank and alpha must be >= 1"),
    ("dpo", ["beta=-1"], "beta must be > 0"),
    ("hypo", ["learning_rate=3"], "learning_rate must be in (0, 1)"),
    ("sft", ["max_steps"], "--set takes key=value"),
])
def test_bad_settings_are_one_line_errors(tmp_path, capsys, saved, kind, sets, fragment):
    _refused(capsys, [kind, "--model", "smollm2-135m", "--data", str(saved),
                      "--out", str(tmp_path / "out"), *(a for s in sets for a in ("--set", s))],
             fragment)
    assert not (tmp_path / "out").exists()


def test_bad_data_model_and_output_are_one_line_errors(tmp_path, capsys, saved,
                                                       tiny_llama_dir):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "rows.jsonl").write_text('{"messages": []}\n')
    out = str(tmp_path / "out")
    _refused(capsys, ["sft", "--model", str(tiny_llama_dir), "--data", str(plain), "--out", out],
             "is not a saved dataset")
    _refused(capsys, ["sft", "--model", str(tiny_llama_dir), "--data", str(tmp_path / "none"),
                      "--out", out], "no dataset directory")
    _refused(capsys, ["sft", "--model", str(tmp_path), "--data", str(saved), "--out", out],
             "no config.json")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    _refused(capsys, ["sft", "--model", str(broken), "--data", str(saved), "--out", out],
             "not found")
    _refused(capsys, ["sft", "--model", str(tiny_llama_dir), "--data", str(saved), "--out",
                      str(tmp_path)], "exists; a trained model is never written over")
    assert not (tmp_path / "out").exists()
    _refused(capsys, ["router", "--tags", "{x", "--home", str(tmp_path / "home")],
             "--tags is not JSON")
    _refused(capsys, ["router", "--tags", '["a"]', "--home", str(tmp_path / "home")],
             "--tags takes a JSON object")


def _refused(capsys, argv, fragment):
    capsys.readouterr()  # what the fixtures printed
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if "error" in ln.lower()]  # not progress bars
    assert len(lines) == 1 and "error: " in lines[0] and fragment in lines[0], err
