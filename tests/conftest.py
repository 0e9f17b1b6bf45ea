"""Shared test fixtures.

Model fixtures: the embedded SmolLM2 model is converted once into the repository's ignored
`.agentrt/test-home/` (later runs reuse it; the cache's file lock makes parallel runs safe), and a
tiny random Llama with the real tokenizer is built once per test session.

No test may reach a model hub: offline mode is switched on before any hub client is imported, so
a hub id fails at once instead of retrying for a minute.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("tools", "workflows", "training", "data_synth")


class _OnlyTheNamespace(importlib.abc.MetaPathFinder):
    """`python -m pytest` puts the checkout on sys.path, where the source folders would import
    under their bare names; the installed package has them only as agentrt.<folder>. Refuse the
    bare names so no code (or test) can come to depend on them."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in FOLDERS:
            raise ModuleNotFoundError(f"No module named {name!r} (it is agentrt.{name})", name=name)
        return None


sys.meta_path.insert(0, _OnlyTheNamespace())


@pytest.fixture(scope="session")
def embedded_home() -> Path:
    """An agentrt home whose model cache holds the converted embedded model."""
    from agentrt.llm.models import pull_model

    home = Path(os.environ.get("AGENTRT_TEST_HOME", REPO_ROOT / ".agentrt" / "test-home"))
    pull_model("smollm2-135m", home=home, progress=False)
    return home


@pytest.fixture(scope="session")
def smollm2_dir(embedded_home: Path) -> Path:
    """The converted SmolLM2-135M-Instruct directory."""
    return embedded_home / "models" / "smollm2-135m"


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory, smollm2_dir: Path) -> Path:
    """A tiny random Llama (hidden 32, 2 layers, 2 heads) with the SmolLM2 tokenizer, saved once."""
    from agentrt.llm.tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), vocab_from=smollm2_dir, seed=0)
