"""A small OpenAI-compatible chat server for tests: `python openai_server.py PORT`.

Serves `/v1/chat/completions` (plain and streamed) from the scripted fake backend. Model names
select behaviours: `fake` answers normally, `no-usage` omits the usage field, `flaky-429` answers
429 on its first call and then succeeds, `broken` always answers 500, `slow` answers as `fake`
after 0.2 s, any other name is 404. A wrong bearer token gets 401, `max_tokens` over 1000 gets
400. `/stats` reports calls per model, calls per first message (`prompts`) and the last request
body.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from agentrt.llm.fake import FakeBackend
from agentrt.core.types import ChatRequest, Message, SamplingParams

API_KEY = "test-key"
MODELS = {"fake", "no-usage", "flaky-429", "broken", "slow"}

app = FastAPI()
calls: Counter = Counter()
prompts: Counter = Counter()
last: dict = {}
backend = FakeBackend(rules=[(r"2\+3", "2 + 3 = 5"), (r"json", '{"answer": 5}')], default=lambda r: "echo: " + r.messages[-1].content)


def error(status: int, message: str, **headers: str) -> JSONResponse:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


def to_request(body: dict) -> ChatRequest:
    stop = body.get("stop") or []
    params = SamplingParams(
        temperature=body.get("temperature", 0.0),
        top_p=body.get("top_p", 1.0),
        max_tokens=body.get("max_tokens", 256),
        n=body.get("n", 1),
        stop=[stop] if isinstance(stop, str) else stop,
    )
    return ChatRequest(messages=[Message(role=m["role"], content=m["content"]) for m in body["messages"]], params=params)


@app.get("/stats")
def stats() -> dict:
    return {"calls": dict(calls), "prompts": dict(prompts), "last": last}


@app.post("/v1/chat/completions")
async def completions(request: Request):
    if request.headers.get("authorization") != f"Bearer {API_KEY}":
        return error(401, "Incorrect API key provided")
    body = await request.json()
    model = body.get("model", "")
    calls[model] += 1
    if body.get("messages"):
        prompts[str(body["messages"][0].get("content"))] += 1
    last.clear()
    last.update(body)
    if model not in MODELS:
        return error(404, f"The model `{model}` does not exist.")
    if body.get("max_tokens", 0) > 1000:
        return error(400, "max_tokens must be at most 1000")
    if model == "broken":
        return error(500, "the engine crashed", **{"retry-after-ms": "10"})
    if model == "flaky-429" and calls[model] == 1:
        return error(429, "Rate limit reached, slow down", **{"retry-after-ms": "10"})
    if model == "slow":
        await asyncio.sleep(0.2)
    result = backend.chat(to_request(body))
    if body.get("stream"):
        usage = result.usage.as_dict() if (body.get("stream_options") or {}).get("include_usage") else None
        return StreamingResponse(stream_events(model, result.text, usage), media_type="text/event-stream")
    out = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": c.index, "message": {"role": "assistant", "content": c.text}, "finish_reason": c.finish_reason}
            for c in reversed(result.choices)  # out of order on purpose: clients must sort by index
        ],
    }
    if model != "no-usage":
        out["usage"] = result.usage.as_dict()
    return out


def stream_events(model: str, text: str, usage: dict | None):
    head = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
    words = text.split(" ")
    for i, word in enumerate(words):
        delta = {"content": word if i == 0 else " " + word}
        yield f"data: {json.dumps({**head, 'choices': [{'index': 0, 'delta': delta, 'finish_reason': None}]})}\n\n"
    yield f"data: {json.dumps({**head, 'choices': [{'index': 0, 'delta': {}, 'finish_reason': 'stop'}]})}\n\n"
    if usage is not None:
        yield f"data: {json.dumps({**head, 'choices': [], 'usage': usage})}\n\n"
    yield "data: [DONE]\n\n"


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
