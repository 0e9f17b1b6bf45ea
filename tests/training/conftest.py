"""Fixtures of the training tests: a second tiny Llama, a registry on a fresh store per test.

The tiny random Llamas (hidden 32, 2 layers, the real SmolLM2 tokenizer) train and generate in
well under a second a step; two of them with different seeds answer differently, which is how
the serving test tells versions apart.
"""

from __future__ import annotations

import pytest
from helpers import parametrize_backends


@pytest.fixture(scope="session")
def tiny_llama_b(tmp_path_factory, smollm2_dir):
    """Another tiny random Llama (seed 1): same shapes, different weights."""
    from agentrt.llm.tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama-b"), vocab_from=smollm2_dir,
                            seed=1)


def pytest_generate_tests(metafunc):
    parametrize_backends(metafunc)  # the registry on SQLite, then on PostgreSQL


@pytest.fixture
def registry(store):
    from agentrt.training.registry import ModelRegistry

    return ModelRegistry(store)
