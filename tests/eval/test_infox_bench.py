"""The information-exchange benchmarks through `load_benchmark`, and tokens per solved problem."""

import os
from pathlib import Path

import pytest

from agentrt.core.errors import ConfigError
from agentrt.data_synth import infox  # noqa: F401 - registers the infox benchmarks
from agentrt.eval.benchmarks import LOADERS, load_benchmark
from agentrt.eval.graders import grade
from agentrt.eval.metrics import group_metrics

DATA = Path(os.environ.get("AGENTRT_DATA") or Path(__file__).resolve().parents[2].parent / "shared" / "data")
needs_data = pytest.mark.skipif(not (DATA / "gsm8k" / "test.jsonl").is_file(),
                                reason="benchmark data folder not present")


def test_generated_infox_is_fixed_and_carries_two_agents():
    assert "infox" in LOADERS
    load = load_benchmark("infox")
    again = load_benchmark("infox", limit=10)
    assert [p.id for p in load.problems[:10]] == [p.id for p in again.problems]
    assert len(load.problems) >= 290 and not load.errors
    for p in load.problems[:30]:
        assert p.grader == "numeric" and grade(p.answer, p).correct
        assert len(p.meta["agents"]) == 2 and p.meta["question"]


@needs_data
def test_infox_gsm8k_loads_the_test_split():
    load = load_benchmark("infox:gsm8k", data=DATA, limit=5)
    assert len(load.problems) == 5 and load.spec == "infox:gsm8k" and "skipped" in load.path
    assert all(p.id.startswith("infox-gsm8k-test-") and len(p.meta["agents"]) == 2 for p in load.problems)


def test_unknown_infox_variant_is_an_error():
    with pytest.raises(ConfigError, match="unknown infox variant"):
        load_benchmark("infox:poetry")


def test_tokens_per_solved_problem():
    rows = [dict(correct=True, prompt_tokens=100, completion_tokens=20),
            dict(correct=False, prompt_tokens=60, completion_tokens=20)]
    assert group_metrics(rows).tokens_per_solved == 200  # every token spent, over 1 solved
    assert group_metrics(rows[1:]).tokens_per_solved is None
