"""`training/iterate.py` end to end on the tiny preset, and killed runs that resume.

Both run real subprocesses: the script as a user runs it, and `kill_worker.py`, which SIGKILLs
itself at the worst moments (a dataset saved but not registered; a checkpoint half written).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentrt.store import TraceStore
from agentrt.training.registry import ModelRegistry, is_complete

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("kill_worker.py")

pytestmark = pytest.mark.slow


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTRT_")}
    return {**env, "AGENTRT_HOME": str(home), "PYTHONUNBUFFERED": "1"}


def _consistent(run_dir: Path, db_url: str) -> tuple[ModelRegistry, list]:
    """The registry and dataset registry name only complete things, each once."""
    from agentrt.data_synth.compile.registry import list_datasets

    store = TraceStore(db_url)
    registry = ModelRegistry(store)
    versions = registry.list()
    assert all(is_complete(v.path) for v in versions)
    datasets = list_datasets(store)
    names = [d.name for d in datasets]
    assert len(names) == len(set(names))
    on_disk = sorted(p.name for p in (run_dir / "datasets").iterdir())
    assert on_disk == sorted(Path(d.path).name for d in datasets)  # no leftovers, no orphans
    assert not list((run_dir / "models").glob("*.work"))  # checkpoints cleaned up
    return registry, datasets


def test_one_iteration_end_to_end(tmp_path, embedded_home):
    run_dir, db_url = tmp_path / "run", f"sqlite:///{tmp_path / 'agentrt.db'}"
    chat = tmp_path / "chat.jsonl"  # a user's own general chat data, mixed into SFT
    chat.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"Name a colour, please ({i})."},
        {"role": "assistant", "content": "Blue."}]}) + "\n" for i in range(50)))
    cmd = [sys.executable, str(REPO / "training" / "iterate.py"), "--preset", "tiny",
           "--out", str(run_dir), "--database-url", db_url, "--quiet",
           "--set", "general_mix=0.2", "--set", f"general_source={chat}",
           # every program of the self-solves written twice; an Optima stage on 2 problems
           "--set", "solve_tool_votes=2", "--set", "optima_problems=2",
           "--set", "optima.samples=2", "--set", "optima.rounds=1",
           "--set", 'optima.sft={"max_steps": 1, "batch_size": 2}',
           "--set", 'optima.dpo={"max_steps": 1, "batch_size": 1}']
    proc = subprocess.run(cmd, cwd=tmp_path, env=_env(embedded_home), capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "held-out auto" in proc.stdout  # the summary table
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "done"
    expected = ["setup", "baseline", "it1/problems", "it1/teacher", "it1/solve",
                "it1/datasets", "it1/sft", "it1/preference", "it1/optima", "it1/register",
                "it1/eval",
                "it1/gate", "report"]
    assert list(manifest["stages"]) == expected
    registry, datasets = _consistent(run_dir, db_url)
    base, candidate = sorted(registry.list(), key=lambda v: v.number)
    assert candidate.parent_id == base.id and candidate.training["preference"]["kind"] == "hypo"
    optima = manifest["stages"]["it1/optima"]["outputs"]
    assert optima["conversations"] == 4 and candidate.training["optima"] == optima
    # the tiny random model solves nothing: gold conversations stand in, and are trained on
    assert optima["gold"] == 2 and optima["sft_rows"] == 8
    assert Path(optima["path"]).parent.name == "it1-optima"  # what was registered
    hashes = {d.name: d.content_hash for d in datasets}
    assert {d["name"]: d["content_hash"] for d in candidate.datasets} == hashes
    scores = candidate.metrics[manifest["stages"]["setup"]["outputs"]["eval_key"]]
    assert set(scores["heldout"]) == {"fast", "slow", "auto"}
    gate = manifest["stages"]["it1/gate"]["outputs"]
    assert candidate.gate["promote"] == gate["promote"]
    assert (registry.promoted().id == candidate.id) == gate["promote"]
    sft = next(d for d in datasets if d.kind == "sft")
    assert "fast_check_relabelled" in sft.meta["composition"]["groups"]
    assert sft.meta["composition"]["groups"]["general"]["rows"] == \
        sft.meta["general_mix"]["taken"] > 0
    # Evaluation solves never reach training data.
    store = registry.store
    evals = {t.id for t in store.list_traces(limit=1000, tags={"split": "eval"})}
    assert evals and not evals & {t for d in datasets for t in d.trace_ids}
    assert (run_dir / "accuracy.png").stat().st_size > 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [r["iteration"] for r in summary["rows"]] == [0, 1]
    assert set(summary["stages"]["stages"]) >= {"teacher", "sft", "eval"}
    store.close()


def test_killed_in_dataset_build_and_mid_checkpoint_resumes(tmp_path, embedded_home):
    run_dir, db_url = tmp_path / "run", f"sqlite:///{tmp_path / 'agentrt.db'}"

    def start(point: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(WORKER), str(run_dir), db_url,
                               str(embedded_home), point], cwd=tmp_path,
                              env=_env(embedded_home), capture_output=True, text=True,
                              timeout=900)

    first = start("dataset")
    assert first.returncode == -9, first.stdout + first.stderr
    assert (run_dir / "datasets" / "it1-sft").is_dir()  # saved, never registered
    second = start("checkpoint")
    assert second.returncode == -9, second.stdout + second.stderr
    work = run_dir / "models" / "it1-sft.work"
    assert (work / "checkpoint-1" / "agentrt-complete.json").is_file()
    assert not (work / "checkpoint-2" / "agentrt-complete.json").exists()  # half written
    third = start("none")
    assert third.returncode == 0 and "run finished" in third.stdout, third.stdout + third.stderr
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "done" and manifest["starts"] == 3
    assert manifest["attempts"]["it1/datasets"] == 2 and manifest["attempts"]["it1/sft"] == 2
    sft = manifest["stages"]["it1/sft"]["outputs"]
    assert sft["resumed_from"].endswith("checkpoint-1") and sft["steps"] == 2
    registry, datasets = _consistent(run_dir, db_url)
    assert len(registry.list()) == 2
    assert sorted(d.name for d in datasets if d.kind == "sft") == ["run-it1-sft"]
    registry.store.close()


def test_a_run_resumes_under_a_setting_added_since_at_its_default_but_not_another_config(
        tmp_path):
    from agentrt.core.errors import ConfigError
    from agentrt.training.config import IterateConfig, load_config
    from agentrt.training.manifest import Manifest

    cfg = load_config("tiny").model_dump(mode="json")
    defaults = IterateConfig().model_dump(mode="json")
    older = {k: v for k, v in cfg.items() if k != "grpo"}  # written before `grpo` existed
    Manifest(tmp_path / "run", older)
    # The preset's own grpo settings differ from the default: that is another experiment.
    with pytest.raises(ConfigError, match="grpo"):
        Manifest(tmp_path / "run", cfg, defaults=defaults)
    same = {**cfg, "grpo": defaults["grpo"]}
    assert Manifest(tmp_path / "run", same, defaults=defaults).resumed
    with pytest.raises(ConfigError, match="seed"):
        Manifest(tmp_path / "run", {**same, "seed": 5}, defaults=defaults)
