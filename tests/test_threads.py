"""The wanted torch thread count reaches worker threads that are already running."""

from __future__ import annotations

import threading

import pytest
import torch

from agentrt.core import threads


@pytest.fixture
def restore():
    before = torch.get_num_threads()
    yield
    threads.configure(None)
    torch.set_num_threads(before)


def test_a_running_worker_follows_a_later_setting(restore):
    threads.configure(1)
    first, again, seen = threading.Event(), threading.Event(), []

    def worker() -> None:
        torch.ones(64, 64) @ torch.ones(64, 64)  # the thread's own count is fixed from here
        threads.apply()
        seen.append(torch.get_num_threads())
        first.set()
        again.wait(10)
        threads.apply()
        seen.append(torch.get_num_threads())

    t = threading.Thread(target=worker)
    t.start()
    first.wait(10)
    threads.configure(2)  # from another thread, after the worker started
    again.set()
    t.join(10)
    assert seen == [1, 2]


def test_auto_picks_a_count_within_the_cores(restore):
    threads.configure("auto", poll_s=3600)
    assert 1 <= threads.wanted() <= (__import__("os").cpu_count() or 1)


@pytest.mark.parametrize("bad", [0, -1, "many", 1.5, True])
def test_bad_settings_are_refused(bad, restore):
    with pytest.raises(ValueError, match="threads"):
        threads.configure(bad)


def test_work_on_its_own_thread_returns_its_result_and_raises_its_error():
    here = threading.get_ident()
    assert threads.on_own_thread(lambda x, y=0: (x + y, threading.get_ident()), 2, y=3)[0] == 5
    assert threads.on_own_thread(threading.get_ident) != here

    def fail() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        threads.on_own_thread(fail)


def test_the_hf_backend_loads_its_model_on_the_thread_that_decodes(tiny_llama_dir, monkeypatch):
    from agentrt.core.types import ChatRequest
    from agentrt.llm import hf

    seen = {}
    real_load = hf.load_model

    def load(*args, **kwargs):
        seen["load"] = threading.current_thread().name
        return real_load(*args, **kwargs)

    real_step = hf.DecodeBatch.step

    def step(self):
        seen["step"] = threading.current_thread().name
        return real_step(self)

    monkeypatch.setattr(hf, "load_model", load)
    monkeypatch.setattr(hf.DecodeBatch, "step", step)
    backend = hf.HFBackend(str(tiny_llama_dir), device="cpu")
    try:
        backend.chat(ChatRequest.of("hi", max_tokens=2))
    finally:
        backend.close()
    assert seen["load"] == seen["step"] == "hf-decode"


def test_a_backend_that_cannot_load_stops_its_decode_thread(tmp_path):
    from agentrt.core.errors import ModelNotFoundError
    from agentrt.llm.hf import HFBackend

    before = {t.ident for t in threading.enumerate()}
    with pytest.raises(ModelNotFoundError):
        HFBackend(str(tmp_path / "missing"), device="cpu")
    left = [t for t in threading.enumerate() if t.ident not in before and t.name == "hf-decode"]
    assert left == []
