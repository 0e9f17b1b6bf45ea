"""Training under torch.distributed: `accelerate launch` with 2 CPU processes (gloo) trains the
model that one process trains on the same global batch; the shipped DeepSpeed and FSDP configs
load with accelerate's own loader.

Tolerance: both runs see the same rows in the same order (random sampling, one seed: rank r
takes micro-batch r of each global batch), so they differ only in the order of float32 sums
(per-rank sums, then the gloo all-reduce). That moves gradients by about 1e-7 relatively, and
Adam can pass such an error through undamped where a gradient is tiny, so the weights may differ
by a few float32 ulps (measured: 1.2e-7 for SFT, 6e-8 for DPO). The bound, 1e-5, is 1% of one
step's update (lr 1e-3) and the runs must move the weights by at least 1e-3, so a rank training
on its own rows without the all-reduce, or on other rows, fails it. Adam is blind to the scale
of the gradient, so the per-step losses are compared too (relative 1e-5).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TRAIN = REPO / "training" / "train.py"
CONFIGS = sorted((REPO / "training" / "configs").glob("*.yaml"))
WEIGHT_TOL = 1e-5
LOSS_RTOL = 1e-5
COMMON = ["lr_scheduler=constant", "warmup_ratio=0", "learning_rate=0.001", "save_steps=100",
          "logging_steps=1"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(processes: int, kind: str, model: Path, data: Path, out: Path,
           sets: list[str]) -> dict:
    """Run training/train.py on `processes` CPU processes; the result it printed (rank 0 only)."""
    launcher = [sys.executable]
    if processes > 1:
        # accelerate 1.x starts CPU processes itself only through MPI; --multi_gpu starts them
        # with torchrun, and with no GPU visible each one trains on the CPU over gloo.
        launcher += ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                     str(processes), "--num_machines", "1", "--mixed_precision", "no",
                     "--dynamo_backend", "no", "--main_process_port", str(_free_port())]
    cmd = [*launcher, str(TRAIN), kind, "--model", str(model), "--data", str(data),
           "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300,
                          cwd=out.parent)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    start = proc.stdout.index("{\n")
    result, end = json.JSONDecoder().raw_decode(proc.stdout, start)
    assert "{\n" not in proc.stdout[end:]  # printed once
    return result


def _compare(tiny: Path, one: Path, two: Path, r1: dict, r2: dict) -> None:
    from safetensors.torch import load_file

    base, w1, w2 = (load_file(str(p / "model.safetensors")) for p in (tiny, one, two))
    assert set(w1) == set(w2) == set(base)  # both plain models (LoRA merged on rank 0)
    diff = max((w1[k] - w2[k]).abs().max().item() for k in w1)
    moved = max((w1[k] - base[k]).abs().max().item() for k in w1)
    assert moved >= 1e-3 and diff <= WEIGHT_TOL, (diff, moved)
    assert r1["steps"] == r2["steps"] and len(r1["losses"]) == len(r2["losses"]) == r1["steps"]
    assert r2["losses"] == pytest.approx(r1["losses"], rel=LOSS_RTOL)
    assert r1["extra"]["processes"] == 1
    assert r2["extra"]["processes"] == 2 and r2["extra"]["backend"] == "gloo"
    names = {p.name for p in two.parent.iterdir()}
    assert not {n for n in names if n.endswith((".work", ".saving")) or n.startswith(".")}


def _datasets(root: Path) -> tuple[Path, Path]:
    from datasets import Dataset

    sft = [{"messages": [{"role": "system", "content": "You compute."},
                         {"role": "user", "content": f"What is {i} + {i}?"},
                         {"role": "assistant", "content": f"Final answer: {2 * i}"}]}
           for i in range(16)]
    pairs = [{"prompt": [{"role": "user", "content": f"What is {i} + {i}?"}],
              "chosen": [{"role": "assistant", "content": f"Final answer: {2 * i}"}],
              "rejected": [{"role": "assistant", "content": f"Final answer: {2 * i + 1}"}]}
             for i in range(8)]
    Dataset.from_list(sft).save_to_disk(str(root / "sft"))
    Dataset.from_list(pairs).save_to_disk(str(root / "dpo"))
    return root / "sft", root / "dpo"


def test_two_processes_train_what_one_process_trains(tiny_llama_dir, tmp_path):
    sft, dpo = _datasets(tmp_path)
    # Same rows in the same order on 1 and 2 processes: group_by_length would sort within
    # groups sized by the per-device batch, which differs between the two runs.
    full = [*COMMON, "lora=null", "max_steps=3", "group_by_length=false"]
    r1 = _train(1, "sft", tiny_llama_dir, sft, tmp_path / "sft-1", [*full, "batch_size=4"])
    r2 = _train(2, "sft", tiny_llama_dir, sft, tmp_path / "sft-2", [*full, "batch_size=2"])
    _compare(tiny_llama_dir, tmp_path / "sft-1", tmp_path / "sft-2", r1, r2)

    lora = [*COMMON, 'lora={"r": 4, "alpha": 8}', "max_steps=2"]
    r1 = _train(1, "dpo", tiny_llama_dir, dpo, tmp_path / "dpo-1", [*lora, "batch_size=4"])
    r2 = _train(2, "dpo", tiny_llama_dir, dpo, tmp_path / "dpo-2", [*lora, "batch_size=2"])
    _compare(tiny_llama_dir, tmp_path / "dpo-1", tmp_path / "dpo-2", r1, r2)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_accelerate_configs_load(path, monkeypatch):
    """What accelerate does with each config short of starting GPUs: its loader (known keys,
    valid enums), every nested key a launch option (accelerate ignores unknown ones silently),
    and the FSDP or DeepSpeed plugin built from the environment `accelerate launch` would set.
    DeepSpeed need not be installed: the plugin only builds DeepSpeed's config; DeepSpeed's own
    checks of it (at `deepspeed.initialize`) are not run here."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import DeepSpeedPlugin, FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    config = load_config_from_file(str(path))
    assert config.mixed_precision == "bf16" and not config.use_cpu
    parser = launch_command_parser()
    options = {a.dest for a in parser._actions}
    nested = config.fsdp_config or config.deepspeed_config
    assert nested and not [k for k in nested if k not in options]
    args, defaults, _ = _validate_launch_command(parser.parse_args(["--config_file", str(path),
                                                                    "train.py"]))
    for name in [k for k in os.environ if k.startswith(("ACCELERATE_", "FSDP_"))]:
        monkeypatch.delenv(name)
    if config.distributed_type == "FSDP":
        for k, v in prepare_multi_gpu_env(args).items():
            if k.startswith(("ACCELERATE_", "FSDP_")):
                monkeypatch.setenv(k, v)
        plugin = FullyShardedDataParallelPlugin()
        assert plugin.fsdp_version == 2 and plugin.state_dict_type.name == "FULL_STATE_DICT"
        assert plugin.auto_wrap_policy is not None and plugin.reshard_after_forward is True
    else:
        assert config.distributed_type == "DEEPSPEED"
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
        for k, v in prepare_deepspeed_cmd_env(args)[1].items():
            if k.startswith("ACCELERATE_"):
                monkeypatch.setenv(k, v)
        plugin = DeepSpeedPlugin()
        stage = nested["zero_stage"]
        assert plugin.zero_stage == stage == int(path.stem[-1])
        zero = plugin.deepspeed_config["zero_optimization"]
        assert zero["stage"] == stage
        assert zero["stage3_gather_16bit_weights_on_model_save"] is (stage == 3)
