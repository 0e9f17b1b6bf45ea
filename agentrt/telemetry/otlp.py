"""Send finished solves to an OTLP/HTTP endpoint as OpenTelemetry spans.

`SpanExport` owns its own `TracerProvider` (a `BatchSpanProcessor` in front of the OTLP/HTTP
protobuf exporter), so agentrt's spans never go through, nor disturb, a provider the host
application set up; with `otel_set_global` it also becomes the process's global provider. Each
solve is turned into spans by `agentrt.telemetry.spans` and queued; the batch processor sends
them from its own thread, so a solve never waits on the network. `close()` flushes what is
queued and stops the thread. The OpenTelemetry trace id is the agentrt trace id, so a trace
found in Jaeger or Phoenix is the one `agentrt traces show <id>` prints.

Export never raises once it is built: a failure to read, convert or send a trace is logged and
the solve goes on. Building it checks the configuration and raises `ConfigError`. It knows the
settings and the store; it does not know how solves run.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from agentrt.core.config import Settings
from agentrt.core.errors import ConfigError
from agentrt.store import TraceStore
from agentrt.telemetry.spans import SpanPlan, plan_spans

__all__ = ["SpanExport", "open_export", "resolve_endpoint", "DEFAULT_ENDPOINT", "TRACES_PATH"]

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "http://localhost:4318"
TRACES_PATH = "/v1/traces"
_SCOPE = "agentrt"


def _check_url(value: str, source: str) -> str:
    scheme, _, rest = value.partition("://")
    if scheme.lower() not in ("http", "https") or not rest or rest.startswith("/"):
        raise ConfigError(f"{source} {value!r} is not an http(s) URL such as "
                          f"{DEFAULT_ENDPOINT}")
    return value


def resolve_endpoint(setting: str | None, environ: dict[str, str] | None = None) -> str:
    """The full OTLP/HTTP traces URL spans are sent to.

    Order: the `otel_endpoint` setting (a base URL gets `/v1/traces` appended; a URL that
    already ends with it is used as it is), `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (as it is),
    `OTEL_EXPORTER_OTLP_ENDPOINT` (+ `/v1/traces`), then `http://localhost:4318/v1/traces`.

    Raises:
        ConfigError: the chosen value is not an http(s) URL.
    """
    env = os.environ if environ is None else environ
    if setting:
        url = _check_url(setting.strip(), "otel_endpoint")
        return url if url.rstrip("/").endswith(TRACES_PATH) else url.rstrip("/") + TRACES_PATH
    traces = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if traces:
        return _check_url(traces, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if base:
        return _check_url(base, "OTEL_EXPORTER_OTLP_ENDPOINT").rstrip("/") + TRACES_PATH
    return DEFAULT_ENDPOINT + TRACES_PATH


def _id_generator() -> Any:
    """Random span ids; the trace id of the next root span can be set per thread."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator  # heavy: opentelemetry

    class TraceIds(RandomIdGenerator):
        def __init__(self) -> None:
            self.next = threading.local()

        def generate_trace_id(self) -> int:
            chosen = getattr(self.next, "value", None)
            self.next.value = None
            return chosen or super().generate_trace_id()

    return TraceIds()


class SpanExport:
    """Finished traces to OTLP/HTTP, batched on a tracer provider of its own.

    Args:
        endpoint: the full traces URL (see `resolve_endpoint`).
        service_name: the `service.name` resource attribute.
        capture_content: also send prompts, completions and tool inputs/outputs.
        timeout_s: time limit of one export request (retries included).
        set_global: also make this the process's global tracer provider.
    """

    def __init__(self, endpoint: str, *, service_name: str = "agentrt",
                 capture_content: bool = False, timeout_s: float = 10.0,
                 set_global: bool = False):
        try:
            from opentelemetry import trace  # heavy: opentelemetry
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # heavy: opentelemetry
                OTLPSpanExporter,
            )
            from opentelemetry.sdk.resources import Resource  # heavy: opentelemetry
            from opentelemetry.sdk.trace import TracerProvider  # heavy: opentelemetry
            from opentelemetry.sdk.trace.export import BatchSpanProcessor  # heavy: opentelemetry
        except ImportError as e:
            raise ConfigError(f"OpenTelemetry export needs opentelemetry-sdk and "
                              f"opentelemetry-exporter-otlp-proto-http ({e})") from None
        self.endpoint = endpoint
        self.capture_content = capture_content
        self._ids = _id_generator()
        self.provider = TracerProvider(resource=Resource.create({"service.name": service_name}),
                                       id_generator=self._ids)
        self.provider.add_span_processor(BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint, timeout=timeout_s)))
        self._tracer = self.provider.get_tracer(_SCOPE)
        self._closed = False
        if set_global:
            trace.set_tracer_provider(self.provider)

    def export(self, store: TraceStore, trace_id: str) -> bool:
        """Queue the spans of one stored trace; never raises.

        Returns:
            True when the spans were queued (sending happens in the background).
        """
        if self._closed:
            return False
        try:
            record = store.get_trace(trace_id)
            self.emit(plan_spans(record, capture_content=self.capture_content), record.id)
            return True
        except Exception as e:  # noqa: BLE001 - telemetry must never fail a solve
            log.warning("OpenTelemetry export of trace %s failed: %s: %s", trace_id,
                        type(e).__name__, e)
            return False

    def emit(self, root: SpanPlan, trace_id: str | None = None) -> None:
        """Start and end the planned spans with their recorded times, parents first."""
        from opentelemetry import trace  # heavy: opentelemetry
        from opentelemetry.context import Context  # heavy: opentelemetry
        from opentelemetry.trace import Status, StatusCode  # heavy: opentelemetry

        try:
            self._ids.next.value = int(trace_id, 16) if trace_id else None
        except ValueError:
            self._ids.next.value = None

        def start(plan: SpanPlan, parent: Any) -> None:
            # a solve is a root of its own, whatever span is current in this thread
            ctx = trace.set_span_in_context(parent) if parent is not None else Context()
            span = self._tracer.start_span(plan.name, context=ctx, start_time=plan.start_ns,
                                           attributes=plan.attributes)
            for event in plan.events:
                span.add_event(event.name, event.attributes, timestamp=event.time_ns)
            if plan.error is not None:
                span.set_status(Status(StatusCode.ERROR, plan.error))
            for child in plan.children:
                start(child, span)
            span.end(end_time=plan.end_ns)

        try:
            start(root, None)
        finally:
            self._ids.next.value = None

    def close(self) -> None:
        """Send what is queued (waiting at most about the export timeout) and stop."""
        if self._closed:
            return
        self._closed = True
        try:
            self.provider.shutdown()
        except Exception as e:  # noqa: BLE001 - telemetry must never fail a shutdown
            log.warning("OpenTelemetry shutdown failed: %s: %s", type(e).__name__, e)


def open_export(settings: Settings) -> SpanExport | None:
    """The span export the settings ask for, or None when export is off (the default).

    Raises:
        ConfigError: export is on and the endpoint (setting or OTEL_* variable) is not a URL,
            or the OpenTelemetry packages are missing.
    """
    if not settings.otel_enabled:
        return None
    return SpanExport(resolve_endpoint(settings.otel_endpoint),
                      service_name=settings.otel_service_name,
                      capture_content=settings.otel_capture_content,
                      timeout_s=settings.otel_timeout_s, set_global=settings.otel_set_global)
