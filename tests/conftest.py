"""Shared test fixtures.

Model fixtures: the embedded SmolLM2 model is converted once into the repository's ignored
`.agentrt/test-home/` (later runs reuse it; the cache's file lock makes parallel runs safe), and a
tiny random Llama with the real tokenizer is built once per test session.

Store fixtures: `store` is an open trace store on a fresh SQLite file (`<tmp_path>/traces.db`),
on the database `db_url` names. `db_url` is SQLite unless a test is parametrized onto
PostgreSQL too (`helpers.parametrize_backends`); `pg_url` is a fresh PostgreSQL database per use.

No test may reach a model hub: offline mode is switched on before any hub client is imported, so
a hub id fails at once instead of retrying for a minute.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
from collections.abc import Iterator
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
TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.append(TESTS)  # the shared `helpers` module; appended, so it shadows nothing

from helpers import fresh_pg_database  # noqa: E402


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


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test, dropped afterwards (skipped when unreachable)."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh, empty (never migrated) database: SQLite, or PostgreSQL when parametrized."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield f"sqlite:///{tmp_path / 'traces.db'}"
    else:
        yield request.getfixturevalue("pg_url")


@pytest.fixture
def store(db_url: str):
    """An open trace store on a fresh database (closed afterwards)."""
    from agentrt.store import TraceStore

    s = TraceStore(db_url)
    yield s
    s.close()
