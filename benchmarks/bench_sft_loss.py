"""One SFT step's loss and backward on a CPU: TRL's `compute_loss` against the wrapper's.

    .venv/bin/python benchmarks/bench_sft_loss.py --data <sft dataset dir> --threads 2

The same batch (the first `--batch` rows of the dataset after a fixed shuffle, collated by the
trainer), the same model (the embedded base, LoRA on the top `--top-layers` layers, factors
randomised so the gradients are not zero), timed as loss plus backward: TRL's own
`SFTTrainer.compute_loss` (its fused head projects every position through the output layer on
a CPU) and `agentrt.training.sft.sft_trainer_class()`'s (the labelled positions only). The two
alternate, `--repeat` times each after one warm-up; best and median count. Also printed: the
batch's tokens, how many carry a label, and the two losses (they must agree). Figures go to
benchmarks/README.md; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="a saved SFT dataset directory")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--top-layers", type=int, default=15)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    from agentrt.core.threads import configure
    from agentrt.llm.models import resolve_model
    from agentrt.training.common import LoraSettings
    from agentrt.training.sft import load_chat_dataset, sft_trainer_class, to_prompt_completion
    from agentrt.training.sft_config import SFTSettings

    configure(args.threads)
    path = resolve_model(args.model, None, progress=False)
    data = load_chat_dataset(args.data).shuffle(seed=0).select(range(args.batch))
    data, _ = to_prompt_completion(data)
    settings = SFTSettings(max_steps=1, batch_size=args.batch, group_by_length=False,
                           lora=LoraSettings(top_layers=args.top_layers))
    net = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    trl_args = settings.to_trl(tempfile.mkdtemp(prefix="bench-sft-loss-"), use_cuda=False)
    trl_args.completion_only_loss = True
    trainer = sft_trainer_class()(
        model=net, args=trl_args, train_dataset=data,
        processing_class=AutoTokenizer.from_pretrained(path),
        peft_config=settings.lora.peft_config(net.config.num_hidden_layers))
    torch.manual_seed(0)
    for _, param in trainer.model.named_parameters():
        if param.requires_grad:
            torch.nn.init.normal_(param, std=0.02)
    batch = next(iter(trainer.get_train_dataloader()))
    paths = {"TRL": SFTTrainer.compute_loss, "wrapper": type(trainer).compute_loss}
    times: dict[str, list[float]] = {k: [] for k in paths}
    losses: dict[str, float] = {}
    for i in range(args.repeat + 1):
        for name in (list(paths) if i % 2 == 0 else list(paths)[::-1]):
            trainer.model.zero_grad()
            started = time.perf_counter()
            loss = paths[name](trainer, trainer.model, dict(batch))
            loss.backward()
            if i:  # the first round warms up
                times[name].append(time.perf_counter() - started)
            losses[name] = float(loss.detach())
    labelled = int((batch["labels"][:, 1:] != -100).sum())
    print(f"batch {tuple(batch['input_ids'].shape)}, {int(batch['attention_mask'].sum())} "
          f"tokens, {labelled} labelled; threads {torch.get_num_threads()}")
    for name, ts in times.items():
        print(f"{name}: loss {losses[name]:.5f}, best {min(ts):.2f} s, "
              f"median {statistics.median(ts):.2f} s")
    print(f"wrapper / TRL time (best): {min(times['wrapper']) / min(times['TRL']):.2f}")


if __name__ == "__main__":
    main()
