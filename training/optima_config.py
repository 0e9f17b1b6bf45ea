"""Settings of an Optima round (`agentrt.training.optima`), kept apart so configs import no
trainer."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["OptimaSettings"]


class OptimaSettings(BaseModel):
    """One Optima round's settings (what each does: `agentrt.training.optima`). The team's
    round budget and message cap default to what `solve(mode="team")` uses."""

    model_config = ConfigDict(extra="forbid")

    task: Literal["infox", "gsm8k", "mixed"] = Field(
        "infox", description="training problems: generated information-exchange ones, GSM8K "
                             "train problems split between two agents, or half of each")
    samples: int = Field(4, ge=2, le=16, description="conversations per problem")
    temperature: float = Field(0.8, gt=0.0, le=2.0)
    rounds: int = Field(3, ge=1, le=6, description="the team's round budget")
    pattern: Literal["debate", "discuss", "pool"] | None = Field(
        None, description="the team's pattern (None: the runtime's `team_pattern`)")
    message_tokens: int | None = Field(None, ge=8, description="cap on one message's tokens "
                                                                 "(None: the profile's)")
    token_weight: float = Field(0.5, ge=0.0, description="lambda: the price of tokens")
    readability_weight: float = Field(0.2, ge=0.0)
    threshold: float = Field(0.5, description="least reward of a selected conversation")
    min_gap: float = Field(0.3, ge=0.0, description="least reward gap of a preference pair")
    gold: bool = Field(True, description="gold team conversations stand in for problems no "
                                         "conversation of the model solved")
    workers: int = Field(8, ge=1, le=64, description="conversations generated at once")
    sft: dict[str, Any] = Field(default_factory=lambda: {"epochs": 2.0, "batch_size": 8,
                                                          "learning_rate": 5e-4})
    dpo: dict[str, Any] = Field(default_factory=lambda: {"epochs": 1.0, "batch_size": 4,
                                                          "learning_rate": 5e-5, "beta": 0.1})
