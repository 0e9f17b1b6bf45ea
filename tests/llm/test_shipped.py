"""The trained model shipped in the package: its adapter matches its recorded hash, it is the
default, and it answers the README's example right (greedy, deterministic)."""

from __future__ import annotations

import hashlib
import json

import pytest

from agentrt.core.config import default_model, load_settings
from agentrt.llm.adapters import SHIPPED_MODEL, shipped_adapter, shipped_settings

pytestmark = pytest.mark.skipif(shipped_adapter(SHIPPED_MODEL) is None,
                                reason="no trained adapter is shipped in this checkout")


def test_the_shipped_adapter_matches_its_recorded_hash_and_card():
    folder = shipped_adapter(SHIPPED_MODEL)
    manifest = json.loads((folder / "agentrt-adapter.json").read_text())
    weights = (folder / "adapter_model.safetensors").read_bytes()
    assert hashlib.sha256(weights).hexdigest() == manifest["adapter_sha256"]
    assert len(weights) < 24 * 2**20  # a small adapter (the bf16 model is 270 MB)
    assert manifest["base_model"] == "smollm2-135m"
    card = (folder / "MODEL_CARD.md").read_text()
    assert "TO FILL IN" not in card and "iterate.py" in card


def test_the_shipped_model_is_the_default_with_its_settings(tmp_path):
    assert default_model() == SHIPPED_MODEL
    settings = load_settings(home=tmp_path)
    assert settings.model == SHIPPED_MODEL
    shipped = shipped_settings(SHIPPED_MODEL)
    for key, value in shipped.get("limits", {}).items():
        assert getattr(settings.limits, key) == value
    # The untrained base stays selectable, without the shipped settings.
    assert load_settings(home=tmp_path, model="smollm2-135m").model == "smollm2-135m"


@pytest.mark.slow
def test_the_default_model_answers_the_readme_example(embedded_home, tmp_path):
    from agentrt.llm.models import pull_model
    from agentrt.runtime import Runtime

    pull_model(SHIPPED_MODEL, home=embedded_home, progress=False)
    settings = load_settings(home=embedded_home, backend="hf",
                             database_url=f"sqlite:///{tmp_path / 'traces.db'}")
    rt = Runtime(settings)
    try:
        first = rt.solve("What is 17*23+5?")
        again = rt.solve("What is 17*23+5?")
    finally:
        rt.close()
    assert float(first.answer) == 396
    assert (again.answer, again.mode) == (first.answer, first.mode)


def test_int4_keeps_the_shipped_adapter_beside_the_4bit_base(embedded_home):
    from agentrt.llm.hf import HFBackend
    from agentrt.llm.models import pull_model

    pull_model(SHIPPED_MODEL, home=embedded_home, progress=False)
    backend = HFBackend(SHIPPED_MODEL, device="cpu", dtype="int4", home=embedded_home)
    try:
        layers = backend.model.model.layers
        adapted, plain = layers[20].self_attn.q_proj, layers[2].self_attn.q_proj
        rank = json.loads((shipped_adapter(SHIPPED_MODEL) / "agentrt-adapter.json")
                          .read_text())["rank"]
        assert adapted.weight_int4 is not None and tuple(adapted.lora_a.shape) == (rank, 576)
        assert plain.weight_int4 is not None and plain.lora_a is None  # no adapter down there
    finally:
        backend.close()


def test_a_merged_directory_loads_its_adapter_only_with_the_same_hash(tmp_path):
    from agentrt.llm.hf_load import _adapter_behind

    folder = shipped_adapter(SHIPPED_MODEL)
    manifest = json.loads((folder / "agentrt-adapter.json").read_text())
    (tmp_path / "agentrt-adapter.json").write_text(json.dumps(manifest))
    assert _adapter_behind(str(tmp_path)) == str(folder)
    manifest["adapter_sha256"] = "0" * 64  # merged from another adapter: keep the merged weights
    (tmp_path / "agentrt-adapter.json").write_text(json.dumps(manifest))
    assert _adapter_behind(str(tmp_path)) == str(tmp_path)
    (tmp_path / "agentrt-adapter.json").write_text("{not json")
    assert _adapter_behind(str(tmp_path)) == str(tmp_path)
