"""The bottom layer: plain data (`types`), the error tree (`errors`), settings (`settings`: the
models; `config`: loading them from file, environment and shipped model), JSON Lines files read
with errors named by line (`jsonl`), what the package ships (`shipped`: model names, adapter
manifests), text safe for terminals and logs (`display`), running a command with one-line errors
(`console`), cancellation signals (`cancel`), thread settings (`threads`) and the Prometheus
metrics (`metrics`). It imports nothing else of agentrt; every other layer may import it."""
