"""Router labels: a problem and whether fast thinking answered it right.

One row per trace that shows a fast attempt with a known outcome: the `fast_correct` tag the
evaluation harness sets when present, else the trace's fast answer graded against the problem's
reference. Traces that never tried fast thinking, and rejected synthetic traces, give none.
The learned router (`agentrt.router`) trains on exactly this pair: text and fast_succeeded.
"""

from __future__ import annotations

from typing import Any

from agentrt.data_synth.compile.anatomy import dissect
from agentrt.data_synth.verify import TraceJudge

__all__ = ["router_rows"]


def router_rows(judges: list[TraceJudge]) -> tuple[list[dict[str, Any]], list[str], dict[str, int]]:
    """Router examples: (rows, ids of traces used, skipped counts by reason)."""
    rows: list[dict[str, Any]] = []
    skipped: dict[str, int] = {}
    for judge in judges:
        trace = judge.trace
        if judge.source == "rejected":
            skipped["rejected synthetic trace"] = skipped.get("rejected synthetic trace", 0) + 1
            continue
        anatomy = dissect(judge)
        tag = trace.tags.get("fast_correct")
        if tag in ("0", "1"):
            label, how = tag == "1", "tag"
        elif anatomy.fast_correct is not None:
            label, how = anatomy.fast_correct, "graded"
        else:
            reason = "no fast attempt" if anatomy.fast_answer is None else "fast answer ungraded"
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        rows.append({"text": trace.problem, "fast_succeeded": bool(label), "trace_id": trace.id,
                     "problem_id": trace.tags.get("problem_id", ""),
                     "family": trace.tags.get("family", ""), "model_id": trace.model_id,
                     "source": judge.source, "label_from": how,
                     "fast_answer": anatomy.fast_answer or ""})
    return rows, [r["trace_id"] for r in rows], skipped
