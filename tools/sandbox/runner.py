"""What a confined sandbox process runs: a model-written program, or a preloaded worker function.

This code runs only inside the sandboxed child, after `child.confine` has applied every
restriction; model-written programs are compiled and executed here and nowhere else. It mimics
`python main.py` (a `__main__` module, tracebacks on stderr, exit status, atexit handlers,
waiting for non-daemon threads) and writes structured side results as one JSON document to
file descriptor 3: a syntax error, the value of a requested variable, or a worker's answer.
It knows nothing about how the process was confined or how its output is collected.
"""

from __future__ import annotations

import atexit
import builtins
import importlib
import io
import json
import linecache
import os
import sys
import threading
import traceback
from typing import Any, NoReturn

__all__ = ["run_job", "finish", "write_result"]

RESULT_FD = 3
_MAX_RESULT = 1 << 20
_exit = os._exit  # bound now: a program that replaces os._exit must not keep the process alive


def _stdio() -> None:
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8", errors="replace")
    out = io.FileIO(1, "w", closefd=False)
    err = io.FileIO(2, "w", closefd=False)
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(out), encoding="utf-8", errors="backslashreplace", line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.BufferedWriter(err), encoding="utf-8", errors="backslashreplace", line_buffering=True)
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr


def write_result(doc: dict) -> None:
    """Write `doc` as JSON to the result descriptor (at most once per run; size capped)."""
    try:
        data = json.dumps(doc, allow_nan=False).encode()
    except (TypeError, ValueError) as e:
        data = json.dumps({"result_error": f"result is not JSON-serializable: {e}"}).encode()
    if len(data) > _MAX_RESULT:
        data = json.dumps({"result_error": f"result too large ({len(data)} bytes > {_MAX_RESULT})"}).encode()
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(RESULT_FD, view):]
    except OSError:
        pass


def _exit_code(e: SystemExit) -> int:
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code & 0xFF
    print(e.code, file=sys.stderr)
    return 1


def _run_python(job: dict) -> int:
    path = os.path.join(os.getcwd(), "main.py")
    src = job["code"]
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(src)
    except OSError:
        pass  # tracebacks still get the source from linecache below
    lines = src.splitlines(keepends=True)
    linecache.cache[path] = (len(src), None, lines, path)
    try:
        code = compile(src, path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as e:
        detail = {"message": getattr(e, "msg", str(e)), "line": getattr(e, "lineno", None),
                  "offset": getattr(e, "offset", None), "text": (getattr(e, "text", None) or "")[:500]}
        write_result({"syntax_error": detail})
        traceback.print_exception(type(e), e, None, limit=0)
        return 1
    sys.argv = [path]
    sys.path.insert(0, os.getcwd())
    scope: dict[str, Any] = {"__name__": "__main__", "__file__": path, "__builtins__": builtins, "__doc__": None}
    status = 0
    try:
        exec(code, scope)  # noqa: S102 - this is the confined sandbox process
    except SystemExit as e:
        status = _exit_code(e)
    except BaseException as e:  # noqa: BLE001 - report like the interpreter does
        traceback.print_exception(type(e), e, e.__traceback__.tb_next if e.__traceback__ else None)
        status = 1
    name = job.get("result_var")
    if name:
        if name in scope:
            write_result({"value": scope[name]})
        else:
            write_result({"result_error": f"the program did not define {name!r}"})
    return status


def _run_call(job: dict) -> int:
    module_name, _, attr = job["entry"].partition(":")
    module = sys.modules.get(module_name) or importlib.import_module(module_name)
    try:
        answer = getattr(module, attr)(job.get("args") or {})
    except SystemExit as e:
        return _exit_code(e)
    write_result({"value": answer})
    return 0


def run_job(job: dict) -> int:
    """Run the job's entry with fresh stdio and the job's environment; return the exit status."""
    _stdio()
    os.environ.clear()
    os.environ.update(job.get("env") or {})
    atexit._clear()  # handlers registered by the fork helper's imports are not this run's
    if job["entry"] == "python":
        return _run_python(job)
    return _run_call(job)


def finish(status: int) -> NoReturn:
    """End the process the way the interpreter would, without returning into the fork helper."""
    try:
        main = threading.main_thread()
        for t in threading.enumerate():
            if t is not main and not t.daemon:
                t.join()
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001
        status = status or 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass
    _exit(status)


def probe_info(args: dict) -> dict:
    """Worker used by the fork helper's start-up probe: what the confined process sees."""
    return {"ok": True, "pid": os.getpid(), "uid": os.getuid(), "cwd": os.getcwd()}
