"""One training job from the command line, on one device or many (`accelerate launch`).

    python training/train.py sft  --model smollm2-135m --data DATASET_DIR --out MODEL_DIR
    python training/train.py hypo --model MODEL_DIR --data DPO_DIR --out MODEL_DIR --set beta=0.2
    python training/train.py router --database-url sqlite:///traces.db

    accelerate launch --config_file training/configs/zero2.yaml \\
        training/train.py sft --model MODEL --data DATASET_DIR --out MODEL_DIR --set lora=null

`sft`, `dpo` and `hypo` call the wrappers in `agentrt.training.sft`, `agentrt.training.dpo` and `agentrt.training.hypo`
with `SFTSettings` / `DPOSettings` overridden by `--set key=value` (values parsed as JSON when
they parse); `router` trains the learned fast/slow router from graded traces
(`agentrt.router.train.train_router`). The result is printed as JSON on the main process.
This module parses arguments; the work is in the modules it calls.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agentrt.core.config import load_settings
from agentrt.core.errors import AgentrtError, ConfigError
from agentrt.router.train import train_router
from agentrt.store import TraceStore
from agentrt.training.common import process_rank
from agentrt.training.dpo import train_dpo
from agentrt.training.dpo_config import DPOSettings
from agentrt.training.hypo import train_hypo
from agentrt.training.iterate import parse_sets
from agentrt.training.sft import train_sft
from agentrt.training.sft_config import SFTSettings

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Train one model (SFT, DPO, HyPO) or the router.")
    p.add_argument("kind", choices=["sft", "dpo", "hypo", "router"])
    p.add_argument("--model", help="model name, directory or registered version")
    p.add_argument("--data", help="saved dataset directory")
    p.add_argument("--out", type=Path, help="output model directory (must not exist)")
    p.add_argument("--set", dest="sets", action="append", default=[],
                   help="setting override, e.g. max_steps=100 or lora=null")
    p.add_argument("--home", default=None, help="agentrt home (model cache, routers)")
    p.add_argument("--database-url", default=None, help="trace store (router training)")
    p.add_argument("--tags", default=None, help="router: only traces with these tags (JSON)")
    args = p.parse_args(argv)
    try:
        result = _run(p, args)
    except (AgentrtError, FileExistsError) as e:  # refused input: one line, nothing written
        p.exit(2, f"{p.prog}: error: {e}\n")
    if process_rank() == 0:
        print(result)


def _run(p: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """The job `args` names; its result as JSON text."""
    if args.kind == "router":
        try:
            tags = json.loads(args.tags) if args.tags else None
        except json.JSONDecodeError as e:
            raise ConfigError(f"--tags is not JSON: {e}") from None
        if tags is not None and not (isinstance(tags, dict)
                                     and all(isinstance(v, str) for v in tags.values())):
            raise ConfigError('--tags takes a JSON object of strings, e.g. {"split": "train"}')
        settings = load_settings(home=args.home, database_url=args.database_url)
        with TraceStore(settings.db_url) as store:
            model = train_router(store, home=settings.home, tags=tags)
        return json.dumps({"version": model.version, "hash": model.hash})
    if not (args.model and args.data and args.out):
        p.error(f"{args.kind} needs --model, --data and --out")
    overrides = parse_sets(args.sets)
    kind = SFTSettings if args.kind == "sft" else DPOSettings
    try:
        settings = kind(**overrides)
    except (TypeError, ValueError) as e:  # an unknown name or a value out of range
        raise ConfigError(f"invalid {args.kind} setting: {e}") from None
    if args.kind == "sft":
        result = train_sft(args.model, args.data, args.out, settings, home=args.home)
    else:
        fn = train_dpo if args.kind == "dpo" else train_hypo
        result = fn(args.model, args.data, args.out, settings, home=args.home)
    return result.model_dump_json(indent=2)


if __name__ == "__main__":
    main()
