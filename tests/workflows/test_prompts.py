import pytest

from agentrt.core.errors import ConfigError
from agentrt.workflows.profiles import resolve_profile
from agentrt.workflows.prompts import render


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


def test_resolve_profile():
    assert resolve_profile("smollm2-135m") == "compact"
    assert resolve_profile("Qwen/Qwen2.5-72B-Instruct") == "full"
    assert resolve_profile("Qwen/Qwen2.5-72B-Instruct", "compact") == "compact"
    with pytest.raises(ConfigError):
        resolve_profile("x", "huge")
