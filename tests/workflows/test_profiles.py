"""Prompt profiles as data: the registry, the selection rule, and every template under each."""

import re
from importlib import resources

import pytest

from agentrt.core.errors import ConfigError
from agentrt.workflows.profiles import (
    DEFAULT_PROFILE,
    PROFILES,
    PromptProfile,
    get_profile,
    resolve_profile,
)
from agentrt.workflows.prompts import render, template_source

# One set of variables every template renders with (each uses a subset).
VARIABLES = dict(
    problem="What is 2+3?", context="", previous=[{"round": 1, "answer": "4", "reason": "off"}],
    reflection="Add the numbers.", answer="5", solution="2+3 = 5. Final answer: 5",
    node_id="step1", role="calculator", instruction="Add.", is_final=True, numbers="2, 3",
    inputs=[{"id": "step0", "role": "reader", "status": "ok", "text": "2 and 3"}],
    outputs=[{"id": "step1", "role": "calculator", "status": "ok", "text": "5"}],
    tool="python", tool_description="Runs Python.", call_format="Write {\"code\": \"...\"}.",
    tools=[{"name": "python", "description": "Runs Python."}], tool_names=["python"],
    max_nodes=4, max_fan_out=2, structured=True, design='{"nodes": []}', errors=["no nodes"],
    error="NameError",
    candidates=[{"n": 1, "answer": "5", "reason": "adds up", "verdict": "yes", "round": 1}],
    label="A1", team=[{"label": "A1", "role": "calculator"}, {"label": "A2", "role": "checker"}],
    private="You know that 2+3 is odd.", turn=2, rounds=3, notes="", independent=True,
    transcript=[{"label": "A2", "role": "checker", "turn": 1, "message": "I add them.",
                 "answer": "5", "agree": False}],
)


def _template_names() -> set[str]:
    root = resources.files("agentrt.workflows") / "prompts"
    return {p.name[: -len(".jinja")] for folder in root.iterdir() if folder.is_dir()
            for p in folder.iterdir() if p.name.endswith(".jinja")}


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("name", sorted(_template_names()))
def test_every_template_renders_under_every_profile(profile, name):
    prompt = render(name, profile, **VARIABLES)
    folder = prompt.template.split("/")[0]
    assert folder in (PROFILES[profile].templates, PROFILES[profile].fallback)
    assert prompt.messages[-1].role == "user" and all(m.content for m in prompt.messages)
    assert re.fullmatch(r"[0-9a-f]{12}", prompt.template_hash)
    assert template_source(name, PROFILES[profile]) == template_source(name, profile)


def test_profiles_are_frozen_data_read_by_attribute():
    compact, full = get_profile("compact"), get_profile("full")
    assert (compact.fixed_ids, compact.judge_verdict_first, compact.one_line_python) == \
        (True, True, True)
    assert not (full.fixed_ids or full.judge_verdict_first or full.one_line_python)
    assert compact.tokens("expert", 256) == 96 and full.tokens("expert", 256) == 256
    assert compact.tokens("design", 256) == 256  # no cap of its own
    assert compact.stop("expert") == ["\nExpert:", "\nProblem:"] and full.stop("expert") == []
    assert (compact.view_chars, full.view_chars) == (400, 2000)
    with pytest.raises(TypeError):
        compact.stage_tokens["expert"] = 1  # type: ignore[index]
    with pytest.raises(ValueError):
        PromptProfile(name="bad", templates="full", view_chars=0)
    assert get_profile(compact) is compact
    with pytest.raises(ConfigError, match="unknown prompt profile"):
        get_profile("huge")


def test_selection_setting_then_declaration_then_default():
    from agentrt.core.config import shipped_settings

    # The embedded model declares compact, under any reference; the shipped trained one the
    # profile its adapter was trained with (its settings name it).
    for model in ("smollm2-135m", "smollm2-135m@promoted",
                  "SmolLM2-135M", "/home/me/.agentrt/models/smollm2-135m",
                  "HuggingFaceTB/SmolLM2-360M-Instruct"):
        assert resolve_profile(model) == "compact", model
    shipped = shipped_settings("smollm2-135m-agentrt").get("prompt_profile", "compact")
    assert resolve_profile("smollm2-135m-agentrt") == shipped == "compact-numbers"
    assert resolve_profile("Qwen/Qwen2.5-72B-Instruct") == DEFAULT_PROFILE == "full"
    assert resolve_profile("smollm2-135m", "full") == "full"  # an explicit setting wins
    assert resolve_profile("Qwen/Qwen2.5-72B-Instruct", "compact") == "compact"
    with pytest.raises(ConfigError):
        resolve_profile("x", "huge")
