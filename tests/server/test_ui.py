"""The web UI against a real server (the scripted fake backend) and a real SQLite store.

One server for the module, behind an API key, with an evaluation run pair, a model registry
and an iterate run folder in its home, and a real slow solve (with its python tool node) made
through the official client. HTTP tests check authentication, errors and escaping; browser
tests drive headless Chromium through Selenium (skipped, with the reason, only when no chromium
binary exists): every page loads with its content and no console error, a node click shows its
steps, a running solve is followed live until it ends. Screenshots go to a temp folder, or to
`$AGENTRT_UI_SCREENSHOTS` (docs/ui, see docs/UI.md) when that is set.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest
from server_harness import KEY, launch, stop

from agentrt.eval.runs import EvalSpec, ProblemResult, RunManifest, append_result, write_manifest
from agentrt.store import TraceStore
from agentrt.training.registry import ModelRegistry

SLOW_PROBLEM = "What is 123*456 - 789? Use python."
HOSTILE = "<img src=x onerror=alert(1)> \x1b[31m\u202e what is 2+2?"


def _seed_evals(home: Path, trace_ids: list[str]) -> list[str]:
    ids = []
    for n, (mode, right) in enumerate([("fast", [1, 0, 1, 0]), ("slow", [1, 1, 1, 0])]):
        run_id = f"demo-{mode}-20250101-12000{n}-ab1{n}"
        run_dir = home / "eval_runs" / run_id
        run_dir.mkdir(parents=True)
        write_manifest(run_dir, RunManifest(
            run_id=run_id, spec=EvalSpec(bench="demo", mode=mode), status="done",
            created_at=f"2025-01-01T12:00:0{n}+00:00", backend="fake", model_id="fake-echo",
            problems=4, done=4, wall_s=3.5 + n))
        for i, ok in enumerate(right):
            append_result(run_dir, ProblemResult(
                index=i, problem_id=f"p{i}", family="arith" if i < 2 else "algebra",
                grader="numeric", reference=str(10 + i), requested_mode=mode, mode=mode,
                answer=str(10 + i if ok else 99), extracted=str(10 + i if ok else 99),
                correct=bool(ok), trace_id=trace_ids[i % len(trace_ids)], prompt_tokens=100 * i,
                completion_tokens=20, llm_calls=2, latency_s=0.5 + i))
        ids.append(run_id)
    return ids


def _seed_models(home: Path, db_url: str) -> None:
    with TraceStore(db_url) as store:
        reg = ModelRegistry(store)
        parent = None
        for k in range(1, 4):
            path = home / "models" / f"it{k}"
            path.mkdir(parents=True)
            (path / "config.json").write_text("{}")
            (path / "model.safetensors").write_bytes(b"")
            acc = {"fast": 0.3 + 0.1 * k, "slow": 0.4 + 0.1 * k}
            v = reg.register(path, base_model="smollm2-135m", parent_id=parent,
                             datasets=[{"name": f"it{k}-sft", "hash": f"{k}" * 16, "rows": 40 * k}],
                             metrics={"heldout": {m: {"accuracy": a} for m, a in acc.items()}})
            reg.promote(v.id, reason=f"iteration {k} beat the promoted model")
            parent = v.id
        reg.rollback(reason="v3 regressed on gsm8k")


def _seed_iterate(home: Path) -> None:
    run = home / "runs" / "iterate-tiny"
    run.mkdir(parents=True)
    stages, t = {}, 0.0
    for k in range(2):
        for stage, wall in [("problems", 1.2), ("teacher", 30.5), ("solve", 12.0),
                            ("datasets", 2.1), ("sft", 95.0), ("eval", 40.2)]:
            stages[f"it{k}/{stage}"] = {"started_at": f"2025-01-01T12:{k}0:00+00:00",
                                        "finished_at": "x", "wall_s": wall, "outputs": {}}
            t += wall
        stages[f"it{k}/eval"]["outputs"] = {"candidate": {"heldout": {
            "fast": {"accuracy": 0.25 + 0.1 * k}, "slow": {"accuracy": 0.4 + 0.15 * k}}}}
        stages[f"it{k}/gate"] = {"started_at": "x", "finished_at": "x", "wall_s": 0.1,
                                 "outputs": {"promote": k == 1, "reason": f"gate {k}",
                                             "version_id": "mv-x"}}
    (run / "manifest.json").write_text(json.dumps({
        "run_id": "iterate-tiny", "config": {"preset": "tiny"}, "status": "done",
        "created_at": "2025-01-01T12:00:00+00:00", "updated_at": "2025-01-01T13:00:00+00:00",
        "stages": stages}))


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """The server, with seeded runs and models, and the id of a finished slow solve."""
    tmp = tmp_path_factory.mktemp("ui")
    home = tmp / "home"
    home.mkdir()
    db_url = f"sqlite:///{home / 'agentrt.db'}"
    _seed_models(home, db_url)
    _seed_iterate(home)
    server = launch(tmp)
    try:
        reply = server.client().chat.completions.create(
            model="agentrt-slow", messages=[{"role": "user", "content": SLOW_PROBLEM}])
        slow_id = reply.id.removeprefix("chatcmpl-")
        hostile = server.client().chat.completions.create(
            model="agentrt-fast", messages=[{"role": "user", "content": HOSTILE}])
        server.slow_id = slow_id
        server.hostile_id = hostile.id.removeprefix("chatcmpl-")
        server.eval_ids = _seed_evals(home, [slow_id, server.hostile_id])
        yield server
    finally:
        stop(server)


def _get(server, path: str, **kw) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", timeout=30, **kw)


# ------------------------------------------------------------------ HTTP: auth, errors, escaping

def test_ui_is_behind_the_api_key(ui):
    page = _get(ui, "/ui/traces")
    assert page.status_code == 303 and page.headers["location"].startswith("/ui/login?next=")
    assert _get(ui, f"/ui/api/traces/{ui.slow_id}/events").status_code == 401
    assert _get(ui, "/ui/traces", cookies={"agentrt_ui_key": "sk-wrong-key-1234"}).status_code == 401
    wrong = httpx.post(f"{ui.url}/ui/login", data={"key": "sk-wrong-key-1234"}, timeout=30)
    assert wrong.status_code == 401 and "not accepted" in wrong.text
    ok = httpx.post(f"{ui.url}/ui/login", data={"key": KEY, "next": "https://evil.example/"},
                    timeout=30)
    assert ok.status_code == 303 and ok.headers["location"] == "/ui/traces"
    assert "HttpOnly" in ok.headers["set-cookie"] and "SameSite=Strict" in ok.headers["set-cookie"]
    assert _get(ui, "/ui/traces", cookies={"agentrt_ui_key": KEY}).status_code == 200
    assert _get(ui, "/ui/traces", headers=ui.headers()).status_code == 200


def test_model_text_is_shown_escaped_and_bad_input_is_a_clear_error(ui):
    page = _get(ui, f"/ui/traces/{ui.hostile_id}", headers=ui.headers())
    assert page.status_code == 200
    assert "<img src=x" not in page.text and "&lt;img src=x onerror=alert(1)&gt;" in page.text
    assert "\x1b" not in page.text and "\u202e" not in page.text and "\\x1b" in page.text
    found = _get(ui, "/ui/traces", params={"q": "onerror"}, headers=ui.headers())
    assert ui.hostile_id[:10] in found.text and ui.slow_id[:10] not in found.text
    missing = _get(ui, "/ui/traces/ffffffffffff", headers=ui.headers())
    assert missing.status_code == 404 and "no trace" in missing.text.lower()
    bad_tag = _get(ui, "/ui/traces", params={"tag": "=x"}, headers=ui.headers())
    assert bad_tag.status_code == 400 and "has no key" in bad_tag.text
    assert _get(ui, "/ui/evals/..%2F..%2Fetc", headers=ui.headers()).status_code in (400, 404)


# ------------------------------------------------------------------ the browser

def _chromium() -> str | None:
    return next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             shutil.which("google-chrome")) if p), None)


@pytest.fixture(scope="module")
def browser(ui):
    binary = _chromium()
    if binary is None:
        pytest.skip("no chromium binary (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver_path = shutil.which("chromedriver")
    service = Service(executable_path=driver_path) if driver_path else Service()
    driver = webdriver.Chrome(options=opts, service=service)
    driver.implicitly_wait(0)
    try:
        driver.get(f"{ui.url}/ui/traces")  # redirected to the login form
        driver.find_element("id", "key").send_keys(KEY)
        driver.find_element("id", "login").click()
        _wait(lambda: driver.current_url.endswith("/ui/traces"))
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    target = os.environ.get("AGENTRT_UI_SCREENSHOTS")
    return Path(target) if target else tmp_path_factory.mktemp("screenshots")


def _wait(cond, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def _load(driver, url: str):
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(url)
    _wait(lambda: driver.execute_script("return document.readyState") == "complete")


def _no_console_errors(driver) -> None:
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def _shot(driver, shots: Path, name: str) -> None:
    shots.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(max(height + 120, 700), 2400))
    driver.save_screenshot(str(shots / f"{name}.png"))
    driver.set_window_size(1400, 1000)


def test_pages_in_a_browser(ui, browser, shots):
    d = browser
    _load(d, f"{ui.url}/ui/traces")
    rows = d.find_elements("css selector", "#trace-list tr.trace-row")
    assert len(rows) >= 2 and ui.slow_id[:10] in d.page_source
    _no_console_errors(d)
    _shot(d, shots, "traces")

    _load(d, f"{ui.url}/ui/traces/{ui.slow_id}")
    nodes = d.find_elements("css selector", "svg.graph .node")
    assert {n.get_attribute("data-node") for n in nodes} >= {"calc", "fin"}
    assert d.find_elements("css selector", "svg.graph .node.kind-tool.st-ok")
    assert "55299" in d.find_element("id", "answer").text
    assert "verdict" in d.find_element("id", "decision-box").text
    tool = d.find_element("css selector", 'svg.graph .node[data-node="calc"]')
    tool.click()
    shown = [p for p in d.find_elements("css selector", "#steps details.step") if p.is_displayed()]
    assert shown and all(p.get_attribute("data-node") == "calc" for p in shown)
    code = [p for p in d.find_elements("css selector", "#steps pre.sec-tool-code")
            if p.is_displayed()]
    assert code and "print(123*456 - 789)" in code[0].text
    assert "node calc" in d.find_element("id", "step-filter").text
    _no_console_errors(d)
    _shot(d, shots, "trace")

    _load(d, f"{ui.url}/ui/evals")
    assert all(r in d.page_source for r in ui.eval_ids)
    _no_console_errors(d)
    _load(d, f"{ui.url}/ui/evals/{ui.eval_ids[1]}")
    assert "75.0%" in d.find_element("id", "metrics").text
    assert d.find_elements("css selector", "svg.bars .bar rect")
    d.find_element("css selector", f'#results a[href="/ui/traces/{ui.slow_id}"]')
    _no_console_errors(d)
    _shot(d, shots, "eval_run")
    _load(d, f"{ui.url}/ui/evals/compare?a={ui.eval_ids[0]}&b={ui.eval_ids[1]}")
    assert "only B 1" in d.find_element("id", "paired").text
    _no_console_errors(d)
    _shot(d, shots, "compare")

    _load(d, f"{ui.url}/ui/models")
    versions = d.find_element("id", "versions").text
    assert "v3" in versions and "it2-sft" in versions and "heldout/slow" in versions
    assert "rollback" in d.find_element("id", "promotions").text
    _no_console_errors(d)
    _shot(d, shots, "models")
    _load(d, f"{ui.url}/ui/models/runs/iterate-tiny")
    assert "it1/sft" in d.find_element("id", "stages").text
    assert "55.0%" in d.find_element("id", "iterations").text
    _no_console_errors(d)
    _shot(d, shots, "iterate_run")


def test_a_running_solve_is_followed_live(ui, browser, shots):
    done: dict = {}
    problem = "[sleep=0.8] What is 123*456 - 789? Live."

    def solve():
        done["reply"] = ui.client().chat.completions.create(
            model="agentrt-slow", messages=[{"role": "user", "content": problem}])

    worker = threading.Thread(target=solve, daemon=True)
    worker.start()
    with TraceStore(ui.db_url) as store:
        running = _wait(lambda: [t for t in store.list_traces(status="running", limit=5)
                                 if "Live." in t.problem])
    d = browser
    _load(d, f"{ui.url}/ui/traces/{running[0].id}")
    assert d.find_element("id", "live-indicator").is_displayed()
    before = len(d.find_elements("css selector", "#steps details.step"))
    _wait(lambda: "finished" in d.find_element("id", "live-indicator").text, timeout=60)
    worker.join(30)
    assert "55299" in d.find_element("id", "answer").text
    assert d.find_element("id", "trace-status").text == "ok"
    assert len(d.find_elements("css selector", "#steps details.step")) > before
    assert d.find_elements("css selector", 'svg.graph .node[data-node="calc"]')
    _no_console_errors(d)
    _shot(d, shots, "trace_live_done")
