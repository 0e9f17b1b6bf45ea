"""The workflow options a solve takes (`Runtime.solve(problem, mode, **options)`), checked
before its trace starts.

Every mode reads `temperature` (its LLM calls' sampling temperature) and `seed` (seeds sampled
tool votes); mode "team" also reads `TEAM_OPTIONS`, which `agentrt.workflows.team` checks.
This module only says which options exist and whether their values are usable; the workflows
read them from `SolveContext.extra`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentrt.core.errors import InvalidInputError
from agentrt.workflows.team import TEAM_OPTIONS

__all__ = ["OPTIONS", "check_options"]

#: Options every mode takes.
OPTIONS = ("temperature", "seed")


def check_options(mode: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options of a solve in `mode` that are set (None means unset).

    Raises:
        InvalidInputError: an option the mode does not take (a typo would otherwise be
            ignored), a temperature outside 0 to 2, or a seed that is not an integer.
    """
    options = {k: v for k, v in options.items() if v is not None}
    known = OPTIONS + TEAM_OPTIONS if mode == "team" else OPTIONS
    unknown = sorted(set(options) - set(known))
    if unknown:
        team = f"; mode 'team' also takes {', '.join(TEAM_OPTIONS)}" if mode != "team" else ""
        raise InvalidInputError(f"unknown solve option(s) {', '.join(unknown)} for mode "
                                f"{mode!r}; known: {', '.join(known)}{team}")
    temperature = options.get("temperature", 0.0)
    if (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
            or not 0.0 <= temperature <= 2.0):
        raise InvalidInputError(f"temperature must be a number from 0 to 2, not {temperature!r}")
    seed = options.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidInputError(f"seed must be an integer, not {seed!r}")
    return options
