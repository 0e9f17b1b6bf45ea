"""Run the tiny self-improvement loop in this process and SIGKILL it at a chosen point.

    python kill_worker.py RUN_DIR DB_URL HOME POINT

POINT is where the process kills itself, with no chance to clean up:

- `dataset`: the SFT dataset's directory is saved complete, just before it is registered;
- `checkpoint`: training has saved checkpoint-1 and is half-way through writing checkpoint-2
  (model weights written, trainer state not yet);
- `none`: run to the end.

Used by test_iterate.py; a real kill at the worst moments the code must survive.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path


def _die(*_args, **_kwargs):
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    run_dir, db_url, home, point = sys.argv[1:5]
    if point == "dataset":
        import agentrt.data_synth.compile.registry as registry

        registry.register_dataset = _die
    elif point == "checkpoint":
        from transformers.trainer_callback import TrainerState

        original = TrainerState.save_to_json

        def save_to_json(self, path):
            if "checkpoint-2" in str(path):
                _die()
            return original(self, path)

        TrainerState.save_to_json = save_to_json
    elif point != "none":
        raise SystemExit(f"unknown kill point {point!r}")
    from agentrt.training.config import load_config
    from agentrt.training.iterate import run

    cfg = load_config("tiny", eval_modes=["fast"], gate_modes=["fast"], eval_per_family=1,
                      problems=3, solve_problems=1)
    run(cfg, Path(run_dir), home=Path(home), database_url=db_url, quiet=True)
    print("run finished")


if __name__ == "__main__":
    main()
