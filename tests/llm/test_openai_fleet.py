"""The openai backend over several replicas: three real servers (tests/llm/openai_server.py),
each in its own process so one can be killed with SIGKILL in the middle of a run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from agentrt.core.config import load_settings
from agentrt.core.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigError,
    ModelNotFoundError,
)
from agentrt.core.types import ChatRequest, Message
from agentrt.llm.fleet import ReplicaSet, prefix_key
from agentrt.llm.openai_compat import OpenAIBackend

SERVER = Path(__file__).with_name("openai_server.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Fleet:
    """Three test servers on loopback ports; `kill(i)` and `start(i)` one of them."""

    def __init__(self, size: int = 3):
        self.ports = [free_port() for _ in range(size)]
        self.procs: list[subprocess.Popen | None] = [None] * size

    def root(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i]}"

    @property
    def urls(self) -> list[str]:
        return [f"{self.root(i)}/v1" for i in range(len(self.ports))]

    def start(self, i: int) -> None:
        proc = subprocess.Popen([sys.executable, str(SERVER), str(self.ports[i])],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.procs[i] = proc
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{self.root(i)}/stats", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise RuntimeError(f"test server did not start: {proc.stdout.read().decode()[-2000:]}") from None
                time.sleep(0.1)

    def ensure_up(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc is None or proc.poll() is not None:
                self.start(i)

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stats(self, i: int) -> dict:
        return httpx.get(f"{self.root(i)}/stats", timeout=5).json()

    def calls(self, i: int, model: str) -> int:
        return self.stats(i)["calls"].get(model, 0)

    def stop(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)


@pytest.fixture(scope="module")
def fleet():
    f = Fleet()
    try:
        f.ensure_up()
        yield f
    finally:
        f.stop()


@pytest.fixture
def up(fleet) -> Fleet:
    fleet.ensure_up()  # a test before may have killed one
    return fleet


def backend(urls, **kw) -> OpenAIBackend:
    kw.setdefault("api_key", "test-key")
    return OpenAIBackend(kw.pop("model", "fake"), base_url=urls, **kw)


def ask(text: str, system: str | None = None) -> ChatRequest:
    return ChatRequest.of(text, system=system)


# -- the replica test --------------------------------------------------------------------------


def test_one_replica_killed_mid_run_loses_no_request(up):
    b = backend(up.urls, model="slow", concurrency=20, replica_backoff_s=60)
    requests = [ask(f"item {i}") for i in range(60)]
    result: dict = {}
    run = threading.Thread(target=lambda: result.update(out=b.chat_batch(requests)))
    run.start()
    deadline = time.monotonic() + 30
    while up.calls(0, "slow") == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    seen = up.calls(0, "slow")
    up.kill(0)  # with requests in flight on it: the server sleeps 0.2 s before each answer
    killed_mid_run = run.is_alive()
    run.join(timeout=120)
    assert killed_mid_run and "out" in result
    assert [r.text for r in result["out"]] == [f"echo: item {i}" for i in range(60)]
    first = {s["url"]: s for s in b.replicas.snapshot()}
    assert first[up.urls[0]]["up"] is False and "cannot reach" in first[up.urls[0]]["last_error"]
    assert first[up.urls[0]]["served"] < seen  # some it had taken were lost there and resent
    assert all(first[u]["up"] for u in up.urls[1:])

    before = [up.calls(i, "slow") for i in (1, 2)]
    after_out = b.chat_batch([ask(f"more {i}") for i in range(30)])
    assert [r.text for r in after_out] == [f"echo: more {i}" for i in range(30)]
    gained = [up.calls(i, "slow") - n for i, n in zip((1, 2), before)]
    assert sum(gained) == 30 and min(gained) > 0  # the survivors share the load
    snap = {s["url"]: s for s in b.replicas.snapshot()}
    assert snap[up.urls[0]]["served"] == first[up.urls[0]]["served"]
    assert sum(s["in_flight"] for s in snap.values()) == 0
    b.close()


def test_a_replica_that_comes_back_is_used_again_after_its_backoff(up):
    b = backend(up.urls, replica_policy="round-robin", replica_backoff_s=0.5)
    up.kill(2)
    assert [b.chat(ask(f"a{i}")).text for i in range(6)] == [f"echo: a{i}" for i in range(6)]
    assert up.urls[2] not in b.replicas.healthy()
    up.start(2)
    time.sleep(0.6)
    assert [b.chat(ask(f"b{i}")).text for i in range(6)] == [f"echo: b{i}" for i in range(6)]
    assert up.calls(2, "fake") >= 1
    assert up.urls[2] in b.replicas.healthy()
    b.close()


def test_prefix_affinity_sends_the_same_prompt_start_to_the_same_replica(up):
    b = backend(up.urls, replica_policy="prefix", concurrency=8)
    systems = [f"affinity problem {k}" for k in range(12)]
    requests = [ChatRequest(messages=[Message(role="system", content=s), Message(role="user", content="solve"),
                                      Message(role="assistant", content=f"step {j}"),
                                      Message(role="user", content="go on")])
                for s in systems for j in range(4)]
    assert all(r.text == "echo: go on" for r in b.chat_batch(requests))
    holders = {s: [i for i in range(3) if up.stats(i)["prompts"].get(s)] for s in systems}
    assert all(len(h) == 1 for h in holders.values()), holders
    assert all(up.stats(h[0])["prompts"][s] == 4 for s, h in holders.items())
    assert len({h[0] for h in holders.values()}) > 1  # different prompts spread over replicas

    moved = systems[0]
    up.kill(holders[moved][0])  # its prompts fall back to one next replica, always the same one
    req = requests[0]
    assert [b.chat(req).text for _ in range(4)] == ["echo: go on"] * 4
    got = [i for i in range(3) if i != holders[moved][0] and up.stats(i)["prompts"].get(moved)]
    assert len(got) == 1 and up.stats(got[0])["prompts"][moved] == 4
    b.close()


def test_all_replicas_down_is_one_clear_error():
    urls = [f"http://127.0.0.1:{free_port()}/v1" for _ in range(3)]
    b = backend(urls)
    with pytest.raises(BackendUnavailableError) as e:
        b.chat(ask("hello"))
    assert str(e.value).startswith("all 3 replicas failed: cannot reach")
    assert all(u in str(e.value) for u in urls)
    with pytest.raises(BackendUnavailableError, match="all 3 replicas failed"):
        b.stream(ask("hello"))
    assert b.replicas.healthy() == []
    b.close()


def test_streams_fail_over_before_the_first_token(up):
    b = backend(up.urls, replica_policy="round-robin", replica_backoff_s=60)
    up.kill(1)
    texts = []
    for i in range(6):
        it = b.stream(ask(f"stream {i} of words"))
        texts.append("".join(it))
    assert texts == [f"echo: stream {i} of words" for i in range(6)]
    assert up.urls[1] not in b.replicas.healthy()
    b.close()


def test_4xx_and_500_are_not_resent(up):
    b = backend(up.urls, model="nope", replica_policy="round-robin")
    with pytest.raises(ModelNotFoundError):
        b.chat(ask("hi"))
    assert sum(up.calls(i, "nope") for i in range(3)) == 1
    broken = backend(up.urls, model="broken", replica_policy="round-robin")
    with pytest.raises(BackendError, match="answered 500: the engine crashed") as e:
        broken.chat(ask("hi"))
    assert not isinstance(e.value, BackendUnavailableError)
    assert sum(up.calls(i, "broken") for i in range(3)) == 1
    assert len(broken.replicas.healthy()) == 2  # a 5xx marks the replica down
    b.close()
    broken.close()


# -- streams that break after opening (a scripted client at the seam) ---------------------------


class _Chunk:
    def __init__(self, text: str):
        delta = type("Delta", (), {"content": text})()
        self.choices = [type("C", (), {"delta": delta, "finish_reason": None})()]
        self.usage = None


class _Events:
    def __init__(self, texts: list[str], fail_after: int | None):
        self.texts, self.fail_after, self.closed = texts, fail_after, False

    def __iter__(self):
        for i, t in enumerate(self.texts):
            if self.fail_after == i:
                raise openai.APIConnectionError(request=httpx.Request("POST", "http://x"))
            yield _Chunk(t)

    def close(self):
        self.closed = True


class _Client:
    def __init__(self, events: _Events):
        self.events, self.calls = events, 0
        self.chat = type("Chat", (), {"completions": self})()

    def create(self, **params):
        self.calls += 1
        return self.events


def _scripted(first: _Events, second: _Events) -> tuple[OpenAIBackend, _Client, _Client]:
    b = backend(["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"], replica_policy="round-robin")
    a, c = _Client(first), _Client(second)
    b.replicas.replicas[0].client, b.replicas.replicas[1].client = a, c
    return b, a, c


def test_a_stream_that_breaks_before_any_token_is_resent():
    b, a, c = _scripted(_Events(["x"], fail_after=0), _Events(["hello", " there"], fail_after=None))
    assert "".join(b.stream(ask("hi"))) == "hello there"
    assert (a.calls, c.calls) == (1, 1) and a.events.closed and c.events.closed
    assert b.replicas.healthy() == ["http://127.0.0.1:2/v1"]
    assert [s["in_flight"] for s in b.replicas.snapshot()] == [0, 0]


def test_a_stream_that_breaks_after_a_token_is_not_resent():
    b, a, c = _scripted(_Events(["hel", "lo"], fail_after=1), _Events(["hello"], fail_after=None))
    got = []
    with pytest.raises(BackendUnavailableError, match="cannot reach http://127.0.0.1:1/v1"):
        got.extend(b.stream(ask("hi")))
    assert got == ["hel"] and (a.calls, c.calls) == (1, 0) and a.events.closed
    assert [s["in_flight"] for s in b.replicas.snapshot()] == [0, 0]


# -- the replica set and settings ---------------------------------------------------------------


def test_replica_set_orders_by_policy_and_health():
    now = [0.0]
    rs = ReplicaSet(["a", "b", "c"], policy="least-busy", backoff_s=1.0, max_backoff_s=3.0, clock=lambda: now[0])
    a, b, c = rs.replicas
    rs.start(a)
    rs.start(b)
    assert rs.plan()[0] is c
    rs.finish(a, "cannot reach a", down=True)
    assert [r.url for r in rs.plan()][-1] == "a" and rs.healthy() == ["b", "c"]
    now[0] = 1.01
    assert "a" in rs.healthy()
    rs.start(a)
    rs.finish(a, "again", down=True)  # second failure in a row: twice the backoff
    assert a.down_until == pytest.approx(3.01)
    rs.start(a)
    rs.finish(a)  # a success clears the record
    assert a.failures == 0 and a.down_until == 0.0

    rr = ReplicaSet(["a", "b", "c"], policy="round-robin")
    assert [rr.plan()[0].url for _ in range(6)] == ["a", "b", "c", "a", "b", "c"]
    pr = ReplicaSet(["a", "b", "c"], policy="prefix")
    assert len({pr.plan("same key")[0].url for _ in range(5)}) == 1


def test_prefix_key_is_the_system_and_first_user_message():
    msgs = [Message(role="system", content="S"), Message(role="user", content="U"),
            Message(role="assistant", content="A")]
    assert prefix_key(msgs) == "system\nS\nuser\nU\n"
    assert prefix_key(msgs, chars=4) == "syst"


def test_bad_fleet_config_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown replica policy 'fastest'"):
        backend(["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"], replica_policy="fastest")
    with pytest.raises(ConfigError, match="'localhost:8000/v1' is not an http"):
        backend("http://127.0.0.1:1/v1,localhost:8000/v1")
    with pytest.raises(ConfigError, match="listed twice"):
        backend(["http://127.0.0.1:1/v1", "http://127.0.0.1:1/v1/"])


def test_settings_take_several_base_urls(tmp_path, monkeypatch):
    monkeypatch.delenv("AGENTRT_CONFIG", raising=False)
    monkeypatch.delenv("AGENTRT_BASE_URL", raising=False)
    cfg = tmp_path / "agentrt.toml"
    cfg.write_text('base_url = ["http://10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1/"]\nreplica_policy = "prefix"\n')
    s = load_settings(cfg)
    assert s.base_url == "http://10.0.0.1:8000/v1,http://10.0.0.2:8000/v1" and s.replica_policy == "prefix"
    monkeypatch.setenv("AGENTRT_BASE_URL", "http://a:1/v1, http://b:2/v1")
    assert load_settings(cfg).base_url == "http://a:1/v1,http://b:2/v1"
    monkeypatch.setenv("AGENTRT_BASE_URL", "http://a:1/v1,ftp://b/v1")
    with pytest.raises(ConfigError, match="invalid setting base_url.*'ftp://b/v1' is not an http"):
        load_settings(cfg)
    monkeypatch.delenv("AGENTRT_BASE_URL")
    with pytest.raises(ConfigError, match="replica_policy"):
        load_settings(cfg, replica_policy="fastest")
    b = OpenAIBackend.from_options("fake", base_url=s.base_url, replica_policy=s.replica_policy)
    assert b.replicas is not None and b.replicas.policy == "prefix" and len(b.replicas) == 2
    assert OpenAIBackend("fake", base_url="http://10.0.0.1:8000/v1").replicas is None
