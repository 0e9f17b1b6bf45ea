"""The process sandbox for model-written Python: see docs/SANDBOX.md for tiers and threat model.

`Sandbox` runs a program (or a preloaded worker function) in a fresh confined process and
returns a `SandboxResult`; `isolation_info()` reports the tier this machine allows. Nothing
here imports the tools built on top of it.
"""

from agentrt.tools.sandbox.collect import RunHandle
from agentrt.tools.sandbox.host import DEFAULT_PRELOAD, Sandbox, cancel_on, isolation_info
from agentrt.tools.sandbox.types import IsolationInfo, SandboxLimits, SandboxResult

__all__ = ["Sandbox", "SandboxLimits", "SandboxResult", "IsolationInfo", "RunHandle", "isolation_info", "DEFAULT_PRELOAD",
           "cancel_on"]
