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
