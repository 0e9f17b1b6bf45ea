"""The information-exchange benchmarks and their decontamination.

- `infox`: generated problems of the `infox` family from the held-out seeds
  (`HELDOUT_SEEDS`, `PER_SEED` problems each, difficulties cycling 1-3), fixed forever so runs
  compare; `generate` refuses these seeds for training data.
- `infox:gsm8k`: GSM8K test problems split sentence by sentence between two agents
  (`agentrt.data_synth.split.gsm8k_infox`); `infox:gsm8k:train` is the train split, for training.

`drop_heldout(problems)` removes training problems whose text equals a held-out one (templates
can repeat a text from another seed). `load_infox` is what `agentrt.eval.benchmarks` loads for
`infox` specs. This module does not solve or grade.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from agentrt.core.errors import ConfigError
from agentrt.core.types import Problem
from agentrt.data_synth.generators import HELDOUT_SEEDS as RESERVED
from agentrt.data_synth.generators import generate
from agentrt.data_synth.split import gsm8k_infox
from agentrt.eval.benchmarks import BenchmarkLoad, register_benchmark

__all__ = ["HELDOUT_SEEDS", "PER_SEED", "heldout_problems", "drop_heldout", "load_infox"]

HELDOUT_SEEDS = RESERVED["infox"]
PER_SEED = 100


def heldout_problems() -> list[Problem]:
    """The generated held-out benchmark: `PER_SEED` problems from each seed of `HELDOUT_SEEDS`,
    a text that an earlier seed already gave left out."""
    out: list[Problem] = []
    seen: set[str] = set()
    for seed in HELDOUT_SEEDS:
        for p in generate("infox", PER_SEED, seed=seed, heldout=True):
            if _key(p.text) not in seen:
                seen.add(_key(p.text))
                out.append(p.model_copy(update={"meta": {**p.meta, "benchmark": "infox"}}))
    return out


def _key(text: str) -> str:
    return " ".join(text.split()).casefold()


def drop_heldout(problems: Sequence[Problem]) -> tuple[list[Problem], list[Problem]]:
    """(kept, removed): remove problems whose text equals a held-out `infox` problem's text.

    Example:
        >>> from agentrt.data_synth.generators import generate
        >>> kept, removed = drop_heldout(generate("infox", 30, seed=1))
        >>> len(kept) + len(removed)
        30
    """
    held = {_key(p.text) for p in heldout_problems()}
    kept = [p for p in problems if _key(p.text) not in held]
    removed = [p for p in problems if _key(p.text) in held]
    return kept, removed


def load_infox(arg: str, data: Path | str | None = None) -> BenchmarkLoad:
    """Load `infox` (arg ""), `infox:gsm8k` (arg "gsm8k") or `infox:gsm8k:train`.

    Raises:
        ConfigError: an unknown variant, or (for GSM8K) a missing data folder or file.
    """
    if arg == "":
        return BenchmarkLoad(spec="infox", path=f"generated: family infox, seeds "
                             f"{HELDOUT_SEEDS.start}-{HELDOUT_SEEDS.stop - 1}", problems=heldout_problems())
    source, _, split = arg.partition(":")
    if source == "gsm8k":
        load, report = gsm8k_infox(data, split or "test")
        load.path = f"{load.path} (split {report.split} of {report.read}; skipped {report.skipped})"
        return load
    raise ConfigError(f"unknown infox variant {arg!r}; choose infox, infox:gsm8k or infox:gsm8k:train")


register_benchmark("infox", load_infox)
