"""Helpers shared by tests in several directories (importable as `helpers`: tests/conftest.py
puts this folder on sys.path, as pytest runs in importlib mode).

- `fresh_pg_database`: a new database on the local PostgreSQL, dropped afterwards.
- `parametrize_backends`: run a test that uses `db_url` (or `store`) on SQLite and PostgreSQL.
- `saved_outputs`: which expert outputs a checkpointed slow solve has saved so far.
- `FakeTool`, `ok`, `crashed`: a scripted python-like tool and the run results it hands back.
- `killed_at_checkpoint`: a solve that "dies" while writing the checkpoint of one superstep.
- `run_cli`: many `agentrt` command lines through the console script's entry point in one
  subprocess (each spawn would import the whole CLI again): exit code, stdout, stderr each.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

PG_ADMIN_URL = os.environ.get("AGENTRT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", pytest.param("postgresql", marks=pytest.mark.postgres))
_pg_state: dict[str, str | None] = {}


def _pg_unavailable() -> str | None:
    """None when the PostgreSQL admin URL answers, else why not (checked once per run)."""
    if "reason" not in _pg_state:
        try:
            import psycopg

            with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
                _pg_state["reason"] = None
        except Exception as e:  # noqa: BLE001 - any failure means: skip the PostgreSQL tests
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            _pg_state["reason"] = f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {first}"
    return _pg_state["reason"]


@contextlib.contextmanager
def fresh_pg_database(prefix: str = "agentrt_test", scheme: str = "postgresql") -> Iterator[str]:
    """URL of a new, empty database on the local PostgreSQL (admin URL `AGENTRT_TEST_PG_URL`),
    dropped afterwards; skips the test, with the reason, when that server cannot be reached."""
    reason = _pg_unavailable()
    if reason:
        pytest.skip(reason)
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        yield (make_url(PG_ADMIN_URL).set(drivername=scheme, database=name)
               .render_as_string(hide_password=False))
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def parametrize_backends(metafunc: pytest.Metafunc) -> None:
    """For a `pytest_generate_tests` hook: tests using `db_url` run on SQLite and PostgreSQL."""
    if "db_url" in metafunc.fixturenames:
        metafunc.parametrize("db_url", BACKENDS, indirect=True)


def saved_outputs(saver, trace_id: str) -> set[str]:
    """Names of the expert outputs written to the checkpoints of `trace_id` so far."""
    done: set[str] = set()
    for tup in saver.list({"configurable": {"thread_id": trace_id}}):
        for _, channel, value in tup.pending_writes or []:
            if channel == "outputs" and isinstance(value, dict):
                done |= set(value)
    return done


class FakeTool:
    """A python-like tool whose runs follow a script (the last entry repeats)."""

    description = "Run a Python program."
    input_schema = {"type": "object", "required": ["code"],
                    "properties": {"code": {"type": "string"}, "timeout_s": {"type": "number"},
                                   "memory_mb": {"type": "integer"}}}

    def __init__(self, *outputs, name="python"):
        self.name = name
        self.outputs = list(outputs) or [ok("55299\n")]
        self.calls = []

    def run(self, args):
        self.calls.append(args)
        out = self.outputs[min(len(self.calls), len(self.outputs)) - 1]
        if isinstance(out, Exception):
            raise out
        return out


def ok(stdout):
    return {"stdout": stdout, "stderr": "", "exit_code": 0, "timed_out": False}


def crashed(stderr):
    return {"stdout": "", "stderr": stderr, "exit_code": 1, "timed_out": False}


class Killed(BaseException):
    """Stands for the process dying (raised where a SIGKILL would have struck)."""


@contextlib.contextmanager
def killed_at_checkpoint(step: int) -> Iterator[None]:
    """Run the block's solve until it writes the checkpoint of superstep `step`, then "die":
    the step's tasks have saved their writes, its checkpoint is never saved. The block must
    end in that death."""
    from agentrt.workflows.checkpoint import SqlCheckpointer

    real = SqlCheckpointer.put

    def put(self, config, checkpoint, metadata, new_versions):
        if metadata.get("step") == step:
            raise Killed()
        return real(self, config, checkpoint, metadata, new_versions)

    SqlCheckpointer.put = put
    try:
        with pytest.raises(Killed):
            yield
    finally:
        SqlCheckpointer.put = real


_CLI_CASES = """
import contextlib, io, json, sys
from agentrt.cli import main
found = []
for argv, stdin in json.loads(sys.argv[1]):
    if stdin is not None:
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin.encode("latin-1")), encoding="utf-8")
    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    found.append([code, out.getvalue(), err.getvalue()])
sys.__stdout__.write(json.dumps(found))
"""


def run_cli(cases: list[tuple[list[str], str | None]], env: dict[str, str],
            timeout: float = 300) -> list[list]:
    """[exit code, stdout, stderr] of each (argv, stdin as latin-1 text or None), in order."""
    proc = subprocess.run([sys.executable, "-c", _CLI_CASES, json.dumps(cases)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)
