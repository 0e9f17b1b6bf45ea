"""The embedded model registry and cache: conversion, reuse, resolution, concurrent pulls."""

from __future__ import annotations

import json
import os
import shutil
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


def _copying_entry(name: str, src: Path, calls: list) -> models.EmbeddedModel:
    def convert(out: Path, step) -> None:
        calls.append(out)
        for p in Path(src).iterdir():
            shutil.copy(p, out / p.name)

    return models.EmbeddedModel(name, "d", "s", convert)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_truncated_weights_are_not_installed_and_are_built_again(tiny_llama_dir, tmp_path,
                                                                  monkeypatch):
    calls: list = []
    monkeypatch.setitem(models.EMBEDDED_MODELS, "tiny-cache",
                        _copying_entry("tiny-cache", tiny_llama_dir, calls))
    path = pull_model("tiny-cache", tmp_path, progress=False)
    weights = path / "model.safetensors"
    size = weights.stat().st_size
    assert json.loads((path / MANIFEST).read_text())["files"]["model.safetensors"] == size
    _truncate(weights)
    [info] = [i for i in list_models(tmp_path) if i.name == "tiny-cache"]
    assert not info.installed
    assert info.problem == (f"the cached copy is incomplete: model.safetensors has {size // 2} "
                            f"bytes, {size} were written")
    assert pull_model("tiny-cache", tmp_path, progress=False) == path and len(calls) == 2
    assert weights.stat().st_size == size
    [info] = [i for i in list_models(tmp_path) if i.name == "tiny-cache"]
    assert info.installed and info.problem is None


def test_a_cache_without_recorded_sizes_is_checked_against_the_safetensors_header(
        tiny_llama_dir, tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setitem(models.EMBEDDED_MODELS, "tiny-cache",
                        _copying_entry("tiny-cache", tiny_llama_dir, calls))
    path = pull_model("tiny-cache", tmp_path, progress=False)
    manifest = json.loads((path / MANIFEST).read_text())
    del manifest["files"]  # as written before sizes were recorded
    (path / MANIFEST).write_text(json.dumps(manifest))
    assert pull_model("tiny-cache", tmp_path, progress=False) == path and len(calls) == 1
    _truncate(path / "model.safetensors")
    [info] = [i for i in list_models(tmp_path) if i.name == "tiny-cache"]
    assert not info.installed and "its header says" in info.problem
    pull_model("tiny-cache", tmp_path, progress=False)
    assert len(calls) == 2


def test_pull_force_from_the_cli_builds_a_complete_copy_again(tiny_llama_dir, tmp_path,
                                                              monkeypatch, capsys):
    from agentrt.cli import main

    calls: list = []
    monkeypatch.setitem(models.EMBEDDED_MODELS, "tiny-cache",
                        _copying_entry("tiny-cache", tiny_llama_dir, calls))
    for key in [k for k in os.environ if k.upper().startswith("AGENTRT_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AGENTRT_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    main(["models", "pull", "tiny-cache"])
    main(["models", "pull", "tiny-cache"])
    assert len(calls) == 1
    main(["models", "pull", "--force", "tiny-cache"])
    assert len(calls) == 2
    assert capsys.readouterr().out.count(str(tmp_path / "models" / "tiny-cache")) == 3


def test_a_damaged_cached_copy_fails_to_load_with_how_to_rebuild_it(tiny_llama_dir, tmp_path,
                                                                    monkeypatch):
    from agentrt.llm.hf_load import load_model

    monkeypatch.setitem(models.EMBEDDED_MODELS, "tiny-cache",
                        _copying_entry("tiny-cache", tiny_llama_dir, []))
    path = pull_model("tiny-cache", tmp_path, progress=False)
    _truncate(path / "model.safetensors")
    with pytest.raises(ModelNotFoundError) as caught:
        load_model(str(path), "cpu", tmp_path, None)
    message = str(caught.value)
    assert message.startswith(f"cannot load model tiny-cache from its cache {path}: ")
    assert message.endswith(f"delete {path} or run `agentrt models pull --force tiny-cache`")


KILLED_PULL = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from agentrt.llm import models

    def convert(out, step):
        (out / "model.safetensors").write_bytes(b"x" * 1000)
        print(out, flush=True)
        time.sleep(600)

    models.EMBEDDED_MODELS["tiny-cache"] = models.EmbeddedModel("tiny-cache", "d", "s", convert)
    models.pull_model("tiny-cache", home=sys.argv[1], progress=False)
    """
)


def test_the_next_pull_removes_what_a_killed_conversion_left(tiny_llama_dir, tmp_path,
                                                            monkeypatch):
    script = tmp_path / "killed.py"
    script.write_text(KILLED_PULL)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE,
                            text=True)
    try:
        left = Path(proc.stdout.readline().strip())
    finally:
        proc.kill()
        proc.wait(timeout=60)
    root = tmp_path / "models"
    assert left.parent == root and left.name.startswith(".tiny-cache-") and left.is_dir()
    others = [root / ".tiny-cache-other-abcd1234", root / ".tiny-cache-ab", root / "keep"]
    for other in others:
        other.mkdir()
    calls: list = []
    monkeypatch.setitem(models.EMBEDDED_MODELS, "tiny-cache",
                        _copying_entry("tiny-cache", tiny_llama_dir, calls))
    pull_model("tiny-cache", tmp_path, progress=False)
    assert not left.exists() and all(o.is_dir() for o in others) and len(calls) == 1
    # one left while the model stays installed is removed by the next pull too
    (root / ".tiny-cache-zz99zz99").mkdir()
    pull_model("tiny-cache", tmp_path, progress=False)
    assert not (root / ".tiny-cache-zz99zz99").exists() and len(calls) == 1
