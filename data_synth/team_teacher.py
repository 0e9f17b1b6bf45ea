"""Gold team conversations: information-exchange problems solved by a scripted, ideal team.

A problem whose facts are split between agents (`meta["agents"]`, the `infox` family) is solved
through the runtime's REAL team mode (the pattern the settings name: debate or pool), so every
stored prompt is exactly what the runtime sends; only the model is replaced by a scripted team
that, in round 1, has each agent share its own facts (with the first number it knows as a
provisional answer), and in round 2 has each state every fact and the calculation (the
problem's solution program as one expression, `agentrt.data_synth.inline`) with the reference
answer, and agree. In the pool pattern round 1 is the share, and the python programmer then
writes the problem's solution program as the gold teacher writes it for slow thinking
(`agentrt.data_synth.teacher.gold_code`), which runs in the sandbox. The trace is kept
when the conversation ended in agreement on an answer the grader accepts, else re-tagged
`synthetic=rejected` with the reason (two agents whose first numbers are equal agree at once on
the wrong answer, for instance).

What it teaches is the shape Optima rewards: share what only you know, briefly; then answer
together. `agentrt.training.optima` uses these traces for problems none of the model's own
conversations solved. This module knows the team mode's reply format, not how datasets are
built.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

from agentrt.core.config import Settings
from agentrt.core.errors import AgentrtError, BackendError
from agentrt.core.types import ChatRequest, Problem
from agentrt.data_synth.inline import inline_program
from agentrt.data_synth.teacher import GOLD_MODEL_ID, gold_code
from agentrt.data_synth.verify import SYNTHETIC_TAG, grade_text, problem_tags
from agentrt.llm.fake import FakeBackend
from agentrt.runtime import Runtime
from agentrt.workflows.profiles import resolve_profile
from agentrt.workflows.slow.toolbox import ToolBox
from agentrt.workflows.team import COMPUTE_ROLE

__all__ = ["GoldTeamBackend", "gold_team_trace", "facts_of"]

_QUESTION = re.compile(r"\s*Question:.*$", re.S)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def facts_of(private: str) -> str:
    """An agent's own facts: its private text without the question it may carry."""
    return _QUESTION.sub("", private).strip()


class GoldTeamBackend(FakeBackend):
    """The scripted ideal team of one problem: who speaks is found by the private facts in the
    prompt, the round by how many times that agent has spoken."""

    name = "gold"

    def __init__(self, problem: Problem, *, structured: bool = True,
                 profile: str = "compact") -> None:
        super().__init__(default=self._reply, model_id=GOLD_MODEL_ID,
                         supports_json_schema=structured)
        self.agents = [dict(a) for a in problem.meta.get("agents") or []]
        self.code = gold_code(problem, profile) if problem.meta.get("program") else ""
        self.answer = problem.answer
        inline = inline_program(str(problem.meta.get("program") or ""))
        found = re.fullmatch(r"print\((.*)\)", inline or "")
        self.work = found.group(1) if found else ""  # the calculation, as one expression
        self._spoken = [0] * len(self.agents)
        self._turns = threading.Lock()

    def _speaker(self, request: ChatRequest) -> int:
        """The agent a prompt is for: by the role its system message opens with ("You are
        <role>"), else by its private text (which other agents only see after round 1)."""
        system = next((m.content for m in request.messages if m.role == "system"), "")
        found = [k for k, a in enumerate(self.agents)
                 if re.match(rf"You are {re.escape(str(a.get('role', '')))}\b", system)]
        if len(found) != 1:
            user = "\n".join(m.content for m in request.messages if m.role == "user")
            found = [k for k, a in enumerate(self.agents) if a.get("private")
                     and a["private"] in user]
        if len(found) != 1:
            raise BackendError("gold team: the prompt is not one known agent's")
        return found[0]

    def _reply(self, request: ChatRequest) -> str:
        system = next((m.content for m in request.messages if m.role == "system"), "")
        if system.startswith(f"You are {COMPUTE_ROLE}."):  # the pool's compute node
            if not self.code:
                raise BackendError("gold team: the problem has no solution program")
            return json.dumps({"code": self.code}, ensure_ascii=False)
        k = self._speaker(request)
        with self._turns:
            self._spoken[k] += 1
            turn = self._spoken[k]
        mine = facts_of(self.agents[k]["private"])
        if turn == 1:
            numbers = _NUMBER.findall(mine)
            return json.dumps({"message": f"I know: {mine}",
                               "answer": numbers[0].replace(",", "") if numbers else "unknown",
                               "agree": False})
        every = " ".join(facts_of(a.get("private", "")) for a in self.agents)
        work = f"{self.work} = {self.answer}" if self.work else f"the answer is {self.answer}"
        return json.dumps({"message": f"Together: {every} So {work}.",
                           "answer": self.answer, "agree": True})


def gold_team_trace(problem: Problem, *, store: Any, settings: Settings,
                    tags: dict[str, str] | None = None,
                    tools: Any = None) -> tuple[str | None, str | None]:
    """Solve `problem` with the ideal team; (trace id, rejection reason or None).

    `tools` runs the pool pattern's program (a `ToolBox` the caller owns; None, or tools
    without python: a sandboxed one for this solve alone, closed after it). The debate and
    discuss patterns use none.
    """
    if not problem.meta.get("agents"):
        return None, "no agents: not an information-exchange problem"
    if settings.team_pattern != "pool":
        return _gold_team_solve(problem, store, settings, tags, {})
    if tools is not None and tools.get("python") is not None:
        return _gold_team_solve(problem, store, settings, tags, tools)
    own = ToolBox(strict=settings.sandbox_strict)
    try:
        return _gold_team_solve(problem, store, settings, tags, own)
    finally:
        own.close()


def _gold_team_solve(problem: Problem, store: Any, settings: Settings,
                     tags: dict[str, str] | None, tools: Any) -> tuple[str | None, str | None]:
    backend = GoldTeamBackend(problem,
                              profile=resolve_profile(GOLD_MODEL_ID, settings.prompt_profile))
    rt = Runtime(settings, backend=backend, store=store, tools=tools)
    run_tags = {**problem_tags(problem), **(tags or {}), SYNTHETIC_TAG: "gold", "role": "gold-team"}
    question = str(problem.meta.get("question") or problem.text)
    try:
        sol = rt.solve(question, mode="team", tags=run_tags, agents=problem.meta["agents"],
                       rounds=3)
    except AgentrtError as e:
        found = store.list_traces(limit=1, tags=run_tags)
        trace_id = found[0].id if found else None
        reason = f"{type(e).__name__}: {e}"
    else:
        trace_id, reason = sol.trace_id, None
        if not grade_text(sol.answer, problem):
            reason = f"answer {sol.answer!r} is not the reference {problem.answer!r}"
    if reason is not None and trace_id is not None:
        store.tag(trace_id, **{SYNTHETIC_TAG: "rejected", "rejected_reason": reason[:500]})
    return trace_id, reason
