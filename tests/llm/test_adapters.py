"""LoRA adapters: export from a merged model, hash checks, shipped models, defaults, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agentrt.core.errors import ConfigError, InvalidInputError, ModelNotFoundError
from agentrt.llm import adapters, models
from agentrt.llm.adapters import (ADAPTER_MANIFEST, ADAPTER_WEIGHTS, BASE_MODEL, SHIPPED_ENV,
                                  SHIPPED_MODEL, check_settings, export_adapter, file_sha256,
                                  read_manifest, shipped_settings, verify_adapter)

PROMPT = "<|im_start|>user\nWhat is 17*23+5?<|im_end|>\n<|im_start|>assistant\n"


def _lora_round(model, seed: int, rank: int = 4):
    """One LoRA 'training' step: random adapters on the top layer, merged into the weights."""
    import torch
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "k_proj", "v_proj",
                        "o_proj", "gate_proj", "up_proj", "down_proj"], layers_to_transform=[1],
                        layers_pattern="layers", task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return peft_model.merge_and_unload()


def _trained(base: Path, out: Path, seeds=(1, 2)) -> Path:
    """A 'trained' model: two LoRA r 4 rounds (like SFT then a preference step), merged."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    for seed in seeds:
        model = _lora_round(model, seed)
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


def _logits(model_or_dir, tokenizer_dir: Path, text: str = PROMPT):
    """Logits of a prompt under a model (or a saved model directory)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = model_or_dir
    if isinstance(model_or_dir, (str, Path)):
        model = AutoModelForCausalLM.from_pretrained(model_or_dir, dtype=torch.float32)
    ids = AutoTokenizer.from_pretrained(tokenizer_dir)(text, return_tensors="pt")
    with torch.no_grad():
        return model(**ids).logits[0]


def _with_adapter(base: Path, adapter: Path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    return PeftModel.from_pretrained(model, str(adapter)).eval()


@pytest.fixture(scope="module")
def trained_dir(tiny_llama_dir, tmp_path_factory) -> Path:
    return _trained(tiny_llama_dir, tmp_path_factory.mktemp("trained"))


@pytest.fixture(scope="module")
def exported(trained_dir, tiny_llama_dir, tmp_path_factory) -> adapters.AdapterExport:
    out = tmp_path_factory.mktemp("exports") / "adapter-fp32"
    return export_adapter(trained_dir, tiny_llama_dir, out, base_model=str(tiny_llama_dir),
                          rank=8, dtype="fp32")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No AGENTRT_* variables, no ./agentrt.toml, and an empty shipped folder."""
    import os

    for key in [k for k in os.environ if k.startswith("AGENTRT_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "shipped"
    root.mkdir()
    monkeypatch.setenv(SHIPPED_ENV, str(root))
    return root


def test_fp32_adapter_reproduces_the_merged_model(exported, trained_dir, tiny_llama_dir):
    import torch

    m = exported.manifest
    assert (m.rank, m.dtype, m.layers, exported.unchanged_layers) == (8, "float32", 7, 7)
    assert m.max_relative_error < 1e-5 and m.ignored == {}
    config = json.loads((exported.path / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == config["lora_alpha"] == 8
    assert all(t.startswith("model.layers.1.") for t in config["target_modules"])
    assert m.adapter_sha256 == file_sha256(exported.path / ADAPTER_WEIGHTS)
    assert read_manifest(exported.path) == m
    want, base = _logits(trained_dir, tiny_llama_dir), _logits(tiny_llama_dir, tiny_llama_dir)
    got = _logits(_with_adapter(tiny_llama_dir, exported.path), tiny_llama_dir)
    assert (want - base).abs().max() > 0.1  # the fine-tune changed the output
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_bf16_adapter_is_close_and_smaller(trained_dir, tiny_llama_dir, tmp_path, exported):
    done = export_adapter(trained_dir, tiny_llama_dir, tmp_path / "bf16",
                          base_model=str(tiny_llama_dir), rank=8)
    assert done.manifest.dtype == "bfloat16" and 0 < done.manifest.max_relative_error < 0.02
    assert done.size_bytes < 0.6 * exported.size_bytes
    want, base = _logits(trained_dir, tiny_llama_dir), _logits(tiny_llama_dir, tiny_llama_dir)
    got = _logits(_with_adapter(tiny_llama_dir, done.path), tiny_llama_dir)
    assert float((got - want).abs().max()) < 0.05 * float((want - base).abs().max())
    card = (done.path / "MODEL_CARD.md").read_text()
    assert done.manifest.adapter_sha256 in card and "TO FILL IN" in card


def test_sharded_weights_give_the_same_adapter(trained_dir, tiny_llama_dir, tmp_path, exported):
    import torch
    from transformers import AutoModelForCausalLM

    sharded = tmp_path / "sharded"
    model = AutoModelForCausalLM.from_pretrained(trained_dir, dtype=torch.float32)
    model.save_pretrained(sharded, safe_serialization=True, max_shard_size="1MB")
    assert (sharded / "model.safetensors.index.json").is_file()
    done = export_adapter(sharded, tiny_llama_dir, tmp_path / "a", base_model=str(tiny_llama_dir),
                          rank=8, dtype="fp32")
    assert done.manifest.adapter_sha256 == exported.manifest.adapter_sha256


def test_a_rank_too_small_is_refused_or_measured(trained_dir, tiny_llama_dir, tmp_path):
    with pytest.raises(InvalidInputError, match="raise the rank"):
        export_adapter(trained_dir, tiny_llama_dir, tmp_path / "r2", rank=2)
    assert not (tmp_path / "r2").exists()
    done = export_adapter(trained_dir, tiny_llama_dir, tmp_path / "r2", rank=2, max_error=1.0)
    assert 0.05 < done.manifest.max_relative_error < 1.0


def test_changed_non_linear_weights_are_refused_or_recorded(trained_dir, tiny_llama_dir,
                                                            tmp_path):
    from safetensors.torch import load_file, save_file

    changed = tmp_path / "changed"
    shutil.copytree(trained_dir, changed)
    weights = load_file(changed / "model.safetensors")
    weights["model.norm.weight"] = weights["model.norm.weight"] + 0.5
    save_file(weights, changed / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(InvalidInputError, match="model.norm.weight"):
        export_adapter(changed, tiny_llama_dir, tmp_path / "a", rank=8)
    done = export_adapter(changed, tiny_llama_dir, tmp_path / "a", rank=8, strict=False)
    assert list(done.manifest.ignored) == ["model.norm.weight"]
    assert "model.norm.weight" in (done.path / "MODEL_CARD.md").read_text()
    with pytest.raises(InvalidInputError, match="no linear layer"):
        export_adapter(tiny_llama_dir, tiny_llama_dir, tmp_path / "b")
    with pytest.raises(InvalidInputError, match="exists"):
        export_adapter(trained_dir, tiny_llama_dir, tmp_path / "a", rank=8)


def test_a_tampered_adapter_is_refused(exported, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(exported.path, copy)
    assert verify_adapter(copy).adapter_sha256 == exported.manifest.adapter_sha256
    data = bytearray((copy / ADAPTER_WEIGHTS).read_bytes())
    data[-1] ^= 0xFF
    (copy / ADAPTER_WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(ModelNotFoundError) as info:
        verify_adapter(copy)
    assert exported.manifest.adapter_sha256 in str(info.value)
    assert file_sha256(copy / ADAPTER_WEIGHTS) in str(info.value)


def _tiny_registry(monkeypatch, tiny_llama_dir) -> None:
    """A 'tiny-base' model copied from the tiny Llama and a 'tiny-agentrt' shipped over it."""

    def copy(out: Path, step) -> None:
        for p in Path(tiny_llama_dir).iterdir():
            shutil.copy(p, out / p.name)

    monkeypatch.setitem(models.EMBEDDED_MODELS, "tiny-base",
                        models.EmbeddedModel("tiny-base", "d", "s", copy))
    monkeypatch.setitem(models.EMBEDDED_MODELS, "tiny-agentrt",
                        models.shipped_model("tiny-agentrt", "tiny-base", "trained tiny"))


def test_pull_merges_the_shipped_adapter_once_and_again_when_it_changes(
        clean_env, monkeypatch, trained_dir, tiny_llama_dir, tmp_path):
    import torch

    _tiny_registry(monkeypatch, tiny_llama_dir)
    home = tmp_path / "home"
    with pytest.raises(ModelNotFoundError, match="not shipped"):
        models.pull_model("tiny-agentrt", home, progress=False)
    [info] = [i for i in models.list_models(home) if i.name == "tiny-agentrt"]
    assert not info.available and not info.installed
    first = export_adapter(trained_dir, tiny_llama_dir, clean_env / "tiny-agentrt",
                           name="tiny-agentrt", base_model="tiny-base", rank=8, dtype="fp32")
    path = models.pull_model("tiny-agentrt", home, progress=False)
    assert path == home / "models" / "tiny-agentrt"
    manifest = json.loads((path / models.MANIFEST).read_text())
    assert manifest["revision"] == manifest["adapter_sha256"] == first.manifest.adapter_sha256
    assert (path / ADAPTER_MANIFEST).is_file() and not (path / "adapter_config.json").exists()
    torch.testing.assert_close(_logits(path, tiny_llama_dir), _logits(trained_dir, tiny_llama_dir),
                               atol=1e-4, rtol=1e-4)
    [info] = [i for i in models.list_models(home) if i.name == "tiny-agentrt"]
    assert info.available and info.installed

    def refuse(*args, **kwargs):
        raise AssertionError("merged again")

    with monkeypatch.context() as m:
        m.setattr(models, "merge_adapter", refuse)
        assert models.resolve_model("tiny-agentrt", home, progress=False) == str(path)

    other = _trained(tiny_llama_dir, tmp_path / "other", seeds=(3, 4))
    second = export_adapter(other, tiny_llama_dir, clean_env / "tiny-agentrt", name="tiny-agentrt",
                            base_model="tiny-base", rank=8, dtype="fp32", overwrite=True)
    assert second.manifest.adapter_sha256 != first.manifest.adapter_sha256
    assert not [i for i in models.list_models(home) if i.name == "tiny-agentrt"][0].installed
    models.pull_model("tiny-agentrt", home, progress=False)
    assert json.loads((path / models.MANIFEST).read_text())["revision"] == \
        second.manifest.adapter_sha256
    torch.testing.assert_close(_logits(path, tiny_llama_dir), _logits(other, tiny_llama_dir),
                               atol=1e-4, rtol=1e-4)
    left = sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(".lock"))
    assert left == ["tiny-agentrt", "tiny-base"]


def test_a_tampered_shipped_adapter_is_not_merged(clean_env, monkeypatch, exported,
                                                  tiny_llama_dir, tmp_path):
    _tiny_registry(monkeypatch, tiny_llama_dir)
    folder = clean_env / "tiny-agentrt"
    shutil.copytree(exported.path, folder)
    (folder / ADAPTER_WEIGHTS).write_bytes((folder / ADAPTER_WEIGHTS).read_bytes()[:-1] + b" ")
    with pytest.raises(ModelNotFoundError, match="sha256"):
        models.pull_model("tiny-agentrt", tmp_path / "home", progress=False)
    left = [p.name for p in (tmp_path / "home" / "models").iterdir()
            if not p.name.endswith(".lock")]
    assert left == ["tiny-base"]


def test_default_model_and_shipped_settings(clean_env, monkeypatch, exported):
    from agentrt.core.config import default_model, load_settings
    from agentrt.workflows.profiles import resolve_profile

    assert default_model() == "smollm2-135m" and load_settings().model == "smollm2-135m"
    assert shipped_settings(SHIPPED_MODEL) == {}
    folder = clean_env / SHIPPED_MODEL
    shutil.copytree(exported.path, folder)
    manifest = json.loads((folder / ADAPTER_MANIFEST).read_text())
    manifest["settings"] = {"router": "fast", "limits": {"max_tokens_per_call": 256,
                                                         "max_rounds": 1}}
    (folder / ADAPTER_MANIFEST).write_text(json.dumps(manifest))
    assert default_model() == SHIPPED_MODEL
    s = load_settings()
    assert (s.model, s.router, s.limits.max_tokens_per_call, s.limits.max_rounds) == \
        (SHIPPED_MODEL, "fast", 256, 1)
    assert s.limits.max_llm_calls == 40  # untouched limits keep their defaults
    assert resolve_profile(s.model, s.prompt_profile) == "compact"
    monkeypatch.setenv("AGENTRT_LIMIT_MAX_ROUNDS", "3")
    (clean_env.parent / "agentrt.toml").write_text('router = "slow"\n')
    s = load_settings()
    assert (s.router, s.limits.max_rounds, s.limits.max_tokens_per_call) == ("slow", 3, 256)
    s = load_settings(router="escalate", limits={"max_tokens_per_call": 100, "max_rounds": 2})
    assert (s.router, s.limits.max_tokens_per_call, s.limits.max_rounds) == ("escalate", 100, 2)
    base = load_settings(model="smollm2-135m")
    assert (base.router, base.limits.max_tokens_per_call) == ("slow", 512)


def test_a_shipped_model_declares_the_profile_its_adapter_was_trained_with(clean_env, exported):
    from agentrt.core.config import load_settings
    from agentrt.workflows.profiles import resolve_profile

    folder = clean_env / SHIPPED_MODEL
    shutil.copytree(exported.path, folder)
    assert resolve_profile(SHIPPED_MODEL) == "compact"  # the catalog's, when none is named
    manifest = json.loads((folder / ADAPTER_MANIFEST).read_text())
    manifest["settings"] = {"prompt_profile": "compact-numbers"}
    (folder / ADAPTER_MANIFEST).write_text(json.dumps(manifest))
    # Under `auto`, by name or version reference, as well as through the settings layer.
    assert resolve_profile(SHIPPED_MODEL) == "compact-numbers"
    assert resolve_profile(f"{SHIPPED_MODEL}@promoted", "auto") == "compact-numbers"
    assert load_settings().prompt_profile == "compact-numbers"
    assert resolve_profile(SHIPPED_MODEL, "full") == "full"  # an explicit choice still wins


def test_settings_an_adapter_cannot_carry(exported, clean_env):
    assert check_settings({"limits": {"max_rounds": 1}}) == {"limits": {"max_rounds": 1}}
    with pytest.raises(ConfigError, match="backend"):
        check_settings({"backend": "openai"})
    with pytest.raises(ConfigError, match="learned"):
        check_settings({"router": "learned"})
    with pytest.raises(ConfigError, match="max_rounds"):
        check_settings({"limits": {"max_rounds": 0}})
    folder = clean_env / SHIPPED_MODEL
    shutil.copytree(exported.path, folder)
    manifest = json.loads((folder / ADAPTER_MANIFEST).read_text())
    (folder / ADAPTER_MANIFEST).write_text(json.dumps({**manifest, "settings": {"home": "/x"}}))
    with pytest.raises(ConfigError, match="home"):
        shipped_settings(SHIPPED_MODEL)


def test_cli_exports_a_registered_version_with_its_card(clean_env, monkeypatch, trained_dir,
                                                         tiny_llama_dir, tmp_path, capsys):
    from agentrt.cli import main
    from agentrt.store import TraceStore
    from agentrt.training.registry import ModelRegistry

    db = f"sqlite:///{tmp_path / 'reg.db'}"
    monkeypatch.setenv("AGENTRT_HOME", str(tmp_path / "home"))
    store = TraceStore(db)
    try:
        reg = ModelRegistry(store)
        v = reg.register(trained_dir, base_model=str(tiny_llama_dir),
                         datasets=[{"name": "sft-1", "kind": "sft", "rows": 536,
                                    "content_hash": "ab12" * 16}],
                         training={"config": {"preset": "cpu", "prompt_profile": "compact",
                                              "limits": {"max_tokens_per_call": 256}}},
                         metrics={"k1": {"heldout": {"auto": {"accuracy": 0.6, "correct": 12,
                                                               "n": 20}}}})
    finally:
        store.close()
    (tmp_path / "s.toml").write_text('router = "fast"\n[limits]\nmax_rounds = 1\n')
    (tmp_path / "router.json").write_text('{"policy": "escalate", "threshold": 0.5}')
    out = clean_env / SHIPPED_MODEL
    main(["models", "export-adapter", f"v{v.number}", "--out", str(out), "--rank", "8",
          "--settings", str(tmp_path / "s.toml"), "--database-url", db,
          "--router", str(tmp_path / "router.json"),
          "--known-failure", "fast mode multiplies badly"])
    assert "7 layers" in capsys.readouterr().out
    manifest = read_manifest(out)
    assert manifest.source == {"version": f"v{v.number}", "id": v.id}
    assert manifest.router == {"policy": "escalate", "threshold": 0.5}
    assert manifest.settings == {"prompt_profile": "compact", "router": "fast",
                                 "limits": {"max_tokens_per_call": 256, "max_rounds": 1}}
    card = (out / "MODEL_CARD.md").read_text()
    for text in ("ab12" * 16, "60.0% (12/20)", "`cpu`", "fast mode multiplies badly",
                 f"export-adapter v{v.number}", "TO FILL IN: the exact training command"):
        assert text in card, text
    main(["models", "list", "--json"])
    [info] = [i for i in json.loads(capsys.readouterr().out) if i["name"] == SHIPPED_MODEL]
    assert info["available"] and not info["installed"]
    with pytest.raises(SystemExit):
        main(["models", "export-adapter", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")])
    assert "neither a model directory" in capsys.readouterr().err


def test_an_adapter_ships_over_the_base_a_trained_default_was_built_on():
    """A run that starts from the shipped default records it as its base model; its export
    still goes over the embedded base, never over another adapter."""
    from agentrt.llm.adapter_source import root_base

    assert root_base(SHIPPED_MODEL) == BASE_MODEL == root_base(BASE_MODEL)
    assert root_base("/some/model/dir") == "/some/model/dir"


def test_per_layer_ranks_make_a_smaller_adapter_that_reproduces_the_model(tiny_llama_dir,
                                                                          tmp_path):
    """A fine-tune whose updates have rank 2 in one layer and rank 8 (two rounds of 4) in the
    other: with `rank_error` each layer gets the least rank that reproduces it, and peft loads
    the layers at their own ranks."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    for seed in (3, 4):
        model = _lora_round(model, seed)  # rank 4 each, layer 1
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"],
                                                  layers_to_transform=[0], layers_pattern="layers",
                                                  task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(5)) * 0.05)
    trained = tmp_path / "trained"
    peft_model.merge_and_unload().save_pretrained(trained, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(trained)

    uniform = export_adapter(trained, tiny_llama_dir, tmp_path / "uniform",
                             base_model=str(tiny_llama_dir), rank=16, dtype="fp32")
    fitted = export_adapter(trained, tiny_llama_dir, tmp_path / "fitted",
                            base_model=str(tiny_llama_dir), rank=16, dtype="fp32",
                            rank_error=1e-5)
    config = json.loads((fitted.path / "adapter_config.json").read_text())
    ranks = {m: config["rank_pattern"].get(m.replace(".", "\\."), config["r"])
             for m in config["target_modules"]}
    assert ranks["model.layers.0.self_attn.q_proj"] == 2
    assert {r for m, r in ranks.items() if m.startswith("model.layers.1.")} <= {8}
    assert config["alpha_pattern"] == config["rank_pattern"]  # scale 1 in every layer
    m = fitted.manifest
    assert m.rank == 8 and m.mean_rank < 8 and m.max_relative_error <= 1e-5
    assert fitted.size_bytes < 0.6 * uniform.size_bytes
    want = _logits(trained, tiny_llama_dir)
    got = _logits(_with_adapter(tiny_llama_dir, fitted.path), tiny_llama_dir)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    with pytest.raises(InvalidInputError, match="rank_error"):
        export_adapter(trained, tiny_llama_dir, tmp_path / "bad", base_model=str(tiny_llama_dir),
                       rank=16, rank_error=0.5)
