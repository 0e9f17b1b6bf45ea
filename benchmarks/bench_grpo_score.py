"""GRPO's scoring of sampled replies on a CPU: the compact fused head against TRL's.

    .venv/bin/python benchmarks/bench_grpo_score.py --prompt-tokens 400 --completion-tokens 96

GRPO scores each batch of sampled replies with the policy (forward and backward) and, with a
KL term, with the reference. TRL's fused LM head, without Triton, projects every position of
prompt and reply through the 49,152-wide output layer; `agentrt.training.grpo.grpo_trainer_class`
projects the replies' positions only. This times the policy's forward and backward of one batch
(`_get_per_token_logps_and_entropies`, entropies included) through each trainer, LoRA on the top
layers as the presets train, the two alternating, best of `--repeat`. Token ids are random: the
cost does not depend on them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def _trainer(cls, model_dir: str, work: Path, top_layers: int):
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agentrt.training.common import LoraSettings
    from agentrt.training.grpo_config import GRPOSettings

    settings = GRPOSettings(max_steps=1, batch_size=2, num_generations=2,
                            lora=LoraSettings(r=16, alpha=32, top_layers=top_layers))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    net = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    rows = Dataset.from_list([{"prompt": [{"role": "user", "content": "1+1?"}]}] * 2)
    return cls(model=net, reward_funcs=[lambda completions, **_: [0.0] * len(completions)],
               args=settings.to_trl(work, use_cuda=False), train_dataset=rows,
               processing_class=tokenizer,
               peft_config=settings.lora.peft_config(net.config.num_hidden_layers))


def _step(trainer, ids, attention, keep: int) -> float:
    trainer.model.zero_grad()
    started = time.perf_counter()
    logps, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, attention, keep,
                                                             compute_entropy=True)
    (logps * attention[:, -keep:]).sum().backward()
    return time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--batch", type=int, default=8, help="sampled replies per batch")
    p.add_argument("--prompt-tokens", type=int, default=400)
    p.add_argument("--completion-tokens", type=int, default=96)
    p.add_argument("--top-layers", type=int, default=15)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()

    import torch
    from trl import GRPOTrainer

    from agentrt.llm.models import resolve_model
    from agentrt.training.grpo import grpo_trainer_class

    if args.threads:
        torch.set_num_threads(args.threads)
    model_dir = resolve_model(args.model, progress=True)
    length = args.prompt_tokens + args.completion_tokens
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(100, 40_000, (args.batch, length), generator=g)
    attention = torch.ones_like(ids)
    with tempfile.TemporaryDirectory() as tmp:
        kinds = {"TRL's fused head": _trainer(GRPOTrainer, model_dir, Path(tmp) / "trl",
                                              args.top_layers),
                 "compact head": _trainer(grpo_trainer_class(), model_dir, Path(tmp) / "mine",
                                          args.top_layers)}
        times: dict[str, list[float]] = {k: [] for k in kinds}
        for _ in range(args.repeat):
            for name, trainer in kinds.items():
                times[name].append(_step(trainer, ids, attention, args.completion_tokens))
    tokens = args.batch * length
    base = min(times["TRL's fused head"])
    print(f"batch {args.batch} x ({args.prompt_tokens} prompt + {args.completion_tokens} reply) "
          f"tokens, LoRA on the top {args.top_layers} layers, threads "
          f"{torch.get_num_threads()}")
    for name, ts in times.items():
        best = min(ts)
        print(f"{name:>18}: {best:6.2f} s  ({tokens / best:6.0f} tokens/s, "
              f"{base / best:.2f}x TRL's)")


if __name__ == "__main__":
    main()
