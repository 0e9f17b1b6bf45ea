"""The embedded model registry and cache: conversion, reuse, resolution, concurrent pulls."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentrt.core.errors import ModelNotFoundError
from agentrt.llm import models
from agentrt.llm.models import MANIFEST, list_models, pull_model, resolve_model


def test_converted_model_is_complete_with_chatml_template(smollm2_dir):
    from transformers import AutoConfig, AutoTokenizer

    names = {p.name for p in smollm2_dir.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", MANIFEST} <= names
    config = AutoConfig.from_pretrained(smollm2_dir)
    assert config.model_type == "llama" and not hasattr(config, "quantization_config")
    assert (config.num_hidden_layers, config.hidden_size, config.vocab_size) == (30, 576, 49152)
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    text = tok.apply_chat_template(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"
    assert tok.eos_token == "<|im_end|>" and tok.convert_tokens_to_ids("<|im_start|>") == 1
    assert len(tok("<|im_start|>user", add_special_tokens=False).input_ids) == 2  # special token kept whole
    assert json.loads((smollm2_dir / "generation_config.json").read_text())["eos_token_id"] == 2


def test_list_models_reports_installed(embedded_home, tmp_path):
    [info] = [m for m in list_models(embedded_home) if m.name == "smollm2-135m"]
    assert info.installed and Path(info.path) == embedded_home / "models" / "smollm2-135m"
    assert "SmolLM2" in info.description and "gguf" in info.source.lower()
    assert not any(m.installed for m in list_models(tmp_path))


def test_pull_reuses_the_cache_without_converting(embedded_home, monkeypatch):
    def refuse(out, step):
        raise AssertionError("converted again")

    entry = models.EMBEDDED_MODELS["smollm2-135m"]
    monkeypatch.setitem(models.EMBEDDED_MODELS, "smollm2-135m", models.EmbeddedModel(entry.name, "", "", refuse))
    assert pull_model("smollm2-135m", home=embedded_home, progress=False) == embedded_home / "models" / "smollm2-135m"
    assert resolve_model("smollm2-135m", embedded_home) == str(embedded_home / "models" / "smollm2-135m")


def test_resolve_local_dirs_hub_ids_and_bad_names(tiny_llama_dir, tmp_path):
    assert resolve_model(str(tiny_llama_dir)) == str(tiny_llama_dir.resolve())
    assert resolve_model("HuggingFaceTB/SmolLM2-360M-Instruct") == "HuggingFaceTB/SmolLM2-360M-Instruct"
    (tmp_path / "empty").mkdir()
    for bad in ["", str(tmp_path / "empty"), str(tmp_path / "absent"), "./nope", "a/b/c", "bad name!"]:
        with pytest.raises(ModelNotFoundError, match="smollm2-135m"):
            resolve_model(bad, tmp_path)
    with pytest.raises(ModelNotFoundError, match="not found"):
        pull_model("no-such-model", tmp_path)


def _fake_entry(calls: list) -> models.EmbeddedModel:
    def convert(out: Path, step) -> None:
        calls.append(out)
        step("writing")
        (out / "config.json").write_text("{}")
        raise RuntimeError("conversion broke")

    return models.EmbeddedModel("broken-model", "d", "s", convert)


def test_failed_conversion_leaves_nothing_behind(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setitem(models.EMBEDDED_MODELS, "broken-model", _fake_entry(calls))
    with pytest.raises(RuntimeError, match="conversion broke"):
        pull_model("broken-model", tmp_path, progress=True)
    assert len(calls) == 1 and not calls[0].exists()
    leftovers = [p.name for p in (tmp_path / "models").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []


PULL_SCRIPT = textwrap.dedent(
    """
    import shutil, sys, time
    from pathlib import Path
    from agentrt.llm import models

    src, home, log = sys.argv[1:4]

    def convert(out, step):
        with open(log, "a") as f:
            f.write("converted\\n")
        time.sleep(1.0)  # hold the lock long enough for the other process to queue on it
        for p in Path(src).iterdir():
            shutil.copy(p, out / p.name)

    models.EMBEDDED_MODELS["race-model"] = models.EmbeddedModel("race-model", "d", "s", convert)
    print(models.pull_model("race-model", home=home, progress=False))
    """
)


def test_two_processes_pulling_at_once_convert_once(tiny_llama_dir, tmp_path):
    from transformers import AutoConfig

    script, log = tmp_path / "pull.py", tmp_path / "log.txt"
    script.write_text(PULL_SCRIPT)
    cmd = [sys.executable, str(script), str(tiny_llama_dir), str(tmp_path / "home"), str(log)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    paths = {o[0].strip() for o in outs}
    target = tmp_path / "home" / "models" / "race-model"
    assert paths == {str(target)}
    assert log.read_text().count("converted") == 1
    assert (target / MANIFEST).is_file() and AutoConfig.from_pretrained(target).model_type == "llama"
    siblings = [p.name for p in target.parent.iterdir() if not p.name.endswith(".lock")]
    assert siblings == ["race-model"]  # no temporary directories left
