"""Command groups that import their module only when they run.

`agentrt --help`, a usage error or `agentrt solve` should not pay for the evaluation harness,
the training loop or the data builders (langgraph, the store and alembic, TRL's helpers): the
root group holds a stand-in for each such group, with its one-line help for the command list and
the "did you mean" hints, and puts the real group in its place when the command line names it.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperGroup

__all__ = ["LAZY_GROUPS", "LazyRootGroup", "load_group"]

# name: (module, Typer app attribute, the app's own one-line help)
LAZY_GROUPS: dict[str, tuple[str, str, str]] = {
    "eval": ("agentrt.cli.eval", "eval_app",
             "Evaluate on benchmarks; report and compare runs."),
    "router": ("agentrt.cli.router", "router_app", "Train and inspect the learned router."),
    "tools": ("agentrt.tools.cli", "app", "Symbolic tools and their sandbox."),
    "synth": ("agentrt.data_synth.cli", "synth_app", "Synthesize problems and teacher traces."),
    "data": ("agentrt.data_synth.cli", "data_app", "Build training datasets from stored traces."),
    "iterate": ("agentrt.training.iterate", "iterate_app",
                "Self-improvement: train, evaluate, gate and promote models."),
}


class _Pending(TyperGroup):
    """Stands in for a lazy group in the root's command list until the group is named."""


def load_group(name: str) -> Any:
    """The click group of lazy group `name`, mounted as the root mounts its groups: a group run
    without a command is a usage error ("Missing command"), not a page of help."""
    module, attribute, _ = LAZY_GROUPS[name]
    sub_app = getattr(importlib.import_module(module), attribute)
    # mounted on a parent, exactly as `add_typer` mounts it (no completion options of its own)
    parent = typer.Typer(add_completion=False)
    parent.add_typer(sub_app, name=name, no_args_is_help=False)
    return typer.main.get_command(parent).commands[name]


class LazyRootGroup(TyperGroup):
    """The root group: its own commands, then a stand-in for each lazy group."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name, (_, _, text) in LAZY_GROUPS.items():
            self.commands.setdefault(name, _Pending(name=name, help=text))

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and isinstance(self.commands.get(args[0]), _Pending):
            self.commands[args[0]] = load_group(args[0])
        return super().resolve_command(ctx, args)
