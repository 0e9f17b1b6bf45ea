"""The self-improvement loop, stage by stage, resumable: what `training/iterate.py` runs.

    setup                 base model, frozen held-out set, base registered (and promoted if
                          nothing is)
    baseline              the untrained base evaluated on every mode (the run's reference)
    it<k>/problems        generate training problems (fresh seeds, held-out texts excluded)
    it<k>/teacher         gold (or teacher-model) traces of them
    it<k>/solve           the current model solves some of them, several samples, auto mode
    it<k>/datasets        SFT and preference datasets from this iteration's traces, registered
    it<k>/sft             supervised fine-tuning from the current model
    it<k>/preference      HyPO (or DPO) on the pairs, or GRPO on the runtime's own calls,
                          from the SFT model
    it<k>/register        the candidate becomes a model version (parent, datasets, configs)
    it<k>/eval            candidate (and promoted, if not yet scored) on the frozen set
    it<k>/gate            promote the candidate only if it beats the promoted model by the margin
    report                summary table, accuracy plot, summary.json

Each stage's outputs are complete before the manifest records it (`agentrt.training.manifest`); a
killed run started again with the same command skips done stages, resumes training from its
last complete checkpoint, reuses registered datasets and versions, and re-runs only the stage
that was interrupted. This module wires the stages; each one's work lives in `data`,
`solving`, `sft`, `dpo`/`hypo`, `registry` and `report`.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentrt.core.threads import on_own_thread
from agentrt.data_synth.compile.mix import read_chat_examples
from agentrt.data_synth.general import general_examples
from agentrt.llm.models import pull_model, resolve_model
from agentrt.llm.tiny import build_tiny_llama
from agentrt.training import data as D
from agentrt.training.config import TINY_BASE, IterateConfig
from agentrt.training.data import heldout_problems, write_problems
from agentrt.training.dpo import train_dpo
from agentrt.training.grpo import train_grpo
from agentrt.training.grpo_data import build_grpo_dataset
from agentrt.training.hypo import train_hypo
from agentrt.training.manifest import Manifest
from agentrt.training.optima import optima_problems, optima_round
from agentrt.training.optima_config import OptimaSettings
from agentrt.training.registry import ModelRegistry, ModelVersion, gate, is_complete
from agentrt.training.report import write_report
from agentrt.training.sft import train_sft
from agentrt.training.solving import (VersionRuntime, evaluate, open_runtime, self_solve_stage,
                                      stage_executor, teacher_stage)

__all__ = ["RunContext", "run_iterate", "eval_key"]


@dataclass
class RunContext:
    """What every stage of one run shares."""

    cfg: IterateConfig
    dir: Path
    home: Path
    db_url: str
    store: Any
    registry: ModelRegistry
    manifest: Manifest
    tools: Any
    progress: Any

    @property
    def run_id(self) -> str:
        return self.dir.name

    def tags(self, k: int) -> dict[str, str]:
        return {"iterate_run": self.run_id, "iteration": str(k)}

    def label(self, version: ModelVersion) -> str:
        return f"{Path(self.cfg.base_model).name}@{version.label}"

    def runtime(self, version: ModelVersion, **limits: Any) -> Any:
        return open_runtime(self.cfg, version.path, self.label(version), store=self.store,
                            tools=self.tools, home=self.home, db_url=self.db_url, **limits)

    def executor(self, version: ModelVersion, **limits: Any) -> Any:
        """Where solves on `version` run (threads here, or Ray workers that load it)."""
        return stage_executor(self.cfg, VersionRuntime(self.cfg, version.path,
                                                       self.label(version), self.home,
                                                       self.db_url, limits))


def eval_key(heldout: Path, cfg: IterateConfig) -> str:
    """Names a version's scores on this frozen set under these limits and modes."""
    h = hashlib.sha256(heldout.read_bytes())
    h.update(repr((cfg.limits, cfg.prompt_profile, cfg.eval_modes, cfg.gsm8k,
                   cfg.gsm8k_modes)).encode())
    return f"eval-{h.hexdigest()[:12]}"


def _base_path(ctx: RunContext) -> str:
    cfg = ctx.cfg
    if cfg.base_model == TINY_BASE:
        out = ctx.dir / "models" / "base-tiny"
        if not is_complete(out):
            vocab = pull_model("smollm2-135m", home=ctx.home, progress=False)
            build_tiny_llama(out, vocab_from=vocab, seed=cfg.seed)
        return str(out.resolve())

    return resolve_model(cfg.base_model, ctx.home, progress=True, database_url=ctx.db_url)


def _version_at(ctx: RunContext, path: str) -> ModelVersion | None:
    resolved = str(Path(path).resolve())
    return next((v for v in ctx.registry.list(limit=10_000) if v.path == resolved), None)


def _setup(ctx: RunContext) -> dict[str, Any]:
    cfg = ctx.cfg
    path = _base_path(ctx)
    base = _version_at(ctx, path) or ctx.registry.register(
        path, base_model=cfg.base_model, note=f"base model (untrained), run {ctx.run_id}")
    if ctx.registry.promoted() is None:
        ctx.registry.promote(base.id, reason=f"base model of run {ctx.run_id}")
    held = heldout_problems(cfg.families, cfg.difficulties, cfg.eval_per_family, cfg.eval_seed)
    heldout = write_problems(held, ctx.dir / "heldout.jsonl")
    return {"base_id": base.id, "base_path": path, "heldout": str(heldout),
            "heldout_n": len(held), "eval_key": eval_key(heldout, cfg)}


def _scores(ctx: RunContext, version: ModelVersion, key: str, k: int) -> dict[str, Any]:
    """A version's evaluation on the frozen set, run now unless the registry has it."""
    current = ctx.registry.get(version.id)
    if key in current.metrics:
        return current.metrics[key]
    setup = ctx.manifest.outputs("setup")
    with ctx.runtime(current) as rt:
        result = evaluate(ctx.cfg, rt, heldout=Path(setup["heldout"]),
                          out=ctx.dir / "evals" / current.label, run_tags=ctx.tags(k),
                          progress=ctx.progress, executor=ctx.executor(current))
    ctx.registry.update(current.id, metrics={key: result})
    return result


def _accuracies(scores: dict[str, Any]) -> dict[str, float]:
    return {m: float(v["accuracy"]) for m, v in scores["heldout"].items()}


def _train(ctx: RunContext, k: int, current: ModelVersion, data: dict[str, Any]) -> dict:
    cfg, models = ctx.cfg, ctx.dir / "models"
    sft_out = models / f"it{k}-sft"

    def sft() -> dict[str, Any]:
        if (sft_out / "agentrt-version.json").is_file():
            return {"path": str(sft_out.resolve()), "reused": True}
        r = on_own_thread(train_sft, current.path, data["sft"]["path"], sft_out,
                          cfg.sft_settings(), home=ctx.home,
                          callbacks=[ctx.progress.trainer_callback("sft")])
        return r.model_dump()

    sft_result = ctx.manifest.run_stage(f"it{k}/sft", sft)

    def preference() -> dict[str, Any]:
        key = "grpo" if cfg.preference == "grpo" else "dpo"
        if cfg.preference == "none" or data.get(key) is None:
            return {"skipped": "no preference step" if cfg.preference == "none"
                    else "no GRPO prompts" if key == "grpo" else "no preference pairs",
                    "path": sft_result["path"]}
        out = models / f"it{k}-{cfg.preference}"
        if (out / "agentrt-version.json").is_file():
            return {"path": str(out.resolve()), "reused": True}
        callbacks = [ctx.progress.trainer_callback(cfg.preference)]
        if key == "grpo":
            r = on_own_thread(train_grpo, sft_result["path"], data["grpo"]["path"], out,
                              cfg.grpo_settings(), home=ctx.home, callbacks=callbacks)
            return r.model_dump()

        fn = train_hypo if cfg.preference == "hypo" else train_dpo
        r = on_own_thread(fn, sft_result["path"], data["dpo"]["path"], out, cfg.dpo_settings(),
                          home=ctx.home, callbacks=callbacks)
        return r.model_dump()

    pref_result = ctx.manifest.run_stage(f"it{k}/preference", preference)
    return {"sft": sft_result, "preference": pref_result}


def _iteration(ctx: RunContext, k: int, current: ModelVersion) -> None:
    cfg, m, tags = ctx.cfg, ctx.manifest, ctx.tags(k)
    setup = m.outputs("setup")
    held = D.read_problems(Path(setup["heldout"]))
    path = ctx.dir / f"problems-it{k}.jsonl"

    def problems() -> dict[str, Any]:
        ps = D.training_problems(cfg.families, cfg.difficulties, cfg.problems, cfg.seed, k, held)
        real, reports = [], {}
        if cfg.real_problems:
            real, reports = D.real_problems(
                cfg.real_sources, cfg.real_problems, cfg.seed, k, ctx.home, held,
                progress=lambda i, n: ctx.progress("compile real problems", i, n),
                offset=cfg.real_offset, variants=cfg.real_variants,
                originals=cfg.real_originals)
            ps = ps + real
            random.Random(cfg.seed * 17 + k).shuffle(ps)  # self-solves draw from both kinds
        D.write_problems(ps, path)
        return {"path": str(path), "n": len(ps), "real": len(real),
                "real_sources": {name: {key: r[key] for key in ("rows", "kept", "dropped",
                                                                 "contaminated")}
                                 for name, r in reports.items()}}

    m.run_stage(f"it{k}/problems", problems)
    ps = D.read_problems(path)
    m.run_stage(f"it{k}/teacher", lambda: teacher_stage(
        cfg, ps, store=ctx.store, tools=ctx.tools, home=ctx.home, db_url=ctx.db_url,
        run_tags=tags, progress=ctx.progress))

    def solve() -> dict[str, Any]:
        if cfg.n_solve == 0:
            return {"skipped": "solve_problems is 0"}
        with ctx.runtime(current, tool_votes=cfg.solve_tool_votes) as rt:
            return self_solve_stage(cfg, ps[:cfg.n_solve], rt, run_tags=tags,
                                    progress=ctx.progress,
                                    executor=ctx.executor(current,
                                                          tool_votes=cfg.solve_tool_votes))

    m.run_stage(f"it{k}/solve", solve)
    data = m.run_stage(f"it{k}/datasets", lambda: _datasets(ctx, k, current))
    trained = _train(ctx, k, current, data)

    final = trained["preference"]["path"]
    if cfg.optima_problems:
        final = m.run_stage(f"it{k}/optima", lambda: _optima(ctx, k, final))["path"]

    def register() -> dict[str, Any]:
        found = _version_at(ctx, final)
        version = found or ctx.registry.register(
            final, base_model=cfg.base_model, parent_id=current.id,
            datasets=[d for d in (data["sft"], data.get("dpo"), data.get("grpo")) if d],
            training={"sft": trained["sft"], "preference": trained["preference"],
                      "optima": m.outputs(f"it{k}/optima") if cfg.optima_problems else None,
                      "config": cfg.model_dump(mode="json")},
            note=f"run {ctx.run_id}, iteration {k}")
        return {"version_id": version.id, "label": version.label}

    candidate = ctx.registry.get(m.run_stage(f"it{k}/register", register)["version_id"])
    key = setup["eval_key"]
    m.run_stage(f"it{k}/eval", lambda: {"candidate": _scores(ctx, candidate, key, k)})
    _gate(ctx, k, candidate, key)


def _optima(ctx: RunContext, k: int, model: str) -> dict[str, Any]:
    """The Optima stage: a round of team conversations from the iteration's trained model."""
    cfg, s = ctx.cfg, OptimaSettings(**ctx.cfg.optima)
    problems = optima_problems(cfg.optima_problems, cfg.seed * 7919 + k, s.task)
    with open_runtime(cfg, model, f"{Path(cfg.base_model).name}@it{k}-pre-optima",
                      store=ctx.store, tools=ctx.tools, home=ctx.home, db_url=ctx.db_url) as rt:
        return optima_round(rt, model, problems, ctx.dir / "models" / f"it{k}-optima",
                            s, base_model=_base_path(ctx),
                            tags=ctx.tags(k), home=ctx.home, progress=ctx.progress,
                            callbacks=[ctx.progress.trainer_callback("optima")])


def _general(ctx: RunContext) -> list[list[dict[str, str]]] | None:
    """The general chat conversations to mix into SFT data, or None without a mix."""
    cfg = ctx.cfg
    if cfg.general_mix <= 0:
        return None
    source = cfg.general_source
    if source.startswith("model:"):
        model = resolve_model(source[len("model:"):].strip(), ctx.home, progress=True,
                              database_url=ctx.db_url)
    elif source == "self":
        model = _base_path(ctx)
    else:
        return read_chat_examples(source)

    path = general_examples(model, cfg.general_requests,
                            cache_dir=ctx.home / "data" / "general",
                            progress=lambda i, n: ctx.progress("base replies (general mix)",
                                                               i, n))
    return read_chat_examples(path)


def _datasets(ctx: RunContext, k: int, current: ModelVersion) -> dict[str, Any]:
    cfg, out = ctx.cfg, ctx.dir / "datasets"
    tags = {**ctx.tags(k), "split": "train"}
    limit = cfg.sft_settings().max_length
    sft = D.build_sft_dataset(ctx.store, tags=tags, out=out / f"it{k}-sft",
                              name=f"{ctx.run_id}-it{k}-sft", tokenizer=current.path,
                              max_tokens=limit, relabel=cfg.relabel_checks,
                              caps=cfg.sft_step_caps, general=_general(ctx),
                              general_mix=cfg.general_mix, seed=cfg.seed * 1009 + k,
                              home=ctx.home)
    dpo = grpo = None
    if cfg.preference == "grpo":
        grpo = build_grpo_dataset(ctx.store, tags=tags, out=out / f"it{k}-grpo",
                                  name=f"{ctx.run_id}-it{k}-grpo", tokenizer=current.path,
                                  max_prompt_tokens=limit, home=ctx.home)
    elif cfg.preference != "none":
        dpo = D.build_dpo_dataset(ctx.store, tags=tags, out=out / f"it{k}-dpo",
                                  name=f"{ctx.run_id}-it{k}-dpo", tokenizer=current.path,
                                  max_tokens=cfg.dpo_settings().max_length, home=ctx.home)
    return {"sft": D.record_summary(sft), "dpo": D.record_summary(dpo) if dpo else None,
            "grpo": D.record_summary(grpo) if grpo else None}


def _gate(ctx: RunContext, k: int, candidate: ModelVersion, key: str) -> None:
    def decide() -> dict[str, Any]:
        promoted = ctx.registry.promoted()
        if promoted is not None and promoted.id == candidate.id:  # promoted before a kill
            return {"promote": True, "reason": "already promoted", "version_id": candidate.id}
        cand = _accuracies(_scores(ctx, candidate, key, k))
        prom = _accuracies(_scores(ctx, promoted, key, k)) if promoted is not None else None
        decision = gate(cand, prom, margin=ctx.cfg.gate_margin, modes=ctx.cfg.gate_modes)
        ctx.registry.update(candidate.id, gate={**decision.model_dump(),
                                                "against": promoted.id if promoted else None})
        if decision.promote:
            ctx.registry.promote(candidate.id, reason=decision.reason)
        return {**decision.model_dump(), "version_id": candidate.id,
                "against": promoted.id if promoted else None}

    ctx.manifest.run_stage(f"it{k}/gate", decide)


def _current_after(ctx: RunContext, k: int) -> str:
    """The model the next iteration starts from: the newest candidate this run promoted."""
    for j in range(k, 0, -1):
        gate_out = ctx.manifest.data.stages.get(f"it{j}/gate")
        if gate_out is not None and gate_out.outputs.get("promote"):
            return gate_out.outputs["version_id"]
    return ctx.manifest.outputs("setup")["base_id"]


def _check_inputs(ctx: RunContext) -> None:
    """The user's data files that stages still to run will read, checked before any stage."""
    cfg = ctx.cfg

    def left(stage: str) -> bool:
        return any(not ctx.manifest.done(f"it{k}/{stage}") for k in range(1, cfg.iterations + 1))

    chat = cfg.general_mix > 0 and cfg.general_source != "self" \
        and not cfg.general_source.startswith("model:")
    D.check_data_files(cfg.real_sources if cfg.real_problems and left("problems") else [],
                       cfg.general_source if chat and left("datasets") else None)


def run_iterate(ctx: RunContext) -> dict[str, Any]:
    """Run (or resume) every stage of the run; returns the report stage's summary."""
    _check_inputs(ctx)
    setup = ctx.manifest.run_stage("setup", lambda: _setup(ctx))
    base = ctx.registry.get(setup["base_id"])
    ctx.manifest.run_stage("baseline", lambda: {"base": _scores(ctx, base, setup["eval_key"], 0)})
    for k in range(1, ctx.cfg.iterations + 1):
        if not ctx.manifest.done(f"it{k}/gate"):
            _iteration(ctx, k, ctx.registry.get(_current_after(ctx, k - 1)))
    summary = ctx.manifest.run_stage("report", lambda: write_report(ctx))
    ctx.manifest.finish("done")
    return summary
