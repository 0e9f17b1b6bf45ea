"""Fixtures of the server tests: the shared fake-backend server and a tight one for load tests.

Helpers live in server_harness.py; the scripted app in fake_server_app.py. Both are imported by
name, so this directory goes on sys.path (pytest runs in importlib mode).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from server_harness import launch, stop  # noqa: E402


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """The fake-backend server most tests share: API key, 64 KiB bodies, 16 at a time, and a
    tool time limit long enough that only a kill stops a sandboxed program early."""
    s = launch(tmp_path_factory.mktemp("server"), env={
        "AGENTRT_SERVER_MAX_BODY_BYTES": "65536",
        "AGENTRT_SERVER_MAX_CONCURRENCY": "16",
        "AGENTRT_SERVER_MAX_MESSAGES": "50",
        "AGENTRT_SERVER_MAX_MESSAGE_CHARS": "8000",
        "AGENTRT_LIMIT_TOOL_TIMEOUT_S": "60",  # only a kill ends the disconnect test's program
    })
    yield s
    stop(s)


@pytest.fixture(scope="module")
def tight_server(tmp_path_factory):
    """A server with 2 request slots and a 3 s deadline, for load, deadline and 429 tests."""
    s = launch(tmp_path_factory.mktemp("tight"), env={
        "AGENTRT_SERVER_MAX_CONCURRENCY": "2",
        "AGENTRT_SERVER_REQUEST_TIMEOUT_S": "3",
        "AGENTRT_SERVER_RETRY_AFTER_S": "2",
    })
    yield s
    stop(s)
