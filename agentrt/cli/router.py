"""`agentrt router`: train the learned router from graded traces, and show saved versions.

    agentrt router train [--tag eval_bench=gsm8k] [--signals verdict] [--slow-fraction 0.3]
    agentrt router show [VERSION]

This module only parses flags and prints; training lives in `agentrt.router.train`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError
from rich.console import Console

from agentrt.core.config import load_settings
from agentrt.core.console import ConfigOpt, DatabaseUrlOpt
from agentrt.core.display import dumps, markup
from agentrt.core.errors import ConfigError
from agentrt.router import FeatureSpec, TrainConfig, list_routers, load_router_model, train_router
from agentrt.store import TraceStore

__all__ = ["router_app"]

router_app = typer.Typer(help="Train and inspect the learned router.", no_args_is_help=True)
out = Console(emoji=False)



def _tags(pairs: list[str]) -> dict[str, str]:
    tags = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"--tag wants KEY=VALUE, got {p!r}")
        tags[key.strip()] = value.strip()
    return tags


def _print_model(m, as_json: bool) -> None:
    if as_json:
        data = m.model_dump(mode="json", exclude={"weights"})
        print(dumps(data))
        return
    met = m.metrics
    pct = lambda v: "–" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    signals = ", ".join(m.features.signals) or "none (routes before any attempt)"
    out.print(f"[bold]router v{m.version}[/bold]  hash {markup((m.hash or '')[:16])}  "
              f"signals: {markup(signals)}")
    out.print(f"threshold {m.threshold:.4f} ({markup(m.calibration.get('method'))})  trained on "
              f"{met.get('n')} graded traces, fast failed on {pct(met.get('fast_fail_rate'))}")
    out.print(f"out-of-fold: accuracy {pct(met.get('oof_accuracy'))} vs constant "
              f"{pct(met.get('constant_accuracy'))}, AUC {met.get('oof_auc') or 0:.3f}, "
              f"precision {pct(met.get('oof_precision'))}, recall {pct(met.get('oof_recall'))}, "
              f"slow share {pct(met.get('oof_slow_fraction'))}")


@router_app.command("train")
def router_train(
    tag: list[str] = typer.Option([], "--tag", help="Only traces with KEY=VALUE (repeatable)."),
    signals: str = typer.Option("", help="Comma-separated fast-attempt signals: verdict, "
                                "truncated, agreement (empty: text only, routes up front)."),
    slow_fraction: Optional[float] = typer.Option(None, "--slow-fraction", min=0.0, max=1.0,
                                                  help="Calibrate to send this share slow."),
    max_avg_tokens: Optional[float] = typer.Option(None, "--max-avg-tokens", min=1.0,
                                                   help="Calibrate to this mean token budget."),
    dim: int = typer.Option(4096, help="Hash buckets for text n-grams."),
    epochs: int = typer.Option(300, min=1),
    seed: int = typer.Option(0),
    as_json: bool = typer.Option(False, "--json"),
    database_url: Optional[str] = DatabaseUrlOpt,
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Train a router on traces tagged fast_correct=1/0 and save it as a new version."""
    settings = load_settings(config, database_url=database_url)
    try:
        cfg = TrainConfig(
            features=FeatureSpec(dim=dim, signals=tuple(s.strip() for s in signals.split(",")
                                                        if s.strip())),
            epochs=epochs, seed=seed, target_slow_fraction=slow_fraction,
            max_avg_tokens=max_avg_tokens)
    except ValidationError as e:
        raise ConfigError(f"invalid router training option: {e.errors()[0]['msg']}") from None
    store = TraceStore.from_settings(settings)
    try:
        model = train_router(store, home=settings.home, tags=_tags(tag), config=cfg)
    finally:
        store.close()
    _print_model(model, as_json)


@router_app.command("show")
def router_show(
    ref: Optional[str] = typer.Argument(None, help="Version number or hash prefix (default: "
                                        "newest)."),
    as_json: bool = typer.Option(False, "--json"),
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Show a saved router version and list all versions."""
    home = load_settings(config).home
    model = load_router_model(home, ref)
    _print_model(model, as_json)
    if not as_json:
        for v in list_routers(home):
            mark = "*" if v.version == model.version else " "
            out.print(f"{mark} v{v.version}  {markup(v.hash[:16])}  {markup(v.created_at)}  "
                      f"threshold {v.threshold:.4f}  n={v.metrics.get('n')}")
