"""The model registry: versions, the gate, the atomic promoted pointer, rollback, references."""

from __future__ import annotations

import json
import shutil
import threading

import pytest

from agentrt.core.errors import InvalidInputError, ModelNotFoundError, NotFoundError
from agentrt.llm.versions import is_version_ref, resolve_version
from agentrt.training.registry import gate, is_complete


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_register_numbers_versions_and_records_lineage(registry, tiny_llama_dir, tmp_path):
    a = registry.register(tiny_llama_dir, base_model="tiny", note="base")
    b = registry.register(_copy(tiny_llama_dir, tmp_path / "b"), base_model="tiny",
                          parent_id=a.id, datasets=[{"name": "sft-1", "content_hash": "ab" * 32}],
                          training={"sft": {"steps": 2}}, metrics={"x": 1})
    assert (a.number, b.number) == (1, 2) and b.label == "v2"
    assert b.parent_id == a.id and b.datasets[0]["name"] == "sft-1"
    assert [v.label for v in registry.list()] == ["v2", "v1"]
    assert registry.get("v1").id == a.id and registry.get(b.id[:8]).id == b.id
    updated = registry.update(b.id, metrics={"y": 2})
    assert updated.metrics == {"x": 1, "y": 2}


def test_register_refuses_a_partial_model(registry, tiny_llama_dir, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(tiny_llama_dir / "config.json", partial / "config.json")  # no weights
    assert not is_complete(partial)
    with pytest.raises(InvalidInputError, match="not a complete model"):
        registry.register(partial, base_model="tiny")
    with pytest.raises(InvalidInputError, match="unknown parent"):
        registry.register(tiny_llama_dir, base_model="tiny", parent_id="mv-nope")
    assert registry.list() == []


def test_promote_moves_the_pointer_and_rollback_goes_back(registry, tiny_llama_dir, tmp_path):
    v1 = registry.register(tiny_llama_dir, base_model="tiny")
    v2 = registry.register(_copy(tiny_llama_dir, tmp_path / "v2"), base_model="tiny")
    v3 = registry.register(_copy(tiny_llama_dir, tmp_path / "v3"), base_model="tiny")
    assert registry.promoted() is None
    for v in (v1, v2, v3):
        registry.promote(v.id, reason=f"promote {v.label}")
    assert registry.promoted().id == v3.id
    assert registry.rollback().id == v2.id
    assert registry.rollback().id == v1.id  # each rollback goes one promotion further back
    with pytest.raises(NotFoundError):
        registry.rollback()
    assert registry.rollback(v3.label).id == v3.id  # or to any version at all
    history = registry.history()
    assert [h.action for h in history][:3] == ["rollback", "rollback", "rollback"]
    assert history[-1].previous_id is None and history[-1].version_id == v1.id


def test_promotion_refuses_a_version_whose_model_is_gone(registry, tiny_llama_dir, tmp_path):
    v1 = registry.register(tiny_llama_dir, base_model="tiny")
    gone = registry.register(_copy(tiny_llama_dir, tmp_path / "gone"), base_model="tiny")
    registry.promote(v1.id)
    shutil.rmtree(tmp_path / "gone")
    with pytest.raises(InvalidInputError, match="no complete model"):
        registry.promote(gone.id)
    assert registry.promoted().id == v1.id  # the pointer never moved


def test_concurrent_promotions_leave_one_consistent_pointer(registry, tiny_llama_dir, tmp_path):
    versions = [registry.register(_copy(tiny_llama_dir, tmp_path / f"m{i}"), base_model="tiny")
                for i in range(4)]
    threads = [threading.Thread(target=registry.promote, args=(v.id,)) for v in versions * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    history = registry.history()
    assert len(history) == 12
    assert registry.promoted().id == history[0].version_id  # the last move is the pointer
    chain = [h.previous_id for h in history[:-1]]
    assert chain == [h.version_id for h in history[1:]]  # every move saw the one before it


def test_gate_promotes_only_a_candidate_better_by_the_margin():
    worse = gate({"auto": 0.40, "slow": 0.9}, {"auto": 0.50, "slow": 0.1}, margin=0.02,
                 modes=["auto"])
    assert not worse.promote and "does not beat" in worse.reason
    tie = gate({"auto": 0.51}, {"auto": 0.50}, margin=0.02, modes=["auto"])
    assert not tie.promote
    better = gate({"auto": 0.60, "slow": 0.7}, {"auto": 0.50, "slow": 0.6}, margin=0.02,
                  modes=["auto", "slow"])
    assert better.promote and better.candidate == pytest.approx(0.65)
    assert gate({"auto": 0.0}, None, margin=0.5, modes=["auto"]).promote
    with pytest.raises(InvalidInputError, match="no held-out score"):
        gate({"fast": 1.0}, {"auto": 0.0}, margin=0.0, modes=["auto"])


def test_version_references_resolve_through_the_registry(registry, store, tiny_llama_dir):
    assert is_version_ref("promoted") and is_version_ref("v12") and is_version_ref("mv-1a2b3c")
    assert not is_version_ref("smollm2-135m") and not is_version_ref("org/model")
    with pytest.raises(ModelNotFoundError, match="no model version is promoted"):
        resolve_version("promoted", store=store)
    v1 = registry.register(tiny_llama_dir, base_model="tiny")
    registry.promote(v1.id)
    for ref in ("promoted", "v1", v1.id, v1.id[:7]):
        assert resolve_version(ref, store=store).path == str(tiny_llama_dir.resolve())
    from agentrt.llm.models import resolve_model

    assert resolve_model("v1", database_url=str(store.url)) == str(tiny_llama_dir.resolve())
    with pytest.raises(ModelNotFoundError, match="no such version"):
        resolve_version("v9", store=store)


def test_one_model_version_type_for_training_and_serving(registry, store, db_url,
                                                          tiny_llama_dir):
    from types import SimpleNamespace

    from agentrt.llm import base, versions
    from agentrt.llm.adapter_source import version_record
    from agentrt.store import model_versions
    from agentrt.store.records import ModelVersion
    from agentrt.training import registry as training_registry

    assert base.PROMOTED == model_versions.PROMOTED
    assert training_registry.ModelVersion is ModelVersion is versions.VersionRef
    v1 = registry.register(tiny_llama_dir, base_model="tiny", datasets=[{"name": "sft-1"}],
                           metrics={"auto": 0.5})
    registry.promote(v1.id)
    found = resolve_version("promoted", store=store)
    assert isinstance(found, ModelVersion) and found.promoted and found.label == "v1"
    assert found.datasets == [{"name": "sft-1"}] and found.metrics == {"auto": 0.5}
    assert registry.resolve("v1") == found == registry.get("promoted")
    assert version_record(v1.id[:8], SimpleNamespace(db_url=db_url)) == found


def test_cli_lists_promotes_and_rolls_back(tmp_path, tiny_llama_dir):
    from typer.testing import CliRunner

    from agentrt.store import TraceStore
    from agentrt.training.iterate import iterate_app
    from agentrt.training.registry import ModelRegistry

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    with TraceStore(url) as store:
        reg = ModelRegistry(store)
        v1 = reg.register(tiny_llama_dir, base_model="tiny", note="first")
        v2 = reg.register(_copy(tiny_llama_dir, tmp_path / "v2"), base_model="tiny")
    runner = CliRunner()
    base = ["--database-url", url, "--home", str(tmp_path)]
    out = runner.invoke(iterate_app, [*base, "promote", "v1"])
    assert out.exit_code == 0 and "promoted v1" in out.output
    assert runner.invoke(iterate_app, [*base, "promote", v2.id]).exit_code == 0
    listed = runner.invoke(iterate_app, [*base, "versions"]).output
    assert "* v2" in listed and "  v1" in listed
    back = runner.invoke(iterate_app, [*base, "rollback"])
    assert back.exit_code == 0 and "v1" in back.output
    with TraceStore(url) as store:
        assert ModelRegistry(store).promoted().id == v1.id


def test_cli_shows_notes_escaped(tmp_path, tiny_llama_dir):
    """A version's note is user text: control characters and rich markup come out visible."""
    from typer.testing import CliRunner

    from agentrt.store import TraceStore
    from agentrt.training.iterate import iterate_app
    from agentrt.training.registry import ModelRegistry

    url = f"sqlite:///{tmp_path / 'notes.db'}"
    with TraceStore(url) as store:
        ModelRegistry(store).register(tiny_llama_dir, base_model="tiny",
                                      note="[red]x[/red] \x1b[2J\u202e")
    base = ["--database-url", url, "--home", str(tmp_path)]
    listed = CliRunner().invoke(iterate_app, [*base, "versions"]).output
    assert "[red]x[/red]" in listed and "\\x1b[2J" in listed and "\\u202e" in listed
    assert "\x1b" not in listed and "\u202e" not in listed
    as_json = CliRunner().invoke(iterate_app, [*base, "versions", "--json"]).output
    assert "\x1b" not in as_json and json.loads(as_json)[0]["note"] == "[red]x[/red] \x1b[2J\u202e"


def test_cli_refuses_an_option_set_twice(tmp_path):
    """`--seed 1 --set seed=2` is a one-line error naming both, not a Python TypeError."""
    from typer.testing import CliRunner

    from agentrt.training.iterate import iterate_app, merge_sets

    base = ["--database-url", f"sqlite:///{tmp_path / 'x.db'}", "--home", str(tmp_path)]
    out = CliRunner().invoke(iterate_app, [*base, "--preset", "tiny", "--seed", "1",
                                           "--set", "seed=2", "--out", str(tmp_path / "run")])
    assert out.exit_code != 0 and not isinstance(out.exception, TypeError)
    assert "--seed" in str(out.exception) + out.output and not (tmp_path / "run").exists()
    assert merge_sets({"seed": None, "gsm8k": 0}, {"seed": 2}) == {"seed": 2, "gsm8k": 0}
