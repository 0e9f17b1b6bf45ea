"""Settings loading: precedence of overrides, environment, config file and a shipped model's
settings (nested limits included), `~` in home, the two forms of the config file, malformed
values as one ConfigError, and warnings for misspelled `AGENTRT_*` variables."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from agentrt.core import config
from agentrt.core.config import default_model, load_settings
from agentrt.core.errors import ConfigError
from agentrt.core.shipped import SHIPPED_ENV, SHIPPED_MODEL, shipped_root

REAL_SHIPPED = shipped_root() / SHIPPED_MODEL


@pytest.fixture
def clean(monkeypatch, tmp_path) -> Path:
    """No AGENTRT_* variables, the working directory an empty folder (no ./agentrt.toml), and
    no shipped model: settings come from defaults, the file and what a test sets."""
    for key in [k for k in os.environ if k.upper().startswith("AGENTRT_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shipped").mkdir()
    monkeypatch.setenv(SHIPPED_ENV, str(tmp_path / "shipped"))
    return tmp_path


@pytest.fixture
def shipped(clean) -> Path:
    """The real shipped model folder, copied to where `AGENTRT_SHIPPED_DIR` points."""
    if not REAL_SHIPPED.is_dir():
        pytest.skip("no trained adapter is shipped in this checkout")
    return Path(shutil.copytree(REAL_SHIPPED, clean / "shipped" / SHIPPED_MODEL))


def toml(folder: Path, text: str) -> Path:
    path = folder / "settings.toml"
    path.write_text(text)
    return path


def test_tilde_in_home_expands_from_the_file_and_the_environment(clean, monkeypatch):
    monkeypatch.setenv("HOME", str(clean / "user"))
    settings = load_settings(toml(clean, 'home = "~/from-file"\n'))
    assert settings.home == clean / "user" / "from-file"
    assert settings.db_url == f"sqlite:///{clean / 'user' / 'from-file' / 'agentrt.db'}"
    monkeypatch.setenv("AGENTRT_HOME", "~/from-env")
    assert load_settings().home == clean / "user" / "from-env"
    assert load_settings(home="~/given").home == clean / "user" / "given"
    assert not (clean / "~").exists()


def test_an_agentrt_table_alone_is_read_and_mixing_it_with_top_level_keys_is_refused(clean):
    path = toml(clean, '[agentrt]\nbackend = "fake"\n[agentrt.limits]\nmax_rounds = 7\n')
    settings = load_settings(path)
    assert (settings.backend, settings.limits.max_rounds) == ("fake", 7)
    path = toml(clean, 'backend = "fake"\ndatabase_url = "sqlite:///x.db"\n'
                       '[agentrt]\nmodel = "m"\n')
    with pytest.raises(ConfigError, match=r"outside it \(backend, database_url\)"):
        load_settings(path)
    with pytest.raises(ConfigError, match=r"outside it \(limits\)"):
        load_settings(toml(clean, '[agentrt]\nmodel = "m"\n[limits]\nmax_rounds = 2\n'))


def test_nested_and_flat_limit_variables_beat_the_file_one_limit_at_a_time(clean, monkeypatch):
    path = toml(clean, '[limits]\nmax_llm_calls = 40\nmax_rounds = 4\n')
    monkeypatch.setenv("AGENTRT_LIMITS__MAX_LLM_CALLS", "3")
    settings = load_settings(path)
    assert (settings.limits.max_llm_calls, settings.limits.max_rounds) == (3, 4)
    monkeypatch.setenv("AGENTRT_LIMIT_MAX_ROUNDS", "5")  # the flat form, beside the nested one
    settings = load_settings(path)
    assert (settings.limits.max_llm_calls, settings.limits.max_rounds) == (3, 5)
    monkeypatch.setenv("AGENTRT_LIMITS", '{"max_tool_runs": 2}')
    settings = load_settings(path, limits={"max_rounds": 6})  # an override beats them all
    assert (settings.limits.max_llm_calls, settings.limits.max_rounds,
            settings.limits.max_tool_runs) == (3, 6, 2)


def test_lower_case_variables_beat_the_file_as_upper_case_ones_do(clean, monkeypatch):
    path = toml(clean, 'backend = "fake"\nrouter = "slow"\n')
    monkeypatch.setenv("agentrt_backend", "openai")
    monkeypatch.setenv("AGENTRT_ROUTER", "fast")
    settings = load_settings(path)
    assert (settings.backend, settings.router) == ("openai", "fast")
    assert load_settings(path, backend="hf").backend == "hf"


def test_variables_beat_the_shipped_models_settings_and_limits_merge(shipped, monkeypatch):
    from agentrt.core.config import shipped_settings

    carried = shipped_settings(SHIPPED_MODEL)["limits"]
    assert carried["max_rounds"] != 3 and carried["max_llm_calls"] != 40
    monkeypatch.setenv("AGENTRT_LIMITS__MAX_ROUNDS", "3")
    settings = load_settings()
    assert settings.model == SHIPPED_MODEL
    assert settings.limits.max_rounds == 3
    assert settings.limits.max_llm_calls == carried["max_llm_calls"]  # the rest stays shipped
    settings = load_settings(toml(shipped.parent.parent, "[limits]\nmax_llm_calls = 40\n"))
    assert (settings.limits.max_rounds, settings.limits.max_llm_calls) == (3, 40)


@pytest.mark.parametrize("text, message", [
    ("limits = 5\n", "invalid setting limits"),
    ("agentrt = 5\n", "`agentrt` must be a table"),
    ('[agentrt]\nlimits = "x"\n', "invalid setting limits"),
    ("backend = [1, 2]\n", "invalid setting backend"),
])
def test_malformed_files_are_config_errors(shipped, text, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(toml(shipped.parent.parent, text))


def test_a_file_that_is_not_utf8_is_a_config_error(clean):
    path = clean / "latin1.toml"
    path.write_bytes('router = "caf\u00e9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings(path)


@pytest.mark.parametrize("name, value, message", [
    ("AGENTRT_LIMITS", "notjson", "AGENTRT_LIMITS take a JSON object"),
    ("AGENTRT_LIMITS", "5", "AGENTRT_LIMITS must be a JSON object"),
    ("AGENTRT_LIMIT_VOTE_WEIGHTS", "{not json", "limits.vote_weights"),
    ("AGENTRT_LIMITS__MAX_LLM_CALLS", "many", "limits.max_llm_calls"),
    ("AGENTRT_LIMIT_MAX_ROUNDS", "0", "limits.max_rounds"),
])
def test_malformed_variables_are_config_errors(clean, monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_a_misspelled_variable_is_named_with_the_closest_known_one(clean, monkeypatch, caplog):
    monkeypatch.setattr(config, "_warned", set())
    monkeypatch.setenv("AGENTRT_BAKEND", "fake")
    monkeypatch.setenv("AGENTRT_LIMIT_MAX_LLM_CALL", "3")
    monkeypatch.setenv("AGENTRT_SERVER_MAX_CONCURRENCY", "4")  # the server's own settings
    monkeypatch.setenv("AGENTRT_CONFIG", str(toml(clean, 'backend = "fake"\n')))
    with caplog.at_level(logging.WARNING, logger="agentrt.core.config"):
        settings = load_settings()
        load_settings()  # once per name
    assert settings.backend == "fake" and settings.limits.max_llm_calls == 40
    warnings = sorted(r.getMessage() for r in caplog.records)
    assert warnings == [
        "environment variable AGENTRT_BAKEND is not an agentrt setting and is ignored; "
        "did you mean AGENTRT_BACKEND?",
        "environment variable AGENTRT_LIMIT_MAX_LLM_CALL is not an agentrt setting and is "
        "ignored; did you mean AGENTRT_LIMIT_MAX_LLM_CALLS?",
    ]


def test_a_damaged_shipped_folder_stays_the_default_without_its_settings(shipped):
    (shipped / "adapter_model.safetensors").unlink()
    assert default_model() == SHIPPED_MODEL  # not the untrained base in its place
    settings = load_settings()  # commands that need no model still load their settings
    assert settings.model == SHIPPED_MODEL and settings.limits.max_llm_calls == 40
    shutil.rmtree(shipped)
    assert default_model() == "smollm2-135m"  # nothing shipped at all: the base
