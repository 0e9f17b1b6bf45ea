"""Writers shared by the concurrency tests: run in threads of the test process, or as a script.

As a script it opens a store, signals that it is ready, waits for a common start signal and
writes, so several processes hit the database at the same moment:

    python workers.py URL ROLE WORKER N_TRACES N_STEPS SYNC_DIR

ROLE is "write" (open first, then wait and write), "migrate" (wait, then open a fresh database
at the same moment as the others, then write) or "claim" (N_TRACES is a trace id: read it, wait,
then try to take it over; the outcome, 1 or 0, goes to SYNC_DIR/claimed-WORKER).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def write_traces(store, worker: str, n_traces: int, n_steps: int) -> list[str]:
    """Write `n_traces` complete traces of `n_steps` steps each, alternating single and batch adds."""
    from agentrt.store import StepRecord
    from agentrt.core.types import Usage

    ids = []
    for i in range(n_traces):
        tid = store.start_trace(
            problem=f"{worker} problem {i}",
            requested_mode="fast",
            model_id="test-model",
            backend="fake",
            tags={"worker": worker},
        )
        steps = [
            StepRecord(kind="llm", name=f"step{j}", inputs={"i": i, "j": j}, prompt_tokens=j)
            for j in range(n_steps)
        ]
        if i % 2:
            store.add_steps(tid, steps)
        else:
            for step in steps:
                store.add_step(tid, step)
        store.finish_trace(
            tid,
            answer=str(i),
            status="ok",
            mode="fast",
            usage=Usage(prompt_tokens=sum(range(n_steps)), completion_tokens=1),
            llm_calls=n_steps,
        )
        ids.append(tid)
    return ids


def wait_for(path: Path, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {path}")
        time.sleep(0.002)


def main(argv: list[str]) -> int:
    url, role, worker, n_traces, n_steps, sync = argv
    sync_dir = Path(sync)
    from agentrt.store import TraceStore

    store = None
    if role == "claim":
        store = TraceStore(url)
        seen = store.get_trace(n_traces)
        (sync_dir / f"ready-{worker}").touch()
        wait_for(sync_dir / "go")
        won = store.claim_trace(seen)
        (sync_dir / f"claimed-{worker}").write_text("1" if won else "0")
        store.close()
        return 0
    if role == "write":
        store = TraceStore(url)
    (sync_dir / f"ready-{worker}").touch()
    wait_for(sync_dir / "go")
    if store is None:
        store = TraceStore(url)
    try:
        write_traces(store, worker, int(n_traces), int(n_steps))
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
