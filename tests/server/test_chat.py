"""Conformance of /v1/chat/completions and /v1/models with the official sync `openai` client.

Runs against a real uvicorn subprocess on the scripted fake backend (see fake_server_app.py).
"""

from __future__ import annotations

import json

import openai
import pytest
from fake_server_app import JSON_REPLY, MODEL, WORDS

USER = [{"role": "user", "content": "Say the words."}]
PROBLEM = [{"role": "user", "content": "What is 17*23+5?"}]


def stream_chunks(client, **kw):
    return list(client.chat.completions.create(stream=True, **kw))


def by_choice(chunks):
    """index -> (role seen first, concatenated content, reasoning, finish reasons)."""
    out: dict[int, dict] = {}
    for ch in chunks:
        for c in ch.choices:
            st = out.setdefault(c.index, {"roles": [], "content": "", "reasoning": "",
                                          "finish": []})
            if c.delta.role:
                st["roles"].append((len(st["content"]), c.delta.role))
            st["content"] += c.delta.content or ""
            st["reasoning"] += getattr(c.delta, "reasoning_content", None) or ""
            if c.finish_reason is not None:
                st["finish"].append(c.finish_reason)
    return out


def test_models_list_and_retrieve(server):
    client = server.client()
    ids = [m.id for m in client.models.list()]
    assert ids == ["agentrt-auto", "agentrt-fast", "agentrt-slow", "agentrt-team", MODEL]
    model = client.models.retrieve("agentrt-fast")
    assert model.id == "agentrt-fast" and model.object == "model"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-nothing")


def test_passthrough_non_streaming(server):
    resp = server.client().chat.completions.create(model=MODEL, messages=USER, temperature=0)
    assert resp.object == "chat.completion" and resp.id.startswith("chatcmpl-")
    assert resp.model == MODEL
    (choice,) = resp.choices
    assert choice.index == 0 and choice.message.role == "assistant"
    assert choice.message.content == WORDS and choice.finish_reason == "stop"
    u = resp.usage
    assert u.completion_tokens == len(WORDS.split()) and u.prompt_tokens > 0
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens


def test_streaming_equals_non_streaming(server):
    client = server.client()
    kw = dict(model=MODEL, messages=USER, temperature=0)
    full = client.chat.completions.create(**kw)
    chunks = stream_chunks(client, stream_options={"include_usage": True}, **kw)
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)
    assert len({ch.id for ch in chunks}) == 1
    st = by_choice(chunks)[0]
    assert st["roles"] == [(0, "assistant")]  # the first delta carries the role
    assert st["content"] == full.choices[0].message.content
    assert st["finish"] == ["stop"]
    assert len(chunks[:-1]) > 3  # really streamed, word by word
    last = chunks[-1]
    assert last.choices == [] and last.usage.model_dump() == full.usage.model_dump()
    assert all(ch.usage is None for ch in chunks[:-1])


def test_stream_without_usage_has_no_usage_chunk(server):
    chunks = stream_chunks(server.client(), model=MODEL, messages=USER)
    assert all(ch.choices for ch in chunks) and all(ch.usage is None for ch in chunks)


@pytest.mark.parametrize("stream", [False, True])
def test_n_choices_have_indexes(server, stream):
    client = server.client()
    if stream:
        st = by_choice(stream_chunks(client, model=MODEL, messages=USER, n=3))
        assert sorted(st) == [0, 1, 2]
        for s in st.values():
            assert s["content"] == WORDS and s["finish"] == ["stop"] and len(s["roles"]) == 1
    else:
        resp = client.chat.completions.create(model=MODEL, messages=USER, n=3)
        assert [c.index for c in resp.choices] == [0, 1, 2]
        assert resp.usage.completion_tokens == 3 * len(WORDS.split())


@pytest.mark.parametrize("stop", ["delta", ["golf", "echo"], ["papa"], [" b"]])
def test_stop_sequences_never_appear(server, stop):
    client = server.client()
    stops = [stop] if isinstance(stop, str) else stop
    full = client.chat.completions.create(model=MODEL, messages=USER, stop=stop, temperature=0)
    text = full.choices[0].message.content
    streamed = by_choice(stream_chunks(client, model=MODEL, messages=USER, stop=stop,
                                       temperature=0))[0]
    for s in stops:
        assert s not in text and s not in streamed["content"]
    assert streamed["content"] == text and text == WORDS[: min(WORDS.find(s) for s in stops)]
    assert full.choices[0].finish_reason == "stop" and streamed["finish"] == ["stop"]


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_finish_reason_length(server, field):
    client = server.client()
    full = client.chat.completions.create(model=MODEL, messages=USER, **{field: 4})
    assert full.choices[0].finish_reason == "length"
    assert full.usage.completion_tokens == 4
    assert full.choices[0].message.content == " ".join(WORDS.split()[:4])
    st = by_choice(stream_chunks(client, model=MODEL, messages=USER, **{field: 4}))[0]
    assert st["finish"] == ["length"] and st["content"] == full.choices[0].message.content


def test_json_schema_output_parses(server):
    schema = {"type": "object", "properties": {"name": {"type": "string"},
                                               "value": {"type": "integer"}},
              "required": ["name", "value"], "additionalProperties": False}
    resp = server.client().chat.completions.create(
        model=MODEL, messages=USER,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "thing", "schema": schema, "strict": True}})
    assert json.loads(resp.choices[0].message.content) == JSON_REPLY


def test_content_parts_and_roles_are_accepted(server):
    messages = [{"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Say"},
                                             {"type": "text", "text": "the words."}]},
                {"role": "assistant", "content": None,
                 "tool_calls": [{"id": "c1", "type": "function",
                                 "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "done"},
                {"role": "user", "content": "Again.", "name": "ann"}]
    resp = server.client().chat.completions.create(
        model=MODEL, messages=messages, tools=[{"type": "function", "function": {"name": "f"}}],
        tool_choice="auto", user="u1", metadata={"a": "b"}, seed=7, top_p=0.5,
        extra_body={"some_vendor_field": {"x": 1}})
    assert resp.choices[0].message.content == WORDS


def test_solver_model_answers_and_records_the_trace(server):
    raw = server.client().chat.completions.with_raw_response.create(
        model="agentrt-fast", messages=[{"role": "system", "content": "Be exact."}, *PROBLEM])
    resp = raw.parse()
    trace_id = raw.headers["x-agentrt-trace-id"]
    assert resp.id == f"chatcmpl-{trace_id}" and resp.model == "agentrt-fast"
    msg = resp.choices[0].message
    assert msg.content == "396" and resp.choices[0].finish_reason == "stop"
    assert "[fast_answer]" in msg.reasoning_content
    with server.store() as store:
        trace = store.get_trace(trace_id)
    assert trace.status == "ok" and trace.answer == "396"
    assert trace.tags.get("api_model") == "agentrt-fast"
    llm = [s for s in trace.steps if s.kind == "llm"]
    assert resp.usage.prompt_tokens == sum(s.prompt_tokens for s in llm) > 0
    assert resp.usage.completion_tokens == sum(s.completion_tokens for s in llm) > 0
    assert "system: Be exact." in llm[0].inputs["messages"][-1]["content"]  # earlier = context


def test_solver_streams_progress_then_answer(server):
    client = server.client()
    raw = client.chat.completions.with_raw_response.create(
        model="agentrt-fast", messages=PROBLEM, stream=True,
        stream_options={"include_usage": True})
    trace_id = raw.headers["x-agentrt-trace-id"]
    chunks = list(raw.parse())
    st = by_choice(chunks)[0]
    assert st["content"] == "396" and st["finish"] == ["stop"]
    assert st["reasoning"].startswith("[fast_answer]") and "[decision verdict]" in st["reasoning"]
    kinds = [("r" if getattr(c.delta, "reasoning_content", None) else "c")
             for ch in chunks for c in ch.choices if c.delta.content or
             getattr(c.delta, "reasoning_content", None)]
    assert kinds[-1] == "c" and set(kinds[:-1]) == {"r"}  # progress first, then the answer
    assert all(ch.id == f"chatcmpl-{trace_id}" for ch in chunks)
    with server.store() as store:
        trace = store.get_trace(trace_id)
    assert chunks[-1].usage.completion_tokens == trace.usage.completion_tokens


@pytest.mark.parametrize("stream", [False, True])
def test_solver_reports_length_when_max_tokens_cut_a_call(server, stream):
    client = server.client()
    if stream:
        st = by_choice(stream_chunks(client, model="agentrt-fast", messages=PROBLEM,
                                     max_tokens=3))[0]
        cut, answer = st["finish"], st["content"]
    else:
        resp = client.chat.completions.create(model="agentrt-fast", messages=PROBLEM,
                                              max_tokens=3)
        cut, answer = [resp.choices[0].finish_reason], resp.choices[0].message.content
    assert cut == ["length"] and answer != "396"  # the worked answer was cut before its end
    roomy = client.chat.completions.create(model="agentrt-fast", messages=PROBLEM,
                                           max_tokens=200)
    assert roomy.choices[0].finish_reason == "stop" and roomy.choices[0].message.content == "396"


def test_solver_n_choices_are_separate_traces(server):
    raw = server.client().chat.completions.with_raw_response.create(
        model="agentrt-fast", messages=PROBLEM, n=2, stop=["9"])
    resp = raw.parse()
    ids = raw.headers["x-agentrt-trace-id"].split(",")
    assert len(set(ids)) == 2 and [c.index for c in resp.choices] == [0, 1]
    assert all(c.message.content == "3" for c in resp.choices)  # "396" cut before the stop
    with server.store() as store:
        usage = [store.get_trace(t).usage for t in ids]
    assert resp.usage.completion_tokens == sum(u.completion_tokens for u in usage)


def test_solver_team_mode_runs(server):
    resp = server.client().chat.completions.create(model="agentrt-team", messages=PROBLEM)
    assert resp.choices[0].message.content == "396"
    assert resp.model == "agentrt-team" and resp.usage.completion_tokens > 0


def test_solver_auto_mode_runs(server):
    resp = server.client().chat.completions.create(model="agentrt-auto", messages=PROBLEM)
    assert resp.choices[0].message.content == "396"
