"""Fixtures of the training tests: a second tiny Llama, a fresh store and registry per test.

The tiny random Llamas (hidden 32, 2 layers, the real SmolLM2 tokenizer) train and generate in
well under a second a step; two of them with different seeds answer differently, which is how
the serving test tells versions apart.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def tiny_llama_b(tmp_path_factory, smollm2_dir):
    """Another tiny random Llama (seed 1): same shapes, different weights."""
    from agentrt.llm.tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama-b"), vocab_from=smollm2_dir,
                            seed=1)


PG_ADMIN_URL = os.environ.get("AGENTRT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test (skipped when the server is unreachable)."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"agentrt_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception as e:  # noqa: BLE001 - any failure means: skip this parameter
        pytest.skip(f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {e}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    """A fresh trace store (and so model registry) on SQLite, then on PostgreSQL."""
    from agentrt.store import TraceStore

    if request.param == "sqlite":
        s = TraceStore(f"sqlite:///{tmp_path / 'registry.db'}")
        yield s
        s.close()
        return
    for url in _pg_database():
        s = TraceStore(url)
        yield s
        s.close()


@pytest.fixture
def registry(store):
    from agentrt.training.registry import ModelRegistry

    return ModelRegistry(store)
