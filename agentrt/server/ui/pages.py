"""The UI's pages: traces, one trace, evaluation runs, a comparison, the model registry.

`ui_router(sources)` is a FastAPI `APIRouter` mounted under `/ui` (by `create_app`, and by
`agentrt ui` without any model). Every page is rendered on the server from the store and the
run folders (`sources.py`) through `render.py`; the routes are plain functions, so FastAPI runs
their blocking reads in its thread pool. A bad filter or reference is a 400 page, a missing
trace or run a 404 page. The live view of a running solve is `live.py`; the static files are
package data served from `static/`. This module wires requests to reads and templates.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from agentrt.core.errors import AgentrtError, ConfigError, InvalidInputError, NotFoundError
from agentrt.eval.compare import compare_runs
from agentrt.eval.metrics import compute_metrics
from agentrt.server.ui.graph import layout_rounds
from agentrt.server.ui.live import live_events
from agentrt.server.ui.plots import task_bars
from agentrt.server.ui.render import render, step_sections
from agentrt.server.ui.sources import UISources
from agentrt.store.search import TraceQuery, search_traces

__all__ = ["ui_router", "PAGE_SIZE"]

PAGE_SIZE = 50
_STATIC = {"ui.js": "text/javascript; charset=utf-8", "ui.css": "text/css; charset=utf-8"}
_MODES = ("", "fast", "slow", "auto")
_STATUSES = ("", "running", "ok", "error", "interrupted", "cancelled")


def _page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(render(template, **context), status_code=status,
                        headers={"Cache-Control": "no-store"})


def _error(e: AgentrtError) -> HTMLResponse:
    status = 404 if isinstance(e, NotFoundError) else 400
    return _page("error.html", status=status, title="Not found" if status == 404 else "Bad request",
                 message=str(e))


def trace_context(trace: Any) -> dict[str, Any]:
    """What trace.html (and the live updates) need: the graph, decisions and step panels."""
    steps = trace.steps
    decisions = [s for s in steps if s.kind == "decision"]
    return {"trace": trace, "rounds": layout_rounds(steps), "decisions": decisions,
            "steps": [(s, step_sections(s)) for s in steps],
            "last_step": max((s.id or 0 for s in steps), default=0)}


def ui_router(sources: UISources) -> APIRouter:
    """The `/ui` routes reading from `sources`."""
    router = APIRouter(prefix="/ui", include_in_schema=False)

    @router.get("")
    @router.get("/")
    def home() -> Response:
        return RedirectResponse("/ui/traces", status_code=303)

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in _STATIC:
            return _error(NotFoundError(f"no static file {name!r}"))
        body = resources.files("agentrt.server.ui").joinpath("static", name).read_bytes()
        return Response(body, media_type=_STATIC[name], headers={"Cache-Control": "max-age=300"})

    @router.get("/traces")
    def traces(mode: str = "", status: str = "", tag: str = "", model: str = "", q: str = "",
               page: int = Query(1, ge=1, le=1_000_000)) -> Response:
        try:
            query = TraceQuery(mode=mode, status=status, tag=tag, model=model, text=q)
            found = search_traces(sources.store, query, limit=PAGE_SIZE,
                                  offset=(page - 1) * PAGE_SIZE)
        except AgentrtError as e:
            return _error(e)
        pages = max(1, -(-found.total // PAGE_SIZE))
        return _page("traces.html", query=query, found=found, page=page, pages=pages,
                     modes=_MODES, statuses=_STATUSES, section="traces")

    @router.get("/traces/{trace_id}")
    def trace(trace_id: str) -> Response:
        try:
            found = sources.store.get_trace(trace_id)
        except AgentrtError as e:
            return _error(e)
        return _page("trace.html", section="traces", **trace_context(found))

    @router.get("/api/traces/{trace_id}/events")
    async def events(trace_id: str, request: Request, after: int = Query(0, ge=0)) -> Response:
        return await live_events(sources.store, trace_id, after, request, trace_context)

    @router.get("/evals")
    def evals() -> Response:
        return _page("evals.html", runs=sources.eval_runs(), root=sources.eval_root,
                     section="evals")

    @router.get("/evals/compare")
    def compare(a: str, b: str) -> Response:
        try:
            run_a, run_b = sources.eval_run(a), sources.eval_run(b)
        except (NotFoundError, InvalidInputError, ConfigError) as e:
            return _error(e)
        met_a = compute_metrics(run_a.results, run_a.manifest.wall_s)
        met_b = compute_metrics(run_b.results, run_b.manifest.wall_s)
        by_id = {r.problem_id: r for r in run_b.results}
        pairs = [(r, by_id.get(r.problem_id)) for r in run_a.results]
        return _page("compare.html", a=run_a, b=run_b, cmp=compare_runs(run_a, run_b),
                     plot=task_bars({run_a.run_id: met_a, run_b.run_id: met_b}), pairs=pairs,
                     section="evals")

    @router.get("/evals/{run}")
    def eval_run(run: str) -> Response:
        try:
            found = sources.eval_run(run)
        except (NotFoundError, InvalidInputError, ConfigError) as e:
            return _error(e)
        metrics = compute_metrics(found.results, found.manifest.wall_s)
        others = [m for m in sources.eval_runs() if m.run_id != found.run_id]
        groups = ([("all", metrics.overall)] + list(metrics.by_task.items())
                  + [(f"path {k}", g) for k, g in metrics.by_path.items()])
        return _page("eval.html", run=found, metrics=metrics, others=others, groups=groups,
                     plot=task_bars({found.run_id: metrics}), section="evals")

    @router.get("/models")
    def models() -> Response:
        return _page("models.html", registry=sources.registry(), runs=sources.iterate_runs(),
                     section="models")

    @router.get("/models/runs/{run}")
    def iterate_run(run: str) -> Response:
        try:
            found = sources.iterate_run(run)
        except (NotFoundError, InvalidInputError) as e:
            return _error(e)
        splits = sorted({k for row in found.iterations for k in row.accuracy})
        return _page("iterate_run.html", run=found, splits=splits, section="models")

    return router
