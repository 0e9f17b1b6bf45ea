"""Data synthesis: verifiable problems, teacher traces, and datasets compiled from traces.

- `agentrt.data_synth.generators`: seeded problem generators with exact answers and solution programs;
- `agentrt.data_synth.decontaminate`: n-gram decontamination against test sets, near-duplicate removal;
- `agentrt.data_synth.model_problems`: problems written by a model, kept only when verified;
- `agentrt.data_synth.teacher`: gold traces scripted from solution programs through the runtime's real
  graphs, and graded solves by a teacher model;
- `agentrt.data_synth.compile`: SFT, tool-use, preference and router datasets built from stored traces,
  hashed, saved atomically and registered in the store;
- `agentrt.data_synth.cli`: the `agentrt synth` and `agentrt data` commands.

See docs/DATA.md. Submodules are imported on use, so importing this package stays cheap.
"""
