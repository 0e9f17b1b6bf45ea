"""The micro-batcher that gathers concurrent calls."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from agentrt.llm.batcher import MicroBatcher


def run_in_threads(batcher: MicroBatcher, items: list) -> list:
    results: list = [None] * len(items)
    barrier = threading.Barrier(len(items))

    def call(i: int) -> None:
        barrier.wait()
        try:
            results[i] = batcher.submit(items[i])
        except Exception as e:  # noqa: BLE001 - the test inspects it
            results[i] = e

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(items))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_submits_are_gathered_and_answered_in_place():
    seen: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        seen.append(list(items))
        return [x * 10 for x in items]

    batcher = MicroBatcher(run, max_weight=8, wait_s=0.5)
    results = run_in_threads(batcher, list(range(8)))
    assert results == [x * 10 for x in range(8)]
    assert batcher.stats.items == 8 and batcher.stats.max_size > 1
    assert all(len(batch) <= 8 for batch in seen)
    batcher.close()


def test_weights_bound_a_batch():
    seen: list[list[int]] = []
    batcher = MicroBatcher(lambda xs: seen.append(xs) or xs, max_weight=4, wait_s=0.5, weight=lambda x: x)
    run_in_threads(batcher, [2, 2, 2, 2])
    assert all(sum(batch) <= 4 for batch in seen) and sum(map(sum, seen)) == 8
    batcher.close()


def test_a_failing_item_fails_only_its_caller():
    def run(items: list[int]) -> list[int]:
        if 3 in items:
            raise ValueError("three is bad")
        return items

    batcher = MicroBatcher(run, max_weight=8, wait_s=0.3)
    results = run_in_threads(batcher, [1, 2, 3, 4])
    assert results[:2] == [1, 2] and results[3] == 4
    assert isinstance(results[2], ValueError)
    batcher.close()


def test_wrong_result_count_and_closed_batcher_raise():
    batcher = MicroBatcher(lambda xs: [], max_weight=2, wait_s=0)
    with pytest.raises(RuntimeError, match="0 results"):
        batcher.submit(1)
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(1)
    with pytest.raises(ValueError):
        MicroBatcher(lambda xs: xs, max_weight=0)


def test_a_burst_spaced_under_the_window_rides_in_one_batch():
    import time

    seen: list[list[int]] = []
    batcher = MicroBatcher(lambda xs: seen.append(list(xs)) or xs, max_weight=8, wait_s=0.2)

    def staggered(i: int) -> None:
        time.sleep(0.05 * i)  # 0-350 ms: past one window, each gap well inside it
        batcher.submit(i)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(staggered, range(8)))
    assert seen == [list(range(8))]
    assert batcher.submit(99) == 99 and seen[-1] == [99]  # a lone call goes alone
    batcher.close()
