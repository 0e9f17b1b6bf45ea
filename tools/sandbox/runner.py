"""What a confined sandbox process runs: a model-written program, or a preloaded worker function.

This code runs only inside the sandboxed processes, after `child.confine` has applied every
restriction; model-written programs are compiled and executed here and nowhere else. The run's
init calls `compile_job` before it forks the program, so a syntax error is found and reported by
code the program never ran beside. The program process then calls `run_job`, which mimics
`python main.py` (a `__main__` module, tracebacks on stderr, exit status, atexit handlers,
waiting for non-daemon threads) and writes the value the caller asked for as one JSON document
to file descriptor 3. That document is the program's own word: once the program has run,
nothing in its process can be trusted, so the host reads from it only a value or one of a few
fixed error codes, never a record of the sandbox's own. It knows nothing about how the process
was confined or how its output is collected.
"""

from __future__ import annotations

import atexit
import builtins
import importlib
import io
import json
import linecache
import os
import signal
import sys
import threading
import traceback
from types import CodeType
from typing import Any, NoReturn

__all__ = ["compile_job", "run_job", "finish", "write_result", "RESULT_ERRORS"]

RESULT_FD = 3
_MAX_RESULT = 1 << 20
_exit = os._exit  # bound now: a program that replaces os._exit must not keep the process alive
# The only errors the value channel may carry (the host words the message itself).
RESULT_ERRORS = ("missing", "not_json", "too_large")


def _stdio() -> None:
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8", errors="replace")
    out = io.FileIO(1, "w", closefd=False)
    err = io.FileIO(2, "w", closefd=False)
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(out), encoding="utf-8", errors="backslashreplace", line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.BufferedWriter(err), encoding="utf-8", errors="backslashreplace", line_buffering=True)
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        pass


def write_result(doc: dict) -> None:
    """Write `doc` ({"value": ...} or {"error": code}) as JSON to the value descriptor."""
    try:
        data = json.dumps(doc, allow_nan=False).encode()
    except (TypeError, ValueError):
        data = json.dumps({"error": "not_json"}).encode()
    if len(data) > _MAX_RESULT:
        data = json.dumps({"error": "too_large"}).encode()
    _write_all(RESULT_FD, data)


def _exit_code(e: SystemExit) -> int:
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code & 0xFF
    print(e.code, file=sys.stderr)
    return 1


def compile_job(job: dict) -> tuple[CodeType | None, dict | None]:
    """Compile the job's program before any of it runs: (code, None), (None, syntax error), or
    (None, None) when it is too deep or too large to compile (nothing to compile for a worker).

    A syntax error is printed to stderr the way the interpreter prints it; its details go
    back to the caller (the run's init reports them, out of the program's reach).
    """
    if job["entry"] != "python":
        return None, None
    path = os.path.join(os.getcwd(), "main.py")
    try:
        return compile(job["code"], path, "exec", dont_inherit=True), None
    except (SyntaxError, ValueError) as e:
        detail = {"message": str(getattr(e, "msg", e))[:500], "line": getattr(e, "lineno", None),
                  "offset": getattr(e, "offset", None), "text": (getattr(e, "text", None) or "")[:500]}
        text = "".join(traceback.format_exception(type(e), e, None, limit=0))
        _write_all(2, text.encode("utf-8", "backslashreplace"))
        return None, detail
    except (RecursionError, MemoryError, OverflowError) as e:  # too deep or too large to compile
        _write_all(2, f"{type(e).__name__}: {e}\n".encode("utf-8", "backslashreplace"))
        return None, None


def _run_python(job: dict, code: CodeType) -> int:
    path = os.path.join(os.getcwd(), "main.py")
    src = job["code"]
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(src)
    except OSError:
        pass  # tracebacks still get the source from linecache below
    lines = src.splitlines(keepends=True)
    linecache.cache[path] = (len(src), None, lines, path)
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
        write_result({"value": scope[name]} if name in scope else {"error": "missing"})
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


def run_job(job: dict, code: CodeType | None = None) -> int:
    """Run the job's entry (`code`, compiled by `compile_job`, for a program) with fresh stdio
    and the job's environment; return the exit status."""
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the init runs without handlers
    _stdio()
    os.environ.clear()
    os.environ.update(job.get("env") or {})
    atexit._clear()  # handlers registered by the fork helper's imports are not this run's
    if job["entry"] == "python":
        assert code is not None, "compile_job first"
        return _run_python(job, code)
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
