"""`python training/optima_cli.py`: Optima rounds on their own, with the team evaluated around them.

    python training/optima_cli.py --model smollm2-135m-agentrt --out runs/optima \\
        --rounds 1 --problems 24 --eval 40 --set samples=4 --set sft.epochs=2
    python training/optima_cli.py --task gsm8k --single ...   # GSM8K problems split in two

Evaluates the team (mode `team`, greedy) on the first `--eval` held-out problems of `--bench`
(`infox`, or `infox:gsm8k` for `--task gsm8k`: GSM8K test problems split between two agents),
and with `--single` one agent that sees the whole problem (mode `auto`) beside it; then runs
`--rounds` Optima rounds (`agentrt.training.optima`), each from the previous round's model and
on fresh training problems of `--task` (generated `infox`, GSM8K train split between two
agents, or `mixed`), and evaluates again after each. Figures go to
`<out>/summary.json` and a table on the terminal. Run again with the same command, a killed
run reuses its finished conversations, trained models and evaluations.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import typer
from pydantic import ValidationError
from rich.console import Console

from agentrt.core.config import load_settings
from agentrt.core.console import run_app
from agentrt.core.errors import ConfigError, first_problem
from agentrt.core.threads import configure as configure_threads
from agentrt.data_synth import infox  # noqa: F401  (registers the infox benchmarks)
from agentrt.eval.benchmarks import load_benchmark
from agentrt.eval.harness import run_eval
from agentrt.eval.metrics import compute_metrics
from agentrt.eval.runs import EvalSpec
from agentrt.llm.hf import HFBackend
from agentrt.runtime import Runtime
from agentrt.store import TraceStore
from agentrt.training.iterate import parse_sets
from agentrt.training.optima import OptimaSettings, optima_problems, optima_round

__all__ = ["optima_app", "main"]

optima_app = typer.Typer(help=__doc__.split("\n\n")[0], pretty_exceptions_enable=False,
                         add_completion=False)
_console = Console(stderr=True)


@contextlib.contextmanager
def _runtime(model: str, store: TraceStore, home: Optional[Path], batch: int,
             database_url: str, profile: str, pattern: str | None) -> Iterator[Runtime]:
    settings = load_settings(backend="hf", model=model, home=home, database_url=database_url,
                             prompt_profile=profile,
                             **({"team_pattern": pattern} if pattern else {}))
    backend = HFBackend(model, home=settings.home, max_batch_size=batch)
    try:  # the pool pattern's program runs in the sandboxed python tool
        yield Runtime(settings, backend=backend, store=store,
                      tools=None if settings.team_pattern == "pool" else {})
    finally:
        backend.close()


def _evaluate(rt: Runtime, bench: str, n: int, workers: int, out: Path,
              mode: str = "team") -> dict[str, Any]:
    done = out / "done.json"
    if done.is_file():
        return json.loads(done.read_text())
    run = run_eval(rt, EvalSpec(bench=bench, limit=n, mode=mode, workers=workers), out=out)
    o = compute_metrics(run.results).overall
    figures = {"n": o.n, "correct": o.correct, "accuracy": o.accuracy,
               "tokens_per_problem": o.tokens_per_problem, "tokens_per_solved": o.tokens_per_solved}
    done.write_text(json.dumps(figures))
    return figures


@optima_app.command()
def run(
    model: str = typer.Option("smollm2-135m-agentrt", help="The model the team starts from."),
    base_model: str = typer.Option("smollm2-135m", help="Readability is its loss on messages."),
    out: Path = typer.Option(Path("runs/optima"), help="Run directory."),
    rounds: int = typer.Option(1, min=1, help="Optima rounds."),
    problems: int = typer.Option(24, min=1, help="Training problems per round."),
    task: str = typer.Option("infox", help="Training problems: infox, gsm8k or mixed."),
    bench: Optional[str] = typer.Option(None, help="Held-out benchmark (default: infox, or "
                                                   "infox:gsm8k for --task gsm8k)."),
    eval_n: int = typer.Option(40, "--eval", min=0, help="Held-out problems evaluated."),
    single: bool = typer.Option(False, "--single", help="Also evaluate one agent that sees "
                                                        "the whole problem (mode auto)."),
    workers: int = typer.Option(16, min=1, help="Concurrent solves."),
    batch: int = typer.Option(16, min=1, help="hf backend batch size."),
    seed: int = typer.Option(0, help="Seed of the training problems."),
    sets: list[str] = typer.Option([], "--set", help="OptimaSettings override, e.g. samples=4."),
    threads: Optional[str] = typer.Option("auto", help="torch CPU threads: N or auto."),
    prompt_profile: str = typer.Option("auto", help="auto, compact, compact-numbers or full "
                                       "(a model directory declares none: name its profile)."),
    home: Optional[Path] = typer.Option(None, help="agentrt home (model cache)."),
    database_url: Optional[str] = typer.Option(None, help="Trace store URL (default: in --out)."),
) -> None:
    """Evaluate, train `--rounds` Optima rounds, evaluate after each."""
    configure_threads(int(threads) if threads and threads.isdigit() else threads)
    try:
        s = OptimaSettings(**{"workers": workers, "task": task, **parse_sets(sets)})
    except ValidationError as e:
        raise ConfigError(f"invalid Optima setting {first_problem(e, 'settings')}") from None
    bench = bench or ("infox:gsm8k" if s.task == "gsm8k" else "infox")
    if eval_n:
        load_benchmark(bench, limit=1)  # an unknown benchmark is refused before any model loads
    out.mkdir(parents=True, exist_ok=True)
    db = database_url or f"sqlite:///{(out / 'traces.db').resolve()}"
    store = TraceStore(db)
    summary: dict[str, Any] = {"model": model, "bench": bench, "settings": s.model_dump(),
                               "rounds": []}
    current = model

    def evaluate(rt: Runtime, k: int) -> dict[str, Any]:
        figures = _evaluate(rt, bench, eval_n, workers, out / f"eval-{k}")
        if single:
            figures["single"] = _evaluate(rt, bench, eval_n, workers, out / f"eval-{k}-single",
                                          mode="auto")
        return figures

    if eval_n:
        with _runtime(current, store, home, batch, db, prompt_profile, s.pattern) as rt:
            summary["before"] = evaluate(rt, 0)
    for r in range(1, rounds + 1):
        progress = lambda what, i, n: _console.print(f"{what}: {i}/{n}") if i == n or i % 8 == 0 \
            else None  # noqa: E731
        with _runtime(current, store, home, batch, db, prompt_profile, s.pattern) as rt:
            result = optima_round(rt, current, optima_problems(problems, seed * 1000 + r, s.task),
                                  out / f"round-{r}", s, base_model=base_model,
                                  tags={"optima_run": out.name, "optima_round": str(r)},
                                  home=home, progress=progress)
        current = result["path"]
        if eval_n:
            with _runtime(current, store, home, batch, db, prompt_profile, s.pattern) as rt:
                result["eval"] = evaluate(rt, r)
        summary["rounds"].append(result)
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    _print(summary)


def _print(summary: dict[str, Any]) -> None:
    rows = [("before", summary.get("before"), None)]
    rows += [(f"after round {i}", r.get("eval"), r) for i, r in enumerate(summary["rounds"], 1)]
    print(f"{summary.get('bench', 'infox')}:")
    print("| model | team accuracy | tokens per problem | tokens per solved | one agent (auto) "
          "| conversations right | selected | SFT rows | DPO pairs |")
    print("| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    for name, ev, r in rows:
        gen = ("–", "–", "–", "–") if r is None else (
            f"{r['correct']}/{r['conversations']}", r["selected"], r["sft_rows"], r["dpo_pairs"])
        one = (ev or {}).get("single")
        one = "–" if not one else (f"{one['correct']}/{one['n']}, " + (
            "–" if one["tokens_per_solved"] is None else f"{one['tokens_per_solved']:.0f}")
            + " tokens per solved")
        print(f"| {name} | {_figures(ev)} | {one} | " + " | ".join(map(str, gen)) + " |")


def _figures(ev: dict[str, Any] | None) -> str:
    """Accuracy, tokens per problem and per solved problem (cells of one table)."""
    if not ev:
        return "–"
    tps = "–" if ev["tokens_per_solved"] is None else f"{ev['tokens_per_solved']:.0f}"
    return (f"{ev['correct']}/{ev['n']} ({100 * ev['accuracy']:.1f}%) | "
            f"{ev['tokens_per_problem']:.0f} | {tps}")


def main(argv: list[str] | None = None) -> None:
    run_app(optima_app, argv)


if __name__ == "__main__":
    main()
