import pytest

from agentrt.core.errors import ConfigError
from agentrt.workflows.prompts import profile_for_model, render


def test_render_splits_roles_and_hashes():
    p = render("fast_answer", "full", problem="What is 2+2?")
    assert [m.role for m in p.messages] == ["system", "user"]
    assert "What is 2+2?" in p.messages[-1].content
    assert p.template == "full/fast_answer"
    assert len(p.template_hash) == 12
    again = render("fast_answer", "full", problem="other")
    assert again.template_hash == p.template_hash  # hash of the template, not the rendering


def test_profiles_differ_and_missing_variable_is_an_error():
    assert render("fast_answer", "compact", problem="x").template_hash != render(
        "fast_answer", "full", problem="x").template_hash
    with pytest.raises(ConfigError, match="undefined"):
        render("fast_check", "full", problem="x")
    with pytest.raises(ConfigError, match="no prompt template"):
        render("nope", "full")


def test_profile_for_model():
    assert profile_for_model("smollm2-135m") == "compact"
    assert profile_for_model("Qwen/Qwen2.5-72B-Instruct") == "full"
    assert profile_for_model("Qwen/Qwen2.5-72B-Instruct", "compact") == "compact"
    with pytest.raises(ConfigError):
        profile_for_model("x", "huge")
