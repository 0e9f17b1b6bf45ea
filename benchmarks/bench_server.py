"""The OpenAI-compatible server: throughput and latency, batching speed-up, per-request overhead.

Starts real servers (`agentrt serve`) on free loopback ports and measures over HTTP:

1. passthrough chat on the embedded model (hf backend, greedy, short `max_tokens`) at
   concurrency 1, 4 and 16: requests/s, p50/p95 latency and generated tokens/s;
2. batching: the same 8 requests sent one after another versus all at once (the backend's
   decode worker batches concurrent requests continuously: each joins the running decode);
3. server overhead on the fake backend: p50 of a request through HTTP minus p50 of the same
   `chat` call made directly on the backend object.

    python benchmarks/bench_server.py                      # all parts
    python benchmarks/bench_server.py --part overhead      # only part 3 (no model needed)
    python benchmarks/bench_server.py --home ~/.local/share/agentrt --max-tokens 16
    python benchmarks/bench_server.py --part model --threads 1   # on a busy shared CPU

Request counts are bounded so a run takes a few minutes on two CPU cores.
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
PROMPTS = [
    "Name a fruit that is red.", "Name a country in Europe.", "Name a large animal.",
    "Name a musical instrument.", "Name a planet of the sun.", "Name a type of tree.",
    "Name a kitchen tool.", "Name a famous river.",
]


ROUNDS = 3  # batching rounds: the machine is shared, one round can be off by 10%
GAP_S = 0.1  # staggered arrivals: one request every GAP_S seconds


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def start_server(args: list[str], env: dict[str, str]) -> tuple[str, subprocess.Popen]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "agentrt.cli", "serve", "--host", "127.0.0.1", "--port",
           str(port), "--log-level", "warning", *args]
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith("AGENTRT_")}, **env}
    proc = subprocess.Popen(cmd, env=full_env, cwd=REPO, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return url, proc
        except httpx.HTTPError:
            time.sleep(0.3)
    raise SystemExit("server did not start")


def stop_server(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def chat_body(model: str, prompt: str, max_tokens: int) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": prompt}],
            "temperature": 0, "max_tokens": max_tokens}


def timed_requests(url: str, bodies: list[dict], concurrency: int,
                   stagger_s: float = 0.0) -> tuple[float, list[float], int]:
    """Send `bodies` with `concurrency` clients; (wall seconds, latencies, completion tokens).

    Each client is built and connected before the clock starts, and all start together, so the
    first requests really arrive as a burst (building an httpx client takes milliseconds);
    with `stagger_s`, client k sends its first request k * `stagger_s` after the start.
    """
    work: queue.SimpleQueue = queue.SimpleQueue()
    for body in bodies:
        work.put(body)
    clients = [httpx.Client(base_url=url, timeout=600) for _ in range(concurrency)]
    for client in clients:
        client.get("/health").raise_for_status()  # opens the keep-alive connection
    results: list[tuple[float, int]] = []
    start_line = threading.Barrier(concurrency + 1)

    def client_loop(k: int, client: httpx.Client) -> None:
        start_line.wait()
        time.sleep(k * stagger_s)
        while True:
            try:
                body = work.get_nowait()
            except queue.Empty:
                return
            t0 = time.perf_counter()
            r = client.post("/v1/chat/completions", json=body)
            r.raise_for_status()
            results.append((time.perf_counter() - t0, r.json()["usage"]["completion_tokens"]))

    threads = [threading.Thread(target=client_loop, args=(k, c)) for k, c in enumerate(clients)]
    for t in threads:
        t.start()
    start_line.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    for client in clients:
        client.close()
    return wall, [r[0] for r in results], sum(r[1] for r in results)


def bench_model(home: str, model: str, max_tokens: int, threads: int | None) -> None:
    tmp = tempfile.mkdtemp(prefix="bench-server-")
    env = {"AGENTRT_HOME": home, "AGENTRT_DATABASE_URL": f"sqlite:///{tmp}/t.db"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    url, proc = start_server(["--backend", "hf", "--model", model], env)
    try:
        timed_requests(url, [chat_body(model, PROMPTS[0], max_tokens)], 1)  # warm-up
        print(f"\n1. passthrough on {model}, greedy, max_tokens={max_tokens}, "
              f"torch threads {threads or 'default'}")
        print(f"{'concurrency':>11} {'requests':>8} {'req/s':>7} {'p50 s':>7} {'p95 s':>7} "
              f"{'tokens/s':>8}")
        for c in (1, 4, 16):
            n = max(8, 2 * c)
            bodies = [chat_body(model, PROMPTS[i % len(PROMPTS)], max_tokens) for i in range(n)]
            wall, lat, tokens = timed_requests(url, bodies, c)
            print(f"{c:>11} {n:>8} {n / wall:>7.2f} {percentile(lat, 0.5):>7.2f} "
                  f"{percentile(lat, 0.95):>7.2f} {tokens / wall:>8.1f}")
        bodies = [chat_body(model, p, 2 * max_tokens) for p in PROMPTS]
        print(f"\n2. batching: 8 requests, max_tokens={2 * max_tokens}, {ROUNDS} rounds "
              f"(sequential, then all at once, then one every {GAP_S * 1000:.0f} ms)")
        burst, staggered = [], []
        for _ in range(ROUNDS):
            seq, _, seq_tokens = timed_requests(url, bodies, 1)
            before = httpx.get(f"{url}/health").json().get("batching", {})
            conc, _, conc_tokens = timed_requests(url, bodies, 8)
            middle = httpx.get(f"{url}/health").json().get("batching", {})
            late, _, late_tokens = timed_requests(url, bodies, 8, stagger_s=GAP_S)
            after = httpx.get(f"{url}/health").json().get("batching", {})
            burst.append(seq / conc)
            staggered.append(seq / late)
            print(f"   sequential {seq:.2f} s ({seq_tokens} tokens); at once {conc:.2f} s "
                  f"({conc_tokens} tokens, {middle['batches'] - before['batches']} decode "
                  f"session(s)): {seq / conc:.2f}x; staggered {late:.2f} s ({late_tokens} tokens, "
                  f"{after['joined'] - middle['joined']} joined a running decode): {seq / late:.2f}x")
        print(f"   speed-up, median of {ROUNDS}: at once {statistics.median(burst):.2f}x "
              f"(target >= 3x), staggered {statistics.median(staggered):.2f}x")
    finally:
        stop_server(proc)


def bench_overhead(n: int) -> None:
    from agentrt.llm.fake import FakeBackend
    from agentrt.core.types import ChatRequest

    backend = FakeBackend(default="alpha bravo charlie delta", model_id="fake")
    request = ChatRequest.of("Say the words.", max_tokens=16)
    direct = []
    for _ in range(n * 4):
        t0 = time.perf_counter()
        backend.chat(request)
        direct.append(time.perf_counter() - t0)
    tmp = tempfile.mkdtemp(prefix="bench-server-")
    url, proc = start_server(["--backend", "fake", "--model", "fake"],
                             {"AGENTRT_HOME": tmp, "AGENTRT_SERVER_API_KEYS": "sk-bench-key"})
    try:
        body = chat_body("fake", "Say the words.", 16)
        headers = {"Authorization": "Bearer sk-bench-key"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            for _ in range(20):
                client.post("/v1/chat/completions", json=body)
            http = []
            for _ in range(n):
                t0 = time.perf_counter()
                client.post("/v1/chat/completions", json=body).raise_for_status()
                http.append(time.perf_counter() - t0)
        from openai import OpenAI

        sdk_client = OpenAI(base_url=f"{url}/v1", api_key="sk-bench-key", max_retries=0)
        sdk = []
        for _ in range(n // 2):
            t0 = time.perf_counter()
            sdk_client.chat.completions.create(**body)
            sdk.append(time.perf_counter() - t0)
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            stream_body = {**body, "stream": True}
            streamed = []
            for _ in range(n // 2):
                t0 = time.perf_counter()
                with client.stream("POST", "/v1/chat/completions", json=stream_body) as r:
                    for _ in r.iter_lines():
                        pass
                streamed.append(time.perf_counter() - t0)
    finally:
        stop_server(proc)
    d50 = statistics.median(direct) * 1000
    print(f"\n3. overhead on the fake backend ({n} sequential requests, keep-alive, API key on)")
    print(f"   direct backend.chat p50 {d50:.3f} ms")
    for name, lat in (("HTTP (httpx)", http), ("HTTP (openai client)", sdk),
                      ("HTTP streamed (httpx)", streamed)):
        p50, p95 = statistics.median(lat) * 1000, percentile(lat, 0.95) * 1000
        print(f"   {name:<22} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  overhead p50 "
              f"{p50 - d50:6.2f} ms (target < 10 ms)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("all", "model", "overhead"), default="all")
    ap.add_argument("--home", default=os.environ.get("AGENTRT_HOME"),
                    help="agentrt home holding the model cache (default: $AGENTRT_HOME, else "
                         "the repository's .agentrt/test-home, else the user's home)")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--requests", type=int, default=400, help="requests for the overhead part")
    ap.add_argument("--threads", type=int, default=None,
                    help="OMP_NUM_THREADS of the model server (default: torch's own choice); "
                         "1 holds up far better on a CPU shared with other work")
    args = ap.parse_args()
    print(f"cpu cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    if args.part in ("all", "overhead"):
        bench_overhead(args.requests)
    if args.part in ("all", "model"):
        home = args.home
        if home is None:
            test_home = REPO / ".agentrt" / "test-home"
            from agentrt.core.config import default_home

            home = str(test_home if (test_home / "models").is_dir() else default_home())
        bench_model(home, args.model, args.max_tokens, args.threads)


if __name__ == "__main__":
    main()
