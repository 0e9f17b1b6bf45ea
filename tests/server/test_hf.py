"""The server on the embedded SmolLM2-135M model (hf backend), a few tokens per request."""

from __future__ import annotations

import json
import sys
import threading
import time

import httpx
import pytest
from server_harness import launch, stop

MODEL = "smollm2-135m"
ASK = [{"role": "user", "content": "List three colors."}]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hf_server(tmp_path_factory, embedded_home):
    tmp = tmp_path_factory.mktemp("hf")
    cmd = [sys.executable, "-m", "agentrt.cli", "serve", "--backend", "hf", "--model", MODEL,
           "--log-level", "warning"]
    server = launch(tmp, cmd=cmd, env={"AGENTRT_HOME": str(embedded_home),
                                       "AGENTRT_DATABASE_URL": f"sqlite:///{tmp / 'traces.db'}",
                                       "AGENTRT_DEVICE": "cpu"})
    yield server
    stop(server)


class TestEmbeddedModel:
    """Few tokens per request: the 135M model on two shared CPU cores is slow under load."""

    def test_streaming_concat_equals_non_streaming_at_temperature_0(self, hf_server):
        client = hf_server.client(timeout=300)
        kw = dict(model=MODEL, messages=ASK, temperature=0, max_tokens=6)
        full = client.chat.completions.create(**kw)
        chunks = list(client.chat.completions.create(stream=True,
                                                     stream_options={"include_usage": True}, **kw))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and
                  c.choices[0].finish_reason]
        assert text and text == full.choices[0].message.content
        assert finish == [full.choices[0].finish_reason] == ["length"]  # stopped at max_tokens
        assert full.usage.completion_tokens == 6 and full.usage.prompt_tokens > 10
        assert chunks[-1].usage == full.usage  # measured the same way, streamed or not
        stop = text.split()[1]  # a word the model is known to produce next
        for stream in (False, True):
            out = client.chat.completions.create(stream=stream, stop=[stop], **kw)
            cut = ("".join(c.choices[0].delta.content or "" for c in out if c.choices)
                   if stream else out.choices[0].message.content)
            assert stop not in cut and text.startswith(cut)

    def test_json_schema_output_parses(self, hf_server):
        schema = {"type": "object", "properties": {"color": {"type": "string", "maxLength": 10}},
                  "required": ["color"], "additionalProperties": False}
        resp = hf_server.client(timeout=300).chat.completions.create(
            model=MODEL, temperature=0, max_tokens=30,
            messages=[{"role": "user", "content": "Name a color as JSON."}],
            response_format={"type": "json_schema",
                             "json_schema": {"name": "color", "schema": schema, "strict": True}})
        value = json.loads(resp.choices[0].message.content)
        assert set(value) == {"color"} and isinstance(value["color"], str)

    @pytest.mark.parametrize("stream", [False, True])
    def test_schema_xgrammar_refuses_is_400_before_streaming(self, hf_server, stream):
        import openai

        schema = {"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}}  # well-formed
        with pytest.raises(openai.BadRequestError) as err:
            hf_server.client(timeout=300).chat.completions.create(
                model=MODEL, max_tokens=5, stream=stream, messages=ASK,
                response_format={"type": "json_schema",
                                 "json_schema": {"name": "x", "schema": schema}})
        message = err.value.body["message"]
        assert message.startswith("cannot compile JSON schema:") and "nowhere" in message
        assert "/project" not in message and ".cc" not in message  # no library source paths

    def test_concurrent_requests_are_batched(self, hf_server):
        before = httpx.get(f"{hf_server.url}/health").json()["batching"]
        client = hf_server.client(timeout=300)
        threads = [threading.Thread(target=client.chat.completions.create, kwargs=dict(
            model=MODEL, messages=[{"role": "user", "content": f"Count to {i}."}],
            temperature=0, max_tokens=3)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        after = httpx.get(f"{hf_server.url}/health").json()["batching"]
        assert after["items"] - before["items"] == 6
        assert after["batches"] - before["batches"] < 6  # some calls shared a generate
        assert after["max_size"] > 1
        health = httpx.get(f"{hf_server.url}/health").json()
        assert health["prefix_cache"]["hits"] > 0  # the prompts share the template's system text
        assert health["prefix_cache"]["tokens_reused"] > 6 * 10 and health["prefix_cache"]["bytes"] > 0

    def test_a_client_that_gives_up_frees_its_rows_in_the_running_decode(self, hf_server):
        # The prompt puts the model in a loop that runs to max_tokens (fp32 and int4 alike; a
        # list of numbers stopped after 122 tokens, 1.4 s, in int4): 4000 tokens take 45 s or
        # more on two cores, and the decode must end soon after the client leaves, which
        # `/health` shows as the session closing.
        before = httpx.get(f"{hf_server.url}/health").json()["batching"]
        body = {"model": MODEL, "temperature": 0, "max_tokens": 4000, "messages": [
            {"role": "user", "content": "Repeat after me without stopping: " + "la " * 20}]}
        with pytest.raises(httpx.TimeoutException):
            hf_server.post("/v1/chat/completions", json=body, timeout=1.5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            after = httpx.get(f"{hf_server.url}/health").json()["batching"]
            if after["batches"] > before["batches"]:
                break
            time.sleep(0.1)
        assert after["batches"] == before["batches"] + 1 and after["items"] == before["items"] + 1
        again = hf_server.client(timeout=300).chat.completions.create(
            model=MODEL, messages=ASK, temperature=0, max_tokens=2)
        assert again.usage.completion_tokens == 2
