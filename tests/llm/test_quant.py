"""4-bit weights (`agentrt.llm.quant.quantize_int4`): sixteen levels per group, one set of numbers
for prefills and decode steps, a LoRA adapter kept beside the 4-bit base instead of rounded
away (the lean step over them: tests/llm/test_lean.py)."""

from __future__ import annotations

import copy

import pytest
import torch

from agentrt.core.errors import ConfigError
from agentrt.llm.quant import INT4_GROUP, quantize_int4

class Proj(torch.nn.Module):
    def __init__(self, cols: int = 64, rows: int = 48) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(cols, rows, bias=False)

    def forward(self, x):
        return self.proj(x)


def on_grid(model):
    """`model` with its linear weights moved onto the 4-bit grid (in place)."""
    rounded = copy.deepcopy(model).to(torch.bfloat16)
    quantize_int4(rounded, only_on_grid=False)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.copy_(rounded.get_submodule(name).weight.float())
    return model


def test_weights_lie_on_sixteen_levels_per_group_and_both_copies_agree():
    torch.manual_seed(0)
    model = Proj().to(torch.bfloat16)
    original = model.proj.weight.detach().float().clone()
    assert quantize_int4(model, only_on_grid=False) == 1
    groups = model.proj.weight.float().reshape(48, -1, INT4_GROUP)
    assert max(len(g.unique()) for g in groups.reshape(-1, INT4_GROUP)) <= 16
    spread = original.reshape(groups.shape)
    step = (spread.amax(-1) - spread.amin(-1)) / 15
    assert ((groups - spread).abs() <= step[..., None] * 0.51 + 1e-2).all()  # nearest level
    x = torch.randn(1, 5, 64).to(torch.bfloat16)
    prefill = model(x)  # five positions: the bf16 copy
    steps = torch.cat([model(x[:, i:i + 1]) for i in range(5)], 1)  # one each: the 4-bit kernel
    torch.testing.assert_close(steps.float(), prefill.float(), rtol=2e-2, atol=2e-2)


def test_only_layers_already_on_a_grid_are_rounded_and_an_adapter_over_the_rest_is_merged():
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(64, 48, bias=False),
                                torch.nn.Linear(64, 64, bias=False))
    on_grid(model[:1])  # the first lies on a grid, the second (random) does not
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=["1"], init_lora_weights=False))
    x = torch.randn(3, 64)
    with torch.no_grad():
        expected = peft.base_model.model[1](x)
    inner = peft.base_model.model.to(torch.bfloat16)
    assert quantize_int4(inner) == 2
    assert hasattr(inner[0], "weight_int4")  # rounded: nothing lost
    assert isinstance(inner[1], torch.nn.Linear)  # kept bf16, the adapter merged into it
    torch.testing.assert_close(inner[1](x.to(torch.bfloat16)).float(), expected,
                               rtol=0.03, atol=0.03)


def test_layers_the_kernel_cannot_tile_stay_as_they_are():
    model = torch.nn.Sequential(torch.nn.Linear(40, 8), torch.nn.Linear(8, 4)).to(torch.bfloat16)
    assert quantize_int4(model) == 0
    assert all(isinstance(m, torch.nn.Linear) for m in model)


def test_a_lora_adapter_stays_beside_the_4bit_base_instead_of_being_rounded_away():
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    base = on_grid(Proj())  # as the embedded base's weights are (it came from a Q4_1 file)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["proj"],
                                            init_lora_weights=False))
    lora = model.base_model.model.proj
    with torch.no_grad():  # a small change, as training leaves it: well below one 4-bit step
        lora.lora_B["default"].weight.mul_(0.05)
        change = lora.scaling["default"] * lora.lora_B["default"].weight \
            @ lora.lora_A["default"].weight
        merged = Proj()  # the other way: merge, then round
        merged.proj.weight.copy_(lora.base_layer.weight + change)
    x = torch.randn(2, 1, 64)
    with torch.no_grad():
        exact = merged(x)
        added = torch.nn.functional.linear(x, change)
    assert quantize_int4(merged.to(torch.bfloat16), only_on_grid=False) == 1
    inner = model.base_model.model.to(torch.bfloat16)
    assert quantize_int4(inner) == 1
    assert inner.proj.lora_a is not None
    with torch.no_grad():
        ours = inner(x.to(torch.bfloat16)).float()
        rounded = merged(x.to(torch.bfloat16)).float()
    # what the adapter adds survives: ours misses the exact output by far less than
    # merge-then-round does, and by far less than the adapter's own contribution
    assert (ours - exact).abs().mean() < 0.5 * (rounded - exact).abs().mean()
    assert (ours - exact).abs().mean() < 0.5 * added.abs().mean()


def test_dora_adapters_are_refused():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(Proj(), LoraConfig(r=4, target_modules=["proj"], use_dora=True))
    with pytest.raises(ConfigError, match="DoRA"):
        quantize_int4(model.base_model.model.to(torch.bfloat16))
