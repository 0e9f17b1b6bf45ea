"""data_synth package."""
