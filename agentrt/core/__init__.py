"""The bottom layer: plain data (`types`), the error tree (`errors`), settings (`config`),
escaping for terminals and logs (`display`) and thread helpers (`threads`). It imports nothing
else of agentrt; every other layer may import it."""
