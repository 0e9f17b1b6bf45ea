"""Prompt profiles as data: one frozen object per profile, registered by name.

A profile is everything that changes with the size of the model the prompts are for: the
template folder, which schema the design, judge and tool-call stages constrain replies with,
the output-token cap and stop strings of each stage, how much of a node's output its readers
see, and the starting sizes of the design schema. Code reads these attributes; it never
compares profile names.

Which profile a solve uses (`resolve_profile`): an explicit `prompt_profile` setting other than
`auto` wins; otherwise the profile the model declares (a catalog model in `agentrt.llm.models`,
looked up by its name, the name before an `@version` reference, or a local directory named
after it; a shipped adapter also carries `prompt_profile` in its settings, which arrive as an
explicit setting); otherwise `DEFAULT_PROFILE` (`full`). The embedded model and the shipped
trained model declare `compact`.

This module knows no templates' text, no backends and no graphs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from agentrt.core.errors import ConfigError
from agentrt.llm.models import declared_profile
from agentrt.workflows.spec_schema import DesignSizes

__all__ = ["PromptProfile", "PROFILES", "DEFAULT_PROFILE", "register_profile", "get_profile",
           "resolve_profile"]

#: The profile of a model that declares none (and of a setting of `auto` for such a model).
DEFAULT_PROFILE = "full"


def _frozen(mapping: Mapping[str, object]) -> Mapping[str, object]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class PromptProfile:
    """How prompts, schemas and sampling are sized for one class of models.

    Attributes:
        name: registry name, as `prompt_profile` settings and trace metadata spell it.
        templates: folder under `workflows/prompts/` holding this profile's templates.
        fallback: folder consulted for a template `templates` lacks (None: no fallback).
        fixed_ids: the design schema fixes node ids (`step1`.. and `answer`), so every admitted
            design passes validation; otherwise ids are free and the repair loop corrects them.
        judge_verdict_first: the judge schema asks for the verdict before a short reason (a reply
            cut off by its token cap still carries its verdict); otherwise reason, then verdict.
        one_line_python: a python tool call is one line of named arithmetic steps, then a print
            (`agentrt.workflows.slow.toolcall.call_schema`); otherwise a whole program.
        stage_tokens: output-token cap per stage (always capped again by the per-call limit);
            a stage not listed (design) gets the per-call limit. A conversation's stages are
            `agent` (one message) and `aggregate` (the choice when agents never agreed).
        stops: stop strings per stage (none for a stage not listed).
        view_chars: characters of a node's output shown to the nodes that read it.
        design_sizes: starting sizes of the design schema before it is fitted to a budget,
            and whether it admits conversation nodes (`DesignSizes.conversations`).
        list_numbers: tool-call prompts list the problem's own numbers, in order, as python
            writes them (`agentrt.workflows.slow.numbers.listed_numbers`): a line a small
            model can copy from and count, so a question with two numbers reads as one step.
    """

    name: str
    templates: str
    fallback: str | None = "full"
    fixed_ids: bool = False
    judge_verdict_first: bool = False
    one_line_python: bool = False
    stage_tokens: Mapping[str, int] = field(default_factory=lambda: _frozen({}))
    stops: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: _frozen({}))
    view_chars: int = 2000
    design_sizes: DesignSizes = field(default_factory=DesignSizes)
    list_numbers: bool = False

    def __post_init__(self) -> None:
        if not self.name or not self.templates:
            raise ValueError("a prompt profile needs a name and a template folder")
        if self.view_chars < 16 or any(v < 1 for v in self.stage_tokens.values()):
            raise ValueError(f"profile {self.name!r}: view and token sizes must be positive")
        # Frozen copies, so a registered profile cannot be changed through a caller's dict.
        object.__setattr__(self, "stage_tokens", _frozen(self.stage_tokens))
        object.__setattr__(self, "stops", _frozen({k: tuple(v) for k, v in self.stops.items()}))

    def tokens(self, stage: str, limit: int) -> int:
        """The output-token cap of `stage` under a per-call `limit`."""
        return min(limit, self.stage_tokens[stage]) if stage in self.stage_tokens else limit

    def stop(self, stage: str) -> list[str]:
        """Stop strings of `stage` (a fresh list each call)."""
        return list(self.stops.get(stage, ()))


PROFILES: dict[str, PromptProfile] = {}


def register_profile(profile: PromptProfile) -> PromptProfile:
    """Add a profile to the registry under its name (replacing one of the same name)."""
    PROFILES[profile.name] = profile
    return profile


def get_profile(profile: str | PromptProfile) -> PromptProfile:
    """The registered profile of a name (a profile object is returned as it is).

    Raises:
        ConfigError: no profile of that name is registered.
    """
    if isinstance(profile, PromptProfile):
        return profile
    found = PROFILES.get(profile)
    if found is None:
        raise ConfigError(f"unknown prompt profile {profile!r}; choose auto, "
                          f"{', '.join(sorted(PROFILES))}")
    return found


def resolve_profile(model_id: str, setting: str = "auto") -> str:
    """The name of the profile a solve with `model_id` uses (see the module docstring).

    Example:
        >>> resolve_profile("smollm2-135m"), resolve_profile("Qwen/Qwen2.5-72B-Instruct")
        ('compact', 'full')

    Raises:
        ConfigError: `setting` is neither `auto` nor a registered profile, or the model
            declares an unregistered one.
    """
    if setting != "auto":
        return get_profile(setting).name
    declared = declared_profile(model_id)
    return get_profile(declared or DEFAULT_PROFILE).name


#: For capable models: HDFlow-sized prompts, free node ids, reasoning before verdicts.
FULL = register_profile(PromptProfile(
    name="full", templates="full", fallback=None,
    stage_tokens={"reflect": 512, "expert": 768, "tool_input": 512, "judge": 256,
                  "select": 192, "agent": 384, "aggregate": 192},
    view_chars=2000,
    design_sizes=DesignSizes(conversations=True),
))

#: For small models (the embedded 135M model): short, direct prompts and schemas that a
#: constrained small model cannot get wrong. Small models run on past their part and write the
#: next prompt themselves, so experts and reflections stop there.
COMPACT = register_profile(PromptProfile(
    name="compact", templates="compact", fallback="full",
    fixed_ids=True, judge_verdict_first=True, one_line_python=True,
    stage_tokens={"reflect": 64, "expert": 96, "tool_input": 128, "judge": 64, "select": 48,
                  "agent": 96, "aggregate": 48},
    stops={"expert": ("\nExpert:", "\nProblem:"), "reflect": ("\nProblem:",)},
    view_chars=400,
    design_sizes=DesignSizes(max_nodes=4, role_chars=40, instruction_chars=120,
                             instruction_floor=48),
))

#: The compact profile whose tool-call prompts also list the problem's numbers
#: (`PromptProfile.list_numbers`): for models trained with that line.
COMPACT_NUMBERS = register_profile(replace(COMPACT, name="compact-numbers", list_numbers=True))
