"""OpenTelemetry export of finished solves (off by default; see docs/TELEMETRY.md).

- `spans`: a stored trace as a span tree (solve, round, node, LLM call, tool run) with the
  GenAI semantic conventions, as plain data.
- `otlp`: `SpanExport`, which sends those spans to an OTLP/HTTP endpoint from a tracer provider
  of its own, and `open_export(settings)`, which builds it when the settings switch it on.

The runtime calls `SpanExport.export` when it finishes a trace and `close` when it closes. This
package reads store records; it does not know how solves run, and imports the OpenTelemetry SDK
only when export is on.
"""

from agentrt.telemetry.otlp import SpanExport, open_export, resolve_endpoint
from agentrt.telemetry.spans import EventPlan, SpanPlan, plan_spans

__all__ = ["SpanExport", "open_export", "resolve_endpoint", "SpanPlan", "EventPlan", "plan_spans"]
