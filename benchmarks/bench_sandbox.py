"""Sandbox latency: per-call p50/p95 of `print(1)` and of a sympy solve, sequential and with 8
concurrent callers, against in-process exec (the floor) and a cold `python -I` per call.

    .venv/bin/python benchmarks/bench_sandbox.py [--n 200] [--callers 8]

Prints a markdown table. The in-process rows run OUR constant inputs with exec/sympy in this
process (never model text); they are the floor a sandbox can only approach. Also prints how
far past their limit a few resource bombs ran (the kill latency).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from agentrt.tools.python_tool import PythonTool
from agentrt.tools.sandbox import Sandbox, SandboxLimits
from agentrt.tools.sympy_tool import SympyTool

SOLVE = {"op": "solve", "expr": "x^2 - 5*x + 6 = 0"}


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def concurrent(fn, n: int, callers: int) -> tuple[list[float], float]:
    lat: list[float] = []
    lock = threading.Lock()
    per = max(1, n // callers)

    def work() -> None:
        mine = timed(fn, per)
        with lock:
            lat.extend(mine)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat, len(lat) / (time.perf_counter() - t0)


def inprocess_print() -> None:
    code = compile("print(1)", "<bench>", "exec")
    with contextlib.redirect_stdout(io.StringIO()):
        exec(code, {"__name__": "__main__"})  # noqa: S102 - constant benchmark input


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--callers", type=int, default=8)
    args = ap.parse_args()
    n, callers = args.n, args.callers

    from agentrt.tools import sympy_worker

    t0 = time.perf_counter()
    sandbox = Sandbox()
    info = sandbox.start()
    start_s = time.perf_counter() - t0
    py, sy = PythonTool(sandbox=sandbox), SympyTool(sandbox=sandbox)
    py.run({"code": "print(1)"})
    sy.run(SOLVE)
    sympy_worker.main(dict(SOLVE))

    rows = []
    floor_py = timed(inprocess_print, n)
    floor_sy = timed(lambda: sympy_worker.main(dict(SOLVE)), n)
    rows.append(("print(1)", "in-process exec (floor)", floor_py, None))
    rows.append(("sympy solve", "in-process sympy (floor)", floor_sy, None))
    cold = timed(lambda: subprocess.run([sys.executable, "-I", "-c", "print(1)"], capture_output=True), max(10, n // 10))
    rows.append(("print(1)", "cold `python -I` subprocess", cold, None))
    cold_sy = timed(lambda: subprocess.run([sys.executable, "-I", "-c", "import sympy"], capture_output=True), 5)
    rows.append(("sympy solve", "cold `python -I` + import sympy", cold_sy, None))
    rows.append(("print(1)", "sandbox, sequential", timed(lambda: py.run({"code": "print(1)"}), n), None))
    rows.append(("sympy solve", "sandbox, sequential", timed(lambda: sy.run(SOLVE), n), None))
    lat, tput = concurrent(lambda: py.run({"code": "print(1)"}), n, callers)
    rows.append(("print(1)", f"sandbox, {callers} concurrent callers", lat, tput))
    lat, tput = concurrent(lambda: sy.run(SOLVE), n, callers)
    rows.append(("sympy solve", f"sandbox, {callers} concurrent callers", lat, tput))

    floors = {"print(1)": statistics.median(floor_py), "sympy solve": statistics.median(floor_sy)}
    print(f"tier: {info.tier}; helper start (imports sympy, probes): {start_s:.2f} s; cores: {os.cpu_count()}; "
          f"load average at end: {os.getloadavg()[0]:.1f}\n")
    print("| workload | how | p50 ms | p95 ms | p50 / floor | calls/s |")
    print("|---|---|---:|---:|---:|---:|")
    for what, how, xs, tput in rows:
        p50 = pct(xs, 0.5)
        print(f"| {what} | {how} | {p50 * 1e3:.2f} | {pct(xs, 0.95) * 1e3:.2f} | {p50 / floors[what]:.0f}x | "
              f"{tput:.0f} |" if tput else f"| {what} | {how} | {p50 * 1e3:.2f} | {pct(xs, 0.95) * 1e3:.2f} | "
              f"{p50 / floors[what]:.0f}x | |")

    print("\nkill latency of resource bombs (limit 2 s):\n")
    print("| bomb | ran s | past the limit s | killed_reason |")
    print("|---|---:|---:|---|")
    bombs = {"cpu loop": "while True: pass", "sleep": "import time\ntime.sleep(100)",
             "fork bomb": "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass",
             "10**10**7": "x = 10**10**7"}
    for name, code in bombs.items():
        res = sandbox.run(code, limits=SandboxLimits(timeout_s=2.0, max_processes=32))
        print(f"| {name} | {res.duration_s:.2f} | {res.duration_s - 2.0:.2f} | {res.killed_reason} |")
    sandbox.close()


if __name__ == "__main__":
    main()
