"""Training: the runtime's traces become better models, gated before they are served.

Layout: `sft_config`/`sft`, `dpo_config`/`dpo` and `hypo` (thin wrappers over TRL, one
function each), `common` (LoRA settings, results, checkpoints, atomic model output),
`registry` (model versions, the gate, the promoted pointer), `data`, `solving`, `pipeline`,
`manifest` and `report` (the self-improvement loop), `config` (its settings and presets),
`iterate.py` and `train.py` (command lines), `configs/` (accelerate configs for DeepSpeed ZeRO
and FSDP). See docs/TRAINING.md. Nothing in `agentrt` imports this package.
"""
