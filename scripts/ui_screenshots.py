"""Screenshots of the web UI over a real store, for docs/ui/.

Starts `agentrt ui` on a free loopback port over the given trace store and run folders, opens
each page in headless Chromium (Debian's `chromium` and `chromium-driver`; selenium is a dev
dependency), clicks the first tool node of the trace page, and saves one PNG per page.

    .venv/bin/python scripts/ui_screenshots.py --home ~/.local/share/agentrt \\
        --database-url sqlite:///$HOME/.local/share/agentrt/agentrt.db --runs-dir runs --out docs/ui

The trace shown is `--trace`, else the newest slow trace with a tool run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from agentrt.store import TraceStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(cond, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if value := cond():
                return value
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit("timed out waiting for the UI")


def slow_trace_with_a_tool(db_url: str) -> str:
    with TraceStore(db_url) as store:
        for row in store.list_traces(limit=200, mode="slow", status="ok"):
            trace = store.get_trace(row.id)
            if any(s.kind == "tool" for s in trace.steps):
                return trace.id
    raise SystemExit("no finished slow trace with a tool run in that store")


def browser() -> webdriver.Chrome:
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser") or ""
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000"):
        opts.add_argument(arg)
    driver_path = shutil.which("chromedriver")
    return webdriver.Chrome(options=opts, service=Service(driver_path) if driver_path else Service())


def shoot(driver: webdriver.Chrome, url: str, path: Path, click: str | None = None) -> None:
    driver.get(url)
    wait(lambda: driver.execute_script("return document.readyState") == "complete")
    if click:
        found = driver.find_elements("css selector", click)
        if found:
            found[0].click()
            time.sleep(0.3)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(max(height + 120, 700), 2400))
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
    print(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--home", default=None, help="agentrt home (its eval_runs/ are shown)")
    ap.add_argument("--runs-dir", action="append", default=[])
    ap.add_argument("--trace", default=None)
    ap.add_argument("--out", type=Path, default=Path("docs/ui"))
    ap.add_argument("--prefix", default="")
    args = ap.parse_args()
    trace = args.trace or slow_trace_with_a_tool(args.database_url)
    port = free_port()
    cmd = [sys.executable, "-m", "agentrt.cli", "ui", "--host", "127.0.0.1", "--port", str(port),
           "--database-url", args.database_url]
    for d in args.runs_dir:
        cmd += ["--runs-dir", d]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTRT_")}
    if args.home:
        env["AGENTRT_HOME"] = args.home
    server = subprocess.Popen(cmd, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        wait(lambda: httpx.get(f"{url}/health", timeout=2).status_code == 200)
        driver = browser()
        try:
            shoot(driver, f"{url}/ui/traces", args.out / f"{args.prefix}traces.png")
            shoot(driver, f"{url}/ui/traces/{trace}", args.out / f"{args.prefix}trace.png",
                  click="svg.graph .node.kind-tool")
            shoot(driver, f"{url}/ui/evals", args.out / f"{args.prefix}evals.png")
            first = driver.find_elements("css selector", "a[href^='/ui/evals/']")
            if first:
                shoot(driver, first[0].get_attribute("href"), args.out / f"{args.prefix}eval_run.png")
            shoot(driver, f"{url}/ui/models", args.out / f"{args.prefix}models.png")
            runs = driver.find_elements("css selector", "a[href^='/ui/models/runs/']")
            if runs:
                shoot(driver, runs[0].get_attribute("href"), args.out / f"{args.prefix}iterate_run.png")
        finally:
            driver.quit()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
