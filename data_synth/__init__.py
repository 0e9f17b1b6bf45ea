"""Data synthesis: verifiable problem generators (`data_synth.generators`) and decontamination
against public test sets (`data_synth.decontaminate`).

Submodules are imported on use, so importing this package stays cheap.
"""
