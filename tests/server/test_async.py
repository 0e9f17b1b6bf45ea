"""The async `openai` client: concurrent requests, streams, and errors, all at once."""

from __future__ import annotations

import asyncio

import openai
import pytest
from fake_server_app import MODEL, WORDS

USER = [{"role": "user", "content": "Say the words."}]


async def test_concurrent_requests_and_streams(server):
    client = server.aclient()

    async def plain(i: int):
        r = await client.chat.completions.create(model=MODEL, messages=USER, max_tokens=i + 1)
        return r.choices[0].message.content

    async def streamed(i: int):
        stream = await client.chat.completions.create(model=MODEL, messages=USER,
                                                      max_tokens=i + 1, stream=True)
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    words = WORDS.split()
    results = await asyncio.gather(*[plain(i) for i in range(8)], *[streamed(i) for i in range(8)])
    expected = [" ".join(words[: i + 1]) for i in range(8)]
    assert results == expected + expected
    await client.close()


async def test_solver_concurrently_gets_distinct_traces(server):
    client = server.aclient()

    async def solve():
        raw = await client.chat.completions.with_raw_response.create(
            model="agentrt-fast", messages=[{"role": "user", "content": "What is 17*23+5?"}])
        return raw.headers["x-agentrt-trace-id"], raw.parse().choices[0].message.content

    results = await asyncio.gather(*[solve() for _ in range(6)])
    assert len({t for t, _ in results}) == 6 and {a for _, a in results} == {"396"}
    with server.store() as store:
        assert all(store.get_trace(t).status == "ok" for t, _ in results)
    await client.close()


async def test_async_errors(server):
    client = server.aclient()
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model=MODEL, messages=USER, n=100)
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="nope", messages=USER)
    with pytest.raises(openai.AuthenticationError):
        await server.aclient(api_key="sk-bad-bad-bad").models.list()
    await client.close()
