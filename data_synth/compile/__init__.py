"""Compilers from stored traces to training datasets (HF `datasets`, saved to disk, registered).

    from agentrt.data_synth.compile import BuildSpec, build_dataset
    record = build_dataset(store, BuildSpec(kind="sft", out=Path("datasets/sft-1")))

Kinds: `sft` (every good LLM call as a chat example in the runtime's own prompt format, plus
the fast/slow decision), `tool` (OpenAI tool-call trajectories), `dpo` (right against wrong
replies to one prompt), `router` (problem text and whether fast thinking succeeded). Layout:
`spec` (what to build), `select` (which traces), `anatomy` (which calls are good targets),
`sft` / `tool` / `dpo` / `router` (rows), `mix` (general chat data), `tokens` (lengths under
the trained model's tokenizer), `writer` (hash, atomic save), `registry` (the store's
`datasets` table), `build` (all of it in order). Heavy libraries load on first use.
"""

from agentrt.data_synth.compile.build import COMPILERS, build_dataset, composition
from agentrt.data_synth.compile.registry import get_dataset, list_datasets
from agentrt.data_synth.compile.spec import KINDS, BuildSpec, DatasetRecord

__all__ = ["BuildSpec", "DatasetRecord", "KINDS", "COMPILERS", "build_dataset", "composition",
           "list_datasets", "get_dataset"]
