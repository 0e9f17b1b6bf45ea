"""`IterateConfig`: everything one self-improvement run needs, and the named presets.

Presets (`PRESETS`): `tiny` (a tiny random Llama built in the run directory, a handful of
problems, two training steps: one iteration in a few minutes, used by the tests), `cpu` (the
embedded SmolLM2-135M on a 2-core CPU within 45 minutes, evaluation of the base and the trained
model included; docs/TRAINING.md has its figures), `cpu-long` (the same model in up to three
hours, most of its training from real problems: the recipe of the shipped default model) and
`gpu` (more data, full fine-tuning, bf16). `cpu`, `cpu-long` and `gpu` mix real problems
(GSM8K's train split, `agentrt.data_synth.worked`) with generated ones. Options given on the command line override the preset's values.

The runtime limits of the preset apply to every solve of the run (self-solving and every
evaluation of every model alike), so comparisons stay fair. This module is plain data.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agentrt.core.config import Limits
from agentrt.core.errors import ConfigError
from agentrt.data_synth.generators import FAMILIES
from agentrt.training.dpo_config import DPOSettings
from agentrt.training.grpo_config import GRPOSettings
from agentrt.training.optima_config import OptimaSettings
from agentrt.training.sft_config import SFTSettings

__all__ = ["IterateConfig", "PLACEMENT", "PRESETS", "load_config", "TINY_BASE"]

# Settings of where solves run, not of the experiment: a run may resume with others.
PLACEMENT = {"executor", "ray_address"}
TINY_BASE = "tiny"  # base_model value that builds a tiny random Llama inside the run directory
Mode = Literal["fast", "slow", "auto"]


class IterateConfig(BaseModel):
    """One run of `training/iterate.py` (see the module docstring and docs/TRAINING.md)."""

    model_config = ConfigDict(extra="forbid")

    preset: str = "custom"
    base_model: str = "smollm2-135m"
    iterations: int = Field(1, ge=1, le=100)
    problems: int = Field(64, ge=1, description="training problems generated per iteration")
    solve_problems: int | None = Field(None, ge=0, description="of those, solved by the model")
    samples: int = Field(2, ge=1, le=16, description="samples per problem when self-solving")
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    solve_tool_votes: int = Field(
        1, ge=1, le=16,
        description="programs written per tool call when self-solving (limits.tool_votes, for "
                    "that stage only): each is graded by what it printed, the right ones become "
                    "SFT rows and right-vs-wrong pairs preference data")
    families: list[str] = Field(default_factory=lambda: ["arithmetic", "word"])
    real_sources: list[str] = Field(
        default_factory=list,
        description="worked-solution sources mixed into training (agentrt.data_synth.worked): 'gsm8k' "
                    "(the benchmark data's train split) or 'name=path/to/rows.jsonl'")
    real_problems: int = Field(0, ge=0, description="problems drawn from real_sources per "
                                                    "iteration (new ones each iteration)")
    real_offset: int = Field(
        0, ge=0, description="real problems to skip before the first iteration's slice: those "
                             "the starting model was already trained on, when a run continues "
                             "from a model trained with the same seed and sources")
    real_variants: int = Field(
        0, ge=0, le=8, description="number variants added per real problem (new numbers in the "
                                   "same story, the answer its program computes; "
                                   "agentrt.data_synth.variants)")
    real_originals: bool = Field(
        True, description="train on the real problems themselves; False keeps only their "
                          "variants (problems the starting model already trained on)")
    difficulties: list[int] = Field(default_factory=lambda: [1, 2])
    general_mix: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="share of general chat rows in each SFT dataset, so the tuned model keeps "
                    "chatting like its base (AgentTuning's mix); 0: none")
    general_source: str = Field(
        "self", description="'self' (the base model's own replies to generated everyday "
                            "requests, agentrt.data_synth.general), 'model:<name>' (another "
                            "model's replies: the untrained one, when the run starts from a "
                            "trained model) or a chat JSONL file, one {\"messages\": [...]} "
                            "per line")
    general_requests: int = Field(600, ge=1, le=5000,
                                  description="everyday requests answered for 'self'")
    teacher: Literal["none", "gold", "model"] = "gold"
    teacher_mode: Literal["slow", "fast", "both"] = "both"
    teacher_backend: str = "openai"
    teacher_model: str | None = None
    teacher_base_url: str | None = None
    seed: int = 0
    eval_seed: int = 1_000_003
    eval_per_family: int = Field(10, ge=1)
    eval_modes: list[Mode] = Field(default_factory=lambda: ["fast", "slow", "auto"])
    gsm8k: int = Field(50, ge=0, description="GSM8K test problems evaluated (0: none)")
    gsm8k_modes: list[Mode] = Field(default_factory=lambda: ["fast"])
    gate_modes: list[Mode] = Field(default_factory=lambda: ["auto"])
    gate_margin: float = Field(0.02, ge=0.0, le=1.0)
    relabel_checks: bool = True
    sft_step_caps: dict[str, int | dict[str, int]] = Field(
        default_factory=dict,
        description="most SFT rows per call kind, or per call kind and problem family")
    sft: dict[str, Any] = Field(default_factory=dict)
    preference: Literal["hypo", "dpo", "grpo", "none"] = "hypo"
    dpo: dict[str, Any] = Field(default_factory=dict)
    grpo: dict[str, Any] = Field(default_factory=dict)
    limits: dict[str, Any] = Field(default_factory=dict)
    optima_problems: int = Field(
        0, ge=0, description="information-exchange problems of the Optima stage per iteration "
                             "(agentrt.training.optima: team conversations ranked by "
                             "correctness, tokens and readability, then SFT and DPO); 0: none")
    optima: dict[str, Any] = Field(default_factory=dict,
                                   description="OptimaSettings of that stage")
    # The embedded model's own profile; an explicit name, so traces and evaluations of every
    # trained version use the same prompts whatever the checkpoint's path is called.
    prompt_profile: Literal["compact", "compact-numbers", "full"] = Field(
        "compact", description="Prompt profile the model is trained and evaluated with.")
    device: str = "auto"
    workers: int = Field(16, ge=1, le=256)
    executor: Literal["local", "ray"] = Field(
        "local", description="where self-solves and evaluations run: 'local' (threads here, "
                             "`workers` at a time, batched by one loaded model) or 'ray' (Ray "
                             "tasks; each worker loads the model version itself)")
    ray_address: str | None = Field(None, description="Ray cluster to join (None: a local "
                                                      "ray.init()); only with executor 'ray'")
    max_batch_size: int = Field(16, ge=1, le=512)
    threads: int | Literal["auto"] | None = Field(
        None, description="torch CPU threads: a number, 'auto' (1 while the machine is busy) "
                          "or None (torch's default)")

    @field_validator("families")
    @classmethod
    def _known_families(cls, v: list[str]) -> list[str]:
        unknown = [f for f in v if f not in FAMILIES]
        if not v or unknown:
            raise ValueError(f"unknown or no families {unknown}; choose from {', '.join(FAMILIES)}")
        return v

    @field_validator("difficulties")
    @classmethod
    def _levels(cls, v: list[int]) -> list[int]:
        if not v or any(d not in (1, 2, 3) for d in v):
            raise ValueError("difficulties must be a non-empty list of 1, 2 and 3")
        return v

    @field_validator("sft_step_caps")
    @classmethod
    def _caps(cls, v: dict[str, int | dict[str, int]]) -> dict[str, int | dict[str, int]]:
        caps = [c for cap in v.values() for c in (cap.values() if isinstance(cap, dict) else [cap])]
        if any(c < 0 for c in caps):
            raise ValueError("sft_step_caps must not be negative")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "IterateConfig":
        if self.teacher == "model" and not self.teacher_model:
            raise ValueError("teacher 'model' needs teacher_model (and usually teacher_base_url)")
        if not self.eval_modes:
            raise ValueError("eval_modes must name at least one mode")
        if not set(self.gate_modes) <= set(self.eval_modes):
            raise ValueError("gate_modes must be evaluated: each must be in eval_modes")
        if self.solve_problems is not None and \
                self.solve_problems > self.problems + self.real_problems:
            raise ValueError("solve_problems cannot exceed problems + real_problems")
        if self.optima_problems:
            OptimaSettings(**self.optima)  # a bad Optima setting fails before the run starts
        if self.real_problems and not self.real_sources:
            raise ValueError("real_problems needs at least one of real_sources")
        if not self.real_originals and not self.real_variants:
            raise ValueError("real_originals false needs real_variants: nothing real is left")
        for source in self.real_sources:
            name, sep, path = source.partition("=")
            if not name.strip() or (not sep and name != "gsm8k") or (sep and not path.strip()):
                raise ValueError(f"real source {source!r}: use 'gsm8k' or 'name=path.jsonl'")
        if self.ray_address and self.executor != "ray":
            raise ValueError("ray_address needs executor 'ray'")
        source = self.general_source
        named = source.startswith("model:") and source[len("model:"):].strip()
        if source != "self" and not named and not source.endswith(".jsonl"):
            raise ValueError("general_source must be 'self', 'model:<name>' or a path to a "
                             ".jsonl chat file")
        self.sft_settings()
        self.dpo_settings()
        self.grpo_settings()
        self.runtime_limits()
        return self

    def sft_settings(self) -> SFTSettings:
        return SFTSettings(**self.sft)

    def dpo_settings(self) -> DPOSettings:
        return DPOSettings(**self.dpo)

    def grpo_settings(self) -> GRPOSettings:
        return GRPOSettings(**self.grpo)

    def runtime_limits(self) -> Limits:
        return Limits(**self.limits)

    @property
    def n_solve(self) -> int:
        total = self.problems + self.real_problems
        return total if self.solve_problems is None else self.solve_problems


_FAST_LIMITS = {"max_tokens_per_call": 256, "max_rounds": 1, "max_repairs": 0,
                "max_llm_calls": 12}

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "base_model": TINY_BASE, "iterations": 1, "problems": 4, "solve_problems": 2,
        "samples": 1, "families": ["arithmetic"], "difficulties": [1], "eval_per_family": 2,
        "eval_modes": ["fast", "slow", "auto"], "gsm8k": 0, "gate_modes": ["auto"],
        "sft": {"max_steps": 2, "batch_size": 4, "save_steps": 1, "logging_steps": 1},
        "dpo": {"max_steps": 2, "batch_size": 2, "save_steps": 1, "logging_steps": 1,
                "kl_samples": 2, "kl_max_tokens": 8},
        "grpo": {"max_steps": 2, "batch_size": 2, "num_generations": 2,
                 "max_completion_tokens": 8, "save_steps": 1, "logging_steps": 1},
        "limits": {**_FAST_LIMITS, "max_tokens_per_call": 224},
        "workers": 4, "max_batch_size": 8, "threads": 1,
    },
    "cpu": {
        "base_model": "smollm2-135m", "iterations": 1, "problems": 480, "solve_problems": 16,
        "samples": 2, "families": ["arithmetic", "word"], "difficulties": [1, 2],
        "real_sources": ["gsm8k"], "real_problems": 240,
        "eval_per_family": 10, "eval_modes": ["fast", "slow", "auto"], "gsm8k": 50,
        "gsm8k_modes": ["fast"], "gate_modes": ["auto"],
        # LoRA on the top half of the 30 layers: backward stops there (a cheaper CPU step).
        "sft": {"epochs": 1.0, "batch_size": 8, "learning_rate": 1e-3, "max_length": 512,
                "save_steps": 10, "lora": {"r": 16, "alpha": 32, "top_layers": 15}},
        # Spend the training budget where the model has most to learn: the tool calls, most of
        # all those of word problems (copying an arithmetic expression is learnt from far fewer
        # rows than turning a story into one), the final experts that state the tool's result
        # (most of them for arithmetic, whose results can be negative or long) and the
        # relabelled checks. A few reflections (short constant texts), so the later
        # prompts of a solve read notes like those they were trained on. Fewer of the
        # (constant) designs and of the fast answers. No judgements: the gold judge always
        # says "yes", which would teach the fast self-check to stop escalating.
        # Real problems (GSM8K train) add their named-step tool calls, so the wording learnt
        # is not only the templates'.
        "sft_step_caps": {"reflect": 48, "judge": 0, "design": 24,
                          "expert": {"arithmetic": 64, "word": 24, "gsm8k": 24},
                          "fast_answer": {"arithmetic": 16, "word": 16, "gsm8k": 16},
                          "tool_input": {"arithmetic": 96, "word": 240, "gsm8k": 240}},
        "dpo": {"max_steps": 4, "batch_size": 4, "learning_rate": 5e-5, "beta": 0.1,
                "max_length": 512, "save_steps": 2, "kl_samples": 4, "kl_max_tokens": 48,
                "kl_refresh_steps": 2, "lora": {"r": 16, "alpha": 32, "top_layers": 15}},
        "limits": _FAST_LIMITS,  # 256 tokens: the least whose design schema admits 2 nodes
        "workers": 16, "max_batch_size": 16, "threads": "auto",
    },
    # The embedded model on 2 cores in up to 3 hours: real problems (GSM8K's train split,
    # compiled to named-step programs) carry most of the training, so what is learnt transfers
    # beyond the generators' templates. GSM8K test is evaluated in auto mode, the default.
    "cpu-long": {
        "base_model": "smollm2-135m", "iterations": 1, "problems": 480, "real_sources": ["gsm8k"],
        "real_problems": 2000, "solve_problems": 32, "samples": 2,
        # each self-solve writes 4 programs per tool call, graded one by one (a right program
        # among 5 on 9% of GSM8K test problems against 4% for the greedy one)
        "solve_tool_votes": 4,
        # 15% of the SFT rows are the base model's own replies to everyday requests, so the
        # shipped model still chats like its base through the plain model endpoint.
        "general_mix": 0.15,
        "families": ["arithmetic", "word"], "difficulties": [1, 2],
        "eval_per_family": 10, "eval_modes": ["fast", "slow", "auto"], "gsm8k": 200,
        "gsm8k_modes": ["auto"], "gate_modes": ["auto"],
        "sft": {"epochs": 1.0, "batch_size": 8, "learning_rate": 1e-3, "max_length": 512,
                "save_steps": 20, "lora": {"r": 16, "alpha": 32, "top_layers": 15}},
        "sft_step_caps": {"reflect": 96, "judge": 0, "design": 24,
                          "expert": {"arithmetic": 64, "word": 24, "gsm8k": 160},
                          "fast_answer": {"arithmetic": 16, "word": 16, "gsm8k": 160},
                          "tool_input": {"arithmetic": 96, "word": 240, "gsm8k": 2000}},
        "dpo": {"max_steps": 6, "batch_size": 4, "learning_rate": 5e-5, "beta": 0.1,
                "max_length": 512, "save_steps": 2, "kl_samples": 4, "kl_max_tokens": 48,
                "kl_refresh_steps": 2, "lora": {"r": 16, "alpha": 32, "top_layers": 15}},
        "limits": _FAST_LIMITS,
        "workers": 16, "max_batch_size": 16, "threads": 2,
    },
    "gpu": {
        "base_model": "smollm2-135m", "iterations": 3, "problems": 2000, "solve_problems": 500,
        "samples": 4, "solve_tool_votes": 4,
        "families": ["arithmetic", "word", "units", "sequences", "counting", "linear"],
        "difficulties": [1, 2, 3], "eval_per_family": 50, "gsm8k": 200,
        "real_sources": ["gsm8k"], "real_problems": 2000,
        "gsm8k_modes": ["fast", "auto"], "gate_modes": ["auto"],
        "sft": {"epochs": 2.0, "batch_size": 32, "learning_rate": 2e-5, "lora": None,
                "max_length": 1024, "save_steps": 200},
        "dpo": {"epochs": 1.0, "batch_size": 16, "learning_rate": 5e-7, "lora": None,
                "kl_samples": 16, "kl_max_tokens": 128},
        "limits": {"max_tokens_per_call": 512, "max_rounds": 2, "max_repairs": 1},
        "workers": 64, "max_batch_size": 64,
    },
}


def load_config(preset: str | None = None, **overrides: Any) -> IterateConfig:
    """A preset's config with overrides (None values are ignored).

    Raises:
        ConfigError: unknown preset or an invalid value.
    """
    base: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        base = {**PRESETS[preset], "preset": preset}
    given = {k: v for k, v in overrides.items() if v is not None}
    for key in ("sft", "dpo", "grpo", "limits"):  # nested settings merge instead of replacing
        if key in given and key in base:
            given[key] = {**base[key], **given[key]}
    try:
        return IterateConfig(**{**base, **given})
    except (ValidationError, ValueError, TypeError) as e:
        raise ConfigError(f"invalid iterate config: {e}") from None
