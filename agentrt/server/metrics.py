"""Request metrics: every HTTP request counted and timed, by served model, route and status.

`MetricsMiddleware` is plain ASGI and sits outside every other guard, so refused requests (401,
413, 429) count too. The status is the one the response started with (500 when none was sent);
the latency runs until the response's last byte, a stream's included. The `route` label is the
route's template (`/v1/models/{model:path}`, not the model named in the path), and requests
that match no route share the label `unmatched`, so clients cannot grow the label set. The
`model` label is what the service put in the request state once the model was known to be
served (empty before that, and for routes without a model). `metrics_response` answers the
`/metrics` route with `agentrt.core.metrics.render()`.
This module knows ASGI and the metric names; nothing about jobs or models.
"""

from __future__ import annotations

import time
from typing import Any

from agentrt.core import metrics

__all__ = ["MetricsMiddleware", "metrics_response", "MODEL_STATE"]

MODEL_STATE = "metrics_model"  # the request-state key that names the served model
_UNMATCHED = "unmatched"


class MetricsMiddleware:
    """ASGI middleware recording `agentrt_http_requests_total` and the latency histogram.

    Args:
        app: the wrapped ASGI app.
        router: the app's router (its routes name the requests that never reached one).
    """

    def __init__(self, app: Any, router: Any):
        self.app = app
        self.router = router

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            model = str(scope.get("state", {}).get(MODEL_STATE, ""))
            route = self._route(scope)
            metrics.HTTP_REQUESTS.labels(model, route, str(status)).inc()
            metrics.HTTP_LATENCY.labels(model, route).observe(time.perf_counter() - start)

    def _route(self, scope: dict) -> str:
        route = scope.get("route")
        if route is None:  # refused before routing (a key, a body limit): find its route
            for candidate in self.router.routes:
                match, _ = candidate.matches(scope)
                if match.name != "NONE":
                    route = candidate
                    break
        return getattr(route, "path", None) or _UNMATCHED


def metrics_response() -> Any:
    """The `/metrics` response: the exposition text of every agentrt metric."""
    from starlette.responses import Response  # heavy: starlette

    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
