"""Fixtures for the store tests: every test that uses `db_url` or `store` (tests/conftest.py)
runs on SQLite and on PostgreSQL; writer processes for the concurrency tests.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import parametrize_backends

_WORKERS = Path(__file__).with_name("workers.py")


def pytest_generate_tests(metafunc):
    parametrize_backends(metafunc)


@pytest.fixture(scope="session")
def workers():
    """The writer module shared by thread and process tests."""
    spec = importlib.util.spec_from_file_location("store_test_workers", _WORKERS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def spawn(workers, tmp_path):
    """Start writer processes that begin together; returns (start, go, wait) helpers."""
    sync = tmp_path / "sync"
    sync.mkdir()
    procs: list[tuple[str, subprocess.Popen]] = []

    def start(url: str, role: str, worker: str, n_traces: int, n_steps: int) -> None:
        args = [sys.executable, str(_WORKERS), url, role, worker, str(n_traces), str(n_steps), str(sync)]
        procs.append((worker, subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)))

    def go(timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        for worker, proc in procs:
            while not (sync / f"ready-{worker}").exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    out = proc.communicate()[0].decode()
                    raise AssertionError(f"worker {worker} never became ready:\n{out}")
                time.sleep(0.005)
        (sync / "go").touch()

    def wait(timeout_s: float = 120.0) -> None:
        for worker, proc in procs:
            out, _ = proc.communicate(timeout=timeout_s)
            assert proc.returncode == 0, f"worker {worker} failed:\n{out.decode()}"

    yield start, go, wait
    for _, proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
