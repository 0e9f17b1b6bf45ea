"""Soak: one server on PostgreSQL under mixed load for a long while, restarted by SIGTERM.

Starts `agentrt serve` (the embedded model on the hf backend unless told otherwise) on a fresh
PostgreSQL database, then for `--minutes` runs `--clients` client threads that send, at random:
fast, slow and auto solves, streamed solves, plain model calls, requests dropped by the client
before they finish (disconnects), and Idempotency-Key retries (the same key sent twice). Every
`--restart-every` seconds the server gets SIGTERM and is started again on the same database.
At the end it reports requests by outcome, traces stored by status, traces left `running`
(target 0; with leases a trace whose owner is gone reads `interrupted`, never `running`), the
server's memory (RSS) over time, and writes `soak.json` and `soak.png` under `--out`.

    python benchmarks/bench_soak.py --minutes 30 --out runs/soak
    python benchmarks/bench_soak.py --minutes 3 --restart-every 60 --out /tmp/soak   # a quick look

Needs PostgreSQL (default `postgresql+psycopg://postgres@127.0.0.1:5432/test`; a database
`agentrt_soak_<pid>` is created next to it and dropped at the end unless `--keep-db`).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psycopg

from agentrt.store import TraceStore

PROBLEMS = [
    "What is 17*23+5?", "A shop sells pens at 3 dollars each. How much do 14 pens cost?",
    "What is 144 divided by 12, plus 7?", "Tom has 25 apples and gives away 9. How many are left?",
    "What is 2 to the power 10?", "A train travels 60 km per hour for 3 hours. How far does it go?",
]
KINDS = ("fast", "slow", "auto", "stream", "model", "disconnect", "retry")
WEIGHTS = (4, 2, 2, 2, 3, 1, 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`agentrt serve` in its own process group, restartable on the same port and database."""

    def __init__(self, args: argparse.Namespace, db_url: str) -> None:
        self.port, self.args, self.db_url = free_port(), args, db_url
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        cmd = [sys.executable, "-m", "agentrt.cli", "serve", "--host", "127.0.0.1",
               "--port", str(self.port), "--log-level", "warning", "--database-url", self.db_url,
               "--backend", self.args.backend, *(["--model", self.args.model] if self.args.model else [])]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTRT_")}
        env["AGENTRT_SERVER_SHUTDOWN_GRACE_S"] = str(self.args.grace)
        if self.args.home:
            env["AGENTRT_HOME"] = self.args.home
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, env=env, start_new_session=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while time.monotonic() - t0 < 600:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with {self.proc.returncode}: "
                                 f"{self.proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return time.monotonic() - t0
            except httpx.HTTPError:
                time.sleep(0.3)
        raise SystemExit("server did not start in 10 minutes")

    def stop(self) -> tuple[float, int | None]:
        """SIGTERM the server's group; seconds until it exited and its exit code."""
        t0 = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=self.args.grace + 30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait()
        return time.monotonic() - t0, code

    def rss_mb(self) -> float | None:
        """Resident memory of the server process and its children (the sandbox helper)."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        out = subprocess.run(["ps", "-o", "rss=", "--ppid", str(self.proc.pid), "-p",
                              str(self.proc.pid)], capture_output=True, text=True).stdout
        return sum(int(x) for x in out.split()) / 1024


def one_request(client: httpx.Client, url: str, kind: str, rng: random.Random,
                backend_model: str) -> str:
    """Send one request of `kind`; the outcome as a short label."""
    problem = rng.choice(PROBLEMS)
    model = {"fast": "agentrt-fast", "slow": "agentrt-slow", "auto": "agentrt-auto",
             "stream": rng.choice(["agentrt-fast", "agentrt-auto"]), "disconnect": "agentrt-slow",
             "retry": "agentrt-fast"}.get(kind)
    body = {"model": model or backend_model,
            "messages": [{"role": "user", "content": problem}]}
    if kind == "model":
        body["max_tokens"] = 24
    if kind == "stream":
        body["stream"] = True
        with client.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
            if r.status_code != 200:
                return f"http_{r.status_code}"
            done = any(line.strip() == "data: [DONE]" for line in r.iter_lines())
            return "ok" if done else "stream_cut"
    if kind == "disconnect":
        try:
            client.post(f"{url}/v1/chat/completions", json=body, timeout=rng.uniform(1, 5))
        except httpx.TimeoutException:
            return "disconnected"
        return "ok"
    headers = {}
    if kind == "retry":
        headers["Idempotency-Key"] = f"soak-{rng.getrandbits(64):x}"
    r = client.post(f"{url}/v1/chat/completions", json=body, headers=headers)
    if kind == "retry" and r.status_code == 200:
        again = client.post(f"{url}/v1/chat/completions", json=body, headers=headers)
        same = again.status_code == 200 and again.json()["id"] == r.json()["id"]
        return "ok" if same and again.headers.get("idempotent-replayed") == "true" else "retry_mismatch"
    return "ok" if r.status_code == 200 else f"http_{r.status_code}"


def client_loop(url: str, stop: threading.Event, seed: int, out: collections.Counter,
                lock: threading.Lock, keepalive: bool = True) -> None:
    rng = random.Random(seed)
    limits = httpx.Limits() if keepalive else httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(timeout=600, limits=limits) as client:
        backend_model = client.get(f"{url}/health").json()["model"]
        while not stop.is_set():
            kind = rng.choices(KINDS, WEIGHTS)[0]
            try:
                outcome = one_request(client, url, kind, rng, backend_model)
            except httpx.TransportError as e:  # the server is restarting
                outcome = f"connection_{type(e).__name__}"
                time.sleep(1)
            with lock:
                out[(kind, outcome)] += 1


def fresh_database(admin_url: str) -> tuple[str, str]:
    name = f"agentrt_soak_{os.getpid()}"
    with psycopg.connect(admin_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, admin_url.rsplit("/", 1)[0] + f"/{name}"


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def trace_counts(admin_url: str, db_name: str, db_url: str) -> dict[str, int]:
    """Traces by the status stored in the table, and those the store lists as interrupted."""
    url = admin_url.replace("+psycopg", "").rsplit("/", 1)[0] + f"/{db_name}"
    with psycopg.connect(url) as conn:
        counts = {f"stored:{s}": n for s, n in conn.execute(
            "SELECT status, count(*) FROM traces GROUP BY status ORDER BY status")}
    with TraceStore(db_url) as store:
        counts["listed:interrupted"] = len(store.list_traces(limit=100_000, status="interrupted"))
    return counts


def plot(memory: list[tuple[float, float]], restarts: list[float], path: Path) -> None:
    import matplotlib  # heavy: matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: matplotlib

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot([t / 60 for t, _ in memory], [m for _, m in memory], lw=1)
    for t in restarts:
        ax.axvline(t / 60, color="grey", lw=0.5, ls="--")
    ax.set_xlabel("minutes (dashed: SIGTERM and restart)")
    ax.set_ylabel("server RSS, MB")
    ax.set_title("agentrt serve under mixed load")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--restart-every", type=float, default=300, help="seconds between SIGTERMs")
    ap.add_argument("--grace", type=float, default=10, help="server shutdown grace (s)")
    ap.add_argument("--backend", default="hf")
    ap.add_argument("--model", default=None)
    ap.add_argument("--home", default=None, help="agentrt home (model cache)")
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--out", type=Path, default=Path("runs/soak"))
    ap.add_argument("--keep-db", action="store_true")
    ap.add_argument("--no-keepalive", action="store_true",
                    help="a new connection per request (tells a cut response from a request "
                         "sent on a kept-alive connection the server was closing)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    db_name, db_url = fresh_database(args.pg)
    server = Server(args, db_url)
    outcomes: collections.Counter = collections.Counter()
    lock, stop = threading.Lock(), threading.Event()
    memory, restarts, stops, starts = [], [], [], [server.start()]
    t0 = time.monotonic()
    clients = [threading.Thread(target=client_loop, args=(server.url, stop, seed, outcomes, lock,
                                                          not args.no_keepalive),
                                daemon=True) for seed in range(args.clients)]
    for c in clients:
        c.start()
    next_restart = t0 + args.restart_every
    try:
        while (now := time.monotonic()) - t0 < args.minutes * 60:
            rss = server.rss_mb()
            if rss is not None:
                memory.append((now - t0, rss))
            if now >= next_restart:
                restarts.append(now - t0)
                stops.append(server.stop())
                starts.append(server.start())
                next_restart = time.monotonic() + args.restart_every
            time.sleep(5)
    finally:
        stop.set()
        for c in clients:
            c.join(timeout=args.grace + 600)
        final_stop = server.stop()
    counts = trace_counts(args.pg, db_name, db_url)
    total = sum(outcomes.values())
    report = {
        "minutes": args.minutes, "clients": args.clients, "backend": args.backend,
        "keepalive": not args.no_keepalive,
        "restarts": len(restarts), "requests": total,
        "ok": sum(n for (_, o), n in outcomes.items() if o in ("ok", "disconnected")),
        "outcomes": {f"{k}:{o}": n for (k, o), n in sorted(outcomes.items())},
        "traces": counts, "left_running": counts.get("stored:running", 0),
        "start_s": [round(s, 1) for s in starts],
        "stop_s_and_code": [(round(s, 1), c) for s, c in [*stops, final_stop]],
        "rss_mb": {"first": memory[0][1] if memory else None,
                   "max": max((m for _, m in memory), default=None),
                   "last": memory[-1][1] if memory else None},
        "memory": [(round(t, 1), round(m, 1)) for t, m in memory],
    }
    (args.out / "soak.json").write_text(json.dumps(report, indent=2))
    plot(memory, restarts, args.out / "soak.png")
    summary = {k: v for k, v in report.items() if k != "memory"}
    print(json.dumps(summary, indent=2))
    if not args.keep_db:
        drop_database(args.pg, db_name)


if __name__ == "__main__":
    main()
