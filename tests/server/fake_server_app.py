"""The server on the scripted fake backend, built by uvicorn in factory mode for the tests.

    uvicorn --factory fake_server_app:make_app --app-dir tests/server

Replies are deterministic: passthrough chats get a fixed sentence of NATO words (so tests can
pick stop sequences and token limits), JSON-schema requests get a fixed JSON object, and the
fast-thinking prompts get a worked answer and a "yes" verdict, and slow thinking gets a
two-node design whose python tool really runs in the sandbox. A user message containing
`[sleep=S]` makes the call take S seconds (load, deadlines, disconnects). A schema with
`"x-refuse": true` is refused the way the hf backend refuses one xgrammar cannot compile (with
the library's source path in the message), and `[raise-hostile]` makes the backend fail with an
unexpected error whose text holds terminal escapes (for the log tests). `[backend-down]` fails
the way an unreachable backend does, and `[context-overflow]` the way the hf backend refuses a
prompt longer than its context. The trace store, limits and keys come from the usual
`AGENTRT_*` / `AGENTRT_SERVER_*` environment.
`ScriptedBackend` gives the CLI the same replies (crash and resume tests).
"""

from __future__ import annotations

import json
import re
import time

from agentrt.core.config import load_settings
from agentrt.core.errors import BackendRequestError, BackendUnavailableError
from agentrt.llm.fake import FakeBackend
from agentrt.runtime import Runtime
from agentrt.server.app import create_app, load_server_config

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
         "november oscar papa")
JSON_REPLY = {"name": "agentrt", "value": 42}
MODEL = "fake-echo"
HOSTILE = "\x1b[2J\x1b]0;owned\x07\x9b31m\u202eevil\x1b[0m"
REFUSAL = ("cannot compile JSON schema: [04:07:18] /project/cpp/json_schema_converter.cc:5082: "
           "Unsupported keyword")
CONTEXT = 2048  # the context length `[context-overflow]` claims
OVERFLOW = (f"This model's maximum context length is {CONTEXT} tokens. However, you requested "
            f"2100 tokens (100 in the messages, 2000 in the completion). Please reduce the "
            "length of the messages or completion.")


SANDBOX_SLEEP = "[sandbox-sleep]"  # in a slow problem: the tool runs a program that sleeps
DESIGN = json.dumps({"nodes": [
    {"id": "calc", "kind": "tool", "tool": "python", "role": "coder",
     "instruction": "compute it", "inputs": []},
    {"id": "fin", "kind": "llm", "role": "checker", "instruction": "state the answer",
     "inputs": ["calc"]}], "final": "fin"})


def _code(convo: str) -> str:
    if SANDBOX_SLEEP in convo:
        return json.dumps({"code": "import time\nprint('started', flush=True)\ntime.sleep(90)"})
    return json.dumps({"code": "print(123*456 - 789)"})


SLOW_RULES = [
    (r"Reflect on the following problem", "Restated: a product minus a number."),
    (r"Design a workflow of experts", DESIGN),
    (r"Judge whether its final answer", '{"reason": "checked", "verdict": "yes"}'),
    (r"Candidate answers:", '{"reason": "the first", "choice": 1}'),
    (r"Expert: \w+ \([^)]*\), tool: python", _code),
    (r"Expert: fin ", "The tool printed 55299.\nFinal answer: 55299"),
    (r"Expert: ", "partial result"),
]


def reply(request) -> str:
    convo = "\n".join(m.content for m in request.messages)
    sleep = re.search(r"\[sleep=([0-9.]+)\]", convo)
    if sleep:
        time.sleep(float(sleep.group(1)))
    if "[raise-hostile]" in convo:
        raise RuntimeError(HOSTILE)
    if "[backend-down]" in convo:
        raise BackendUnavailableError("cannot reach http://127.0.0.1:9/v1: connection refused")
    if "[context-overflow]" in convo:
        raise BackendRequestError(OVERFLOW, status=400, reason="context_length_exceeded",
                                  limit=CONTEXT)
    if request.json_schema is not None and request.json_schema.get("x-refuse"):
        raise BackendRequestError(REFUSAL, status=400)
    if re.search(r"^Agent: \w+ \(", convo, re.M):  # a team member's turn: agree at once
        answer = "396" if "17*23+5" in convo else "42"
        return json.dumps({"message": f"I get {answer}.", "answer": answer, "agree": True})
    if request.json_schema is not None and "Design a workflow" not in convo:
        return json.dumps(JSON_REPLY)
    for marker, answer in SLOW_RULES:  # slow thinking: reflect, design, tool call, expert, judge
        if re.search(marker, convo):
            return answer(convo) if callable(answer) else answer
    if "Verdict" in convo:  # the fast-thinking self-check prompt
        return "The arithmetic checks out.\nVerdict: yes"
    if "Final answer:" in convo:  # the fast-thinking answer prompt
        answer = "396" if "17*23+5" in convo else "42"
        return f"Step by step: {WORDS}.\nFinal answer: {answer}"
    return WORDS


class ScriptedBackend(FakeBackend):
    """The same replies as a backend that the CLI loads by name, once a test process registers
    it (`agentrt.llm.base.BACKENDS["fake"] = "fake_server_app:ScriptedBackend"`)."""

    @classmethod
    def from_options(cls, model: str = MODEL, **options) -> "ScriptedBackend":
        return cls(default=reply, model_id=model or MODEL)


def make_app():
    settings = load_settings(backend="fake", model=MODEL)
    runtime = Runtime(settings, backend=FakeBackend(default=reply, model_id=MODEL))
    return create_app(runtime, load_server_config(), close_runtime=True)
