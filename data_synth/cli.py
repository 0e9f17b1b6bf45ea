"""`agentrt synth` and `agentrt data`: make problems and teacher traces, build and list datasets.

    agentrt synth problems --family word --n 200 --seed 1 --out word.jsonl
    agentrt synth traces --from word.jsonl --mode both
    agentrt synth traces --from word.jsonl --teacher-backend openai --teacher-model M \
        --executor ray --ray-address ray://head:10001
    agentrt synth worked --from gsm8k/train.jsonl --source gsm8k --out gsm8k-train.jsonl
    agentrt synth model-problems --seeds word.jsonl --n 50 --backend openai --model M \
        --base-url URL --out new.jsonl
    agentrt data build sft --family word --max-tokens 1024 --out datasets/sft-word
    agentrt data step-pairs --from datasets/sft-word --out datasets/steps-word
    agentrt data list

Settings (backend, model, database) come from the environment and config file like every
command; `--model` names the model the data is for (its prompt profile, its tokenizer). This
module only parses flags and prints; the work is in `agentrt.data_synth.generators`, `teacher`,
`model_problems` and `compile`.
"""

from __future__ import annotations

import functools
import random
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from agentrt.core.config import Settings, load_settings
from agentrt.core.console import BaseUrlOpt, ConfigOpt
from agentrt.core.display import dumps, markup
from agentrt.core.errors import ConfigError
from agentrt.data_synth.compile import BuildSpec, build_dataset, get_dataset, list_datasets
from agentrt.data_synth.decontaminate import build_index
from agentrt.data_synth.decontaminate import decontaminate as clean
from agentrt.data_synth.generators import generate
from agentrt.data_synth.model_problems import WriterConfig, model_problems
from agentrt.data_synth.problem_io import read_problems, write_problems
from agentrt.data_synth.step_pairs import step_pairs
from agentrt.data_synth.teacher import gold_traces, teacher_traces
from agentrt.data_synth.variants import verified_variants
from agentrt.data_synth.worked import RowFormat, drop_summary, worked_problems
from agentrt.execute import EXECUTORS, make_executor
from agentrt.runtime import Runtime
from agentrt.store import TraceStore
from agentrt.workflows.profiles import resolve_profile

__all__ = ["synth_app", "data_app"]

synth_app = typer.Typer(help="Synthesize problems and teacher traces.", no_args_is_help=True)
data_app = typer.Typer(help="Build training datasets from stored traces.", no_args_is_help=True)
out = Console(emoji=False)
err = Console(stderr=True, emoji=False)

DbOpt = typer.Option(None, "--database-url", help="Trace store URL.")
JsonOpt = typer.Option(False, "--json", help="Print the result as JSON.")
ExecutorOpt = typer.Option("local", "--executor", help="Where the solves run: local (threads "
                           "here, --workers at a time) or ray (tasks on a Ray cluster).")
RayAddressOpt = typer.Option(None, "--ray-address", help="Ray cluster to join (default: start "
                             "a local one).")
WorkersOpt = typer.Option(1, "--workers", "-w", min=1, max=64, help="Concurrent solves of the "
                          "local executor.")


def _check_executor(name: str) -> None:
    if name not in EXECUTORS:
        raise ConfigError(f"invalid --executor {name!r}: choose one of {', '.join(EXECUTORS)}")


def _executor(name: str, workers: int, settings: Settings, address: Optional[str]):
    """The executor named on the command line; a Ray worker builds its runtime from `settings`."""
    return make_executor(name, workers=workers, factory=functools.partial(Runtime, settings),
                         address=address)


def _shutdown(executor) -> None:
    getattr(executor, "shutdown", lambda: None)()


def _settings(config: Optional[Path], **overrides) -> Settings:
    return load_settings(config, **overrides)


def _store(settings: Settings):
    return TraceStore.from_settings(settings)


def _emit(data: dict, as_json: bool, lines: list[str]) -> None:
    """The result as JSON, or as plain lines (escaped: they quote problems and model replies)."""
    if as_json:
        print(dumps(data, default=str))
    else:
        for line in lines:
            out.print(markup(line), highlight=False)


@synth_app.command("problems")
def synth_problems(
    family: str = typer.Option(..., "--family", "-f", help="Problem family (see FAMILIES)."),
    n: int = typer.Option(..., "--n", help="How many problems."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same set."),
    difficulty: Optional[int] = typer.Option(None, "--difficulty",
                                             help="1, 2 or 3 (default: a mix)."),
    out_file: Path = typer.Option(..., "--out", help="JSONL file to write."),
    decontaminate: bool = typer.Option(False, "--decontaminate", help="Drop test-set overlaps."),
    data: Optional[Path] = typer.Option(None, "--data", help="Benchmark data folder."),
    as_json: bool = JsonOpt,
) -> None:
    """Generate verifiable problems of one family into a JSONL file."""
    problems = generate(family, n, seed=seed, difficulty=difficulty)
    report = None
    if decontaminate:
        problems, _, report = clean(problems, build_index(data))
    count = write_problems(problems, out_file)
    removed = f"; removed {report.removed} overlapping test sets (threshold {report.threshold})" \
        if report else ""
    _emit({"family": family, "written": count, "out": str(out_file),
           "decontamination": report.model_dump(exclude={"hits"}) if report else None},
          as_json, [f"wrote {count} {family} problems to {out_file}{removed}"])


@synth_app.command("worked")
def synth_worked(
    source_file: Path = typer.Option(..., "--from", help="JSONL of worked solutions."),
    source: str = typer.Option(..., "--source", help="Name of the source (family, id prefix)."),
    out_file: Path = typer.Option(..., "--out", help="JSONL file of problems to write."),
    question_key: str = typer.Option("question", help="Row field holding the problem."),
    solution_key: str = typer.Option("answer", help="Row field holding the worked solution."),
    answer_key: Optional[str] = typer.Option(
        None, help="Row field holding the answer (default: after --marker in the solution)."),
    marker: str = typer.Option("####", help="What precedes the answer in the solution."),
    data: Optional[Path] = typer.Option(None, "--data", help="Benchmark data folder."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Cache folder (default: "
                                         "<home>/data/worked)."),
    variants: int = typer.Option(0, "--variants", min=0, max=8, help="Also write up to this "
                                 "many number variants of each problem (new numbers, the "
                                 "answer its program computes; sandbox-verified)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the variants' numbers."),
    as_json: bool = JsonOpt,
) -> None:
    """Compile worked solutions with <<a*b=c>> annotations into problems with programs
    (sandbox-verified, decontaminated), ready for `agentrt synth traces`."""
    fmt = RowFormat(question_key=question_key, solution_key=solution_key,
                    answer_key=answer_key, answer_marker=marker)
    cache_dir = cache or _settings(None).home / "data" / "worked"
    problems, report = worked_problems(source_file, source=source, cache_dir=cache_dir, fmt=fmt,
                                       decontaminate_against=data)
    extra, reports = (verified_variants(problems, variants, seed=seed, index=build_index(data))
                      if variants else ([], {}))
    count = write_problems(problems + extra, out_file)
    lines = [f"wrote {count} problems to {out_file}: {len(problems)} of {report.rows} rows of "
             f"{source}" + (f" and {len(extra)} number variants" if variants else ""),
             "dropped:", drop_summary(report) or "  none"]
    for name, r in reports.items():
        lines.append(f"{name}: {r['kept']} kept of {r['rows']} drawn from {r['varied']} of "
                     f"{r['of']} problems")
    _emit({"source": source, "written": count, "out": str(out_file), **report.model_dump(),
           "variants": reports}, as_json, lines)


@synth_app.command("traces")
def synth_traces(
    source: Path = typer.Option(..., "--from", help="JSONL file of problems."),
    mode: str = typer.Option("both", "--mode", help="slow, fast or both (fast for easy ones)."),
    easy_max: int = typer.Option(1, "--easy-max", help="Highest difficulty that gets fast traces."),
    teacher_backend: Optional[str] = typer.Option(None, help="Solve with this backend instead "
                                                  "of gold scripts (openai, hf, vllm)."),
    teacher_model: Optional[str] = typer.Option(None, help="The teacher model."),
    teacher_base_url: Optional[str] = typer.Option(None, help="The teacher's server URL."),
    backend: Optional[str] = typer.Option(None, help="Backend of the model the data is for."),
    model: Optional[str] = typer.Option(None, help="The model the data is for (prompt profile)."),
    executor: str = ExecutorOpt,
    ray_address: Optional[str] = RayAddressOpt,
    workers: int = WorkersOpt,
    database_url: Optional[str] = DbOpt,
    config: Optional[Path] = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Store teacher traces for problems: gold scripts, or real solves by a teacher model
    (on threads here or on a Ray cluster: --executor)."""
    _check_executor(executor)
    teacher = bool(teacher_backend or teacher_model)
    if not teacher and (executor != "local" or workers != 1):
        raise ConfigError("--executor and --workers apply to a teacher model's solves "
                          "(--teacher-backend, --teacher-model); gold traces run here")
    settings = _settings(config, backend=backend, model=model, database_url=database_url)
    problems = read_problems(source)
    store = _store(settings)
    try:
        if teacher:
            report = _teacher_run(settings, store, problems, mode, easy_max, teacher_backend,
                                  teacher_model, teacher_base_url,
                                  (executor, workers, ray_address))
        else:
            report = gold_traces(problems, store=store, settings=settings, mode=mode,
                                 easy_max=easy_max)
    finally:
        store.close()
    reasons: dict[str, int] = {}
    for r in report.rejected:
        reasons[r["reason"][:120]] = reasons.get(r["reason"][:120], 0) + 1
    lines = [f"stored {sum(report.stored.values())} traces {report.stored} for "
             f"{report.requested} problems"]
    lines += [f"skipped {v}: {k}" for k, v in report.skipped.items()]
    lines += [f"rejected {v}: {k}" for k, v in reasons.items()]
    _emit(report.model_dump(exclude={"trace_ids"}), as_json, lines)


def _teacher_run(settings: Settings, store, problems, mode: str, easy_max: int,
                 backend: Optional[str], model: Optional[str], base_url: Optional[str],
                 where: tuple[str, int, Optional[str]]):
    if not (backend and model):
        raise ConfigError("a teacher needs both --teacher-backend and --teacher-model")
    profile = resolve_profile(settings.model, settings.prompt_profile)
    teacher = settings.model_copy(update={"backend": backend, "model": model,
                                          "base_url": base_url or settings.base_url,
                                          "prompt_profile": profile})
    name, workers, address = where
    executor = _executor(name, workers, teacher, address)
    runtime = Runtime(teacher, store=store)  # the teacher model loads on first use only
    try:
        return teacher_traces(runtime, problems, mode=mode, easy_max=easy_max,
                              executor=executor)
    finally:
        runtime.close()
        _shutdown(executor)


@synth_app.command("model-problems")
def synth_model_problems(
    out_file: Path = typer.Option(..., "--out", help="JSONL file to write the kept problems to."),
    n: int = typer.Option(..., "--n", help="How many verified problems to keep, at most."),
    seeds: Optional[Path] = typer.Option(None, "--seeds", help="JSONL of example problems."),
    topic: Optional[str] = typer.Option(None, "--topic", help="A topic (instead of seeds)."),
    per_call: int = typer.Option(5, "--per-call", help="Problems asked for per writer call."),
    k: int = typer.Option(3, "--k", help="Independent solves per problem (0: program check only)."),
    min_agreement: float = typer.Option(0.6, "--min-agreement", help="Share of solves that "
                                        "must agree."),
    verify: str = typer.Option("any", "--verify", help="any, program or solves."),
    grader: Optional[str] = typer.Option(None, "--grader", help="Grader of the new problems."),
    family: Optional[str] = typer.Option(None, "--family", help="Family name to give them."),
    threshold: float = typer.Option(0.1, "--threshold", help="Decontamination threshold."),
    data: Optional[Path] = typer.Option(None, "--data", help="Benchmark data folder."),
    backend: Optional[str] = typer.Option(None, help="Writer (and solver) backend."),
    model: Optional[str] = typer.Option(None, help="Writer (and solver) model."),
    base_url: Optional[str] = BaseUrlOpt,
    executor: str = ExecutorOpt,
    ray_address: Optional[str] = RayAddressOpt,
    workers: int = typer.Option(1, "--workers", "-w", min=1, max=64, help="Candidates the "
                                "local executor verifies at a time."),
    database_url: Optional[str] = DbOpt,
    config: Optional[Path] = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Have a model write new problems; keep the verified, new, uncontaminated ones."""
    _check_executor(executor)
    try:
        cfg = WriterConfig(n=n, per_call=per_call, k=k, min_agreement=min_agreement,
                           verify=verify, grader=grader, family=family,
                           contamination_threshold=threshold)
    except ValueError as e:
        raise ConfigError(f"invalid options: {e}") from None
    settings = _settings(config, backend=backend, model=model, base_url=base_url,
                         database_url=database_url)
    seed_problems = read_problems(seeds) if seeds else []
    pool = _executor(executor, workers, settings, ray_address)
    runtime = Runtime(settings)
    try:
        kept, report = model_problems(runtime.backend, config=cfg, seeds=seed_problems,
                                      topic=topic, runtime=runtime if k > 0 else None, data=data,
                                      executor=pool)
    finally:
        runtime.close()
        _shutdown(pool)
    write_problems(kept, out_file)
    dd, dc = report.dedupe, report.decontamination
    lines = [f"writer {report.writer}: {report.calls} calls, {report.drafts} drafts "
             f"({report.unparseable_replies} unparseable replies, {report.invalid_items} "
             f"invalid items)",
             f"near-duplicates removed: {dd.removed if dd else 0} (Jaccard >= "
             f"{dd.threshold if dd else '-'})",
             f"contaminated removed: {dc.removed if dc else 0} (n-gram overlap >= "
             f"{dc.threshold if dc else '-'}, {dc.removed_by_source if dc else {}})",
             f"verified {report.verified}, rejected {report.rejected}",
             f"kept {report.kept}, written to {out_file}"]
    _emit(report.model_dump(exclude={"dedupe": {"hits"}, "decontamination": {"hits"}}),
          as_json, lines)


def _since(value: Optional[str]) -> Optional[datetime]:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--since must be an ISO date or time, got {value!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _tags(values: list[str]) -> dict[str, str]:
    tags = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"--tag takes KEY=VALUE, got {item!r}")
        tags[key.strip()] = value.strip()
    return tags


@data_app.command("build")
def data_build(
    kind: str = typer.Argument(..., help="sft, tool, dpo or router."),
    out_dir: Path = typer.Option(..., "--out", help="Directory to save the dataset to."),
    name: Optional[str] = typer.Option(None, "--name", help="Registry name (default: derived)."),
    family: Optional[str] = typer.Option(None, "--family", help="Only this problem family."),
    model_id: Optional[str] = typer.Option(None, "--model-id", help="Only traces of this model."),
    since: Optional[str] = typer.Option(None, "--since", help="Only traces since (ISO date)."),
    tag: list[str] = typer.Option([], "--tag", help="Only traces with KEY=VALUE (repeatable)."),
    limit: int = typer.Option(100_000, "--limit", help="Read at most this many (newest) traces."),
    verified_only: bool = typer.Option(True, "--verified-only/--all",
                                       help="Only verified traces and good targets."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="Drop longer rows."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Model whose tokenizer "
                                            "measures rows (default: the settings' model)."),
    count_tokens: bool = typer.Option(False, "--count-tokens", help="Measure tokens of every "
                                      "row even without a cap."),
    mix: Optional[Path] = typer.Option(None, "--mix", help="JSONL of general chat examples."),
    mix_ratio: float = typer.Option(0.0, "--mix-ratio", help="Share of general examples."),
    problems: Optional[Path] = typer.Option(None, "--problems", help="JSONL of reference "
                                            "problems for traces without reference tags."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing directory."),
    database_url: Optional[str] = DbOpt,
    config: Optional[Path] = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Build a dataset from stored traces, save it and register it."""
    settings = _settings(config, database_url=database_url)
    measure = tokenizer or (settings.model if (max_tokens is not None or count_tokens) else None)
    try:
        spec = BuildSpec(kind=kind, out=out_dir, name=name, family=family, model_id=model_id,
                         since=_since(since), tags=_tags(tag), verified_only=verified_only,
                         max_tokens=max_tokens, tokenizer=measure, mix=mix, mix_ratio=mix_ratio,
                         limit=limit, overwrite=overwrite)
    except ValueError as e:
        raise ConfigError(f"invalid build options: {_first_error(e)}") from None
    refs = None
    if problems is not None:
        refs = {p.id: p for p in read_problems(problems)}
    store = _store(settings)
    try:
        record = build_dataset(store, spec, home=settings.home, problems=refs)
    finally:
        store.close()
    groups = record.meta.get("composition", {}).get("groups", {})
    lines = [f"built {record.kind} dataset {record.name}: {record.rows} rows from "
             f"{record.meta.get('used_traces')} traces ({record.meta.get('selected_traces')} "
             f"selected)", f"path {record.path}", f"content hash {record.content_hash}"]
    lines += [f"  {k}: {v['rows']} rows" + (f", {v['tokens']} tokens" if v.get("tokens") else "")
              for k, v in groups.items()]
    if record.meta.get("mix"):
        lines.append(f"mixed in {record.meta['mix']}")
    _emit(record.model_dump(mode="json", exclude={"trace_ids"}), as_json, lines)


@data_app.command("step-pairs")
def data_step_pairs(
    source: Path = typer.Option(..., "--from", help="A saved SFT dataset (its gold tool calls)."),
    out_dir: Path = typer.Option(..., "--out", help="Directory to save the pairs to."),
    per_family: int = typer.Option(240, "--per-family", min=1, help="Pairs per problem family, "
                                   "at most."),
    fewer_share: float = typer.Option(0.3, "--fewer-share", min=0.0, max=1.0,
                                      help="Share of several-step programs paired against one "
                                      "step fewer (the rest: one step more)."),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = JsonOpt,
) -> None:
    """Preference pairs that teach where a program stops, from a dataset's gold tool calls
    (`agentrt.data_synth.step_pairs`), saved for `training/train.py dpo --data`."""
    from datasets import Dataset, load_from_disk  # heavy: datasets

    if out_dir.exists():
        raise ConfigError(f"{out_dir} exists; choose a new --out")
    try:
        rows = load_from_disk(str(source))
    except (FileNotFoundError, ValueError, OSError) as e:
        raise ConfigError(f"{source} is not a saved dataset: {str(e).splitlines()[0][:300]}") \
            from None
    pairs = step_pairs(rows, seed=seed, fewer_share=fewer_share)
    by_family: dict[str, list[dict]] = {}
    for pair in pairs:
        by_family.setdefault(pair["family"] or "unknown", []).append(pair)
    rng, kept = random.Random(seed), []
    for family in sorted(by_family):
        group = by_family[family]
        rng.shuffle(group)
        kept += group[:per_family]
    if not kept:
        raise ConfigError(f"{source} holds no gold one-line python tool calls to pair")
    rng.shuffle(kept)
    Dataset.from_list(kept).save_to_disk(str(out_dir))
    counts = {f: min(len(g), per_family) for f, g in sorted(by_family.items())}
    kinds = {k: sum(p["kind"] == k for p in kept) for k in ("extra", "fewer")}
    _emit({"path": str(out_dir), "pairs": len(kept), "families": counts, "kinds": kinds},
          as_json, [f"{len(kept)} pairs ({kinds['extra']} one step more, {kinds['fewer']} one "
                    f"fewer) in {out_dir}", *(f"  {f}: {n}" for f, n in counts.items())])


def _first_error(e: ValueError) -> str:
    errors = getattr(e, "errors", None)
    if callable(errors):
        first = errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ()))
        return f"{loc}: {first['msg']}" if loc else str(first["msg"])
    return str(e)


@data_app.command("list")
def data_list(
    kind: Optional[str] = typer.Option(None, "--kind", help="Only this kind."),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000),
    database_url: Optional[str] = DbOpt,
    config: Optional[Path] = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List registered datasets, newest first."""
    store = _store(_settings(config, database_url=database_url))
    try:
        records = list_datasets(store, kind=kind, limit=limit)
    finally:
        store.close()
    if as_json:
        print(dumps([r.model_dump(mode="json") for r in records]))
        return
    if not records:
        out.print("no datasets registered")
        return

    table = Table()
    for col in ("name", "kind", "rows", "hash", "created", "path"):
        table.add_column(col)
    for r in records:
        table.add_row(markup(r.name), markup(r.kind), str(r.rows), markup(r.content_hash[:12]),
                      r.created_at.strftime("%Y-%m-%d %H:%M"), markup(r.path))
    out.print(table)


@data_app.command("show")
def data_show(
    name: str = typer.Argument(..., help="Dataset name or id."),
    database_url: Optional[str] = DbOpt,
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Show one dataset's record: filters, composition and source traces (as JSON)."""
    store = _store(_settings(config, database_url=database_url))
    try:
        record = get_dataset(store, name)
    finally:
        store.close()
    print(dumps(record.model_dump(mode="json"), indent=2))
