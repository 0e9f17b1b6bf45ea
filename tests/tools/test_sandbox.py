"""Behaviour of the sandbox itself: results, limits, freshness, tiers, threads, async, cancel."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import select
import shutil
import signal
import threading
import time

import pytest
from pydantic import ValidationError

from agentrt.core.errors import SandboxUnavailableError, ToolInputError
from agentrt.tools.python_tool import PythonTool
from agentrt.tools.sandbox import Sandbox, SandboxLimits, cgroup, isolation_info
from agentrt.tools.sandbox.plan import TIERS, python_paths


def test_isolation_info_names_a_tier_and_its_layers(sandbox):
    info = sandbox.info
    assert info.tier in TIERS
    if os.geteuid() == 0:  # root here: every layer must be active
        assert info.tier == "namespaces"
        assert info.network_namespace and info.pid_namespace and info.mount_namespace and info.separate_uid
        assert info.no_new_privs and info.network_isolated
    assert info.network_isolated == (info.network_namespace or info.seccomp)


def test_module_level_isolation_info_matches():
    assert isolation_info().tier in TIERS


def test_stdout_stderr_exit_code(sandbox):
    res = sandbox.run("import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)")
    assert (res.stdout, res.stderr, res.exit_code, res.timed_out, res.killed_reason) == ("out\n", "err\n", 3, False, None)
    assert not res.ok and res.duration_s > 0


def test_exception_gives_traceback_and_exit_1(sandbox):
    res = sandbox.run("def f():\n    raise ValueError('boom')\nf()")
    assert res.exit_code == 1
    assert "ValueError: boom" in res.stderr and 'main.py", line 2, in f' in res.stderr
    assert "runner.py" not in res.stderr  # the sandbox's own frames are not shown


def test_stdin_is_given_and_eof_after(sandbox):
    res = sandbox.run("import sys\ndata = sys.stdin.read()\nprint(len(data), data.split())", stdin="a b\nc\n")
    assert res.stdout == "6 ['a', 'b', 'c']\n"


def test_stdin_over_limit_is_input_error(sandbox):
    with pytest.raises(ToolInputError):
        sandbox.run("pass", stdin="x" * 2000, limits=SandboxLimits(stdin_bytes=1000))


def test_result_var_and_syntax_error(sandbox):
    assert sandbox.run("answer = {'a': [1, 2.5]}", result_var="answer").result == {"a": [1, 2.5]}
    res = sandbox.run("x = 1\nif x\n    pass")
    assert res.syntax_error["line"] == 2 and res.exit_code == 1
    assert "not JSON-serializable" in sandbox.run("s = {1}", result_var="s").result_error


def test_timeout_kills_and_is_reported(sandbox):
    res = sandbox.run("import time\nprint('started', flush=True)\ntime.sleep(30)", limits=SandboxLimits(timeout_s=0.5))
    assert res.timed_out and res.killed_reason == "timeout"
    assert res.stdout == "started\n"  # output written before the kill is kept


def test_cpu_limit_kills(sandbox):
    res = sandbox.run("while True: pass", limits=SandboxLimits(timeout_s=5, cpu_s=1))
    assert res.killed_reason == "cpu_limit" and not res.timed_out


def test_output_is_capped_and_flagged(sandbox):
    res = sandbox.run("print('z' * 5000)", limits=SandboxLimits(output_bytes=1024, output_kill_bytes=1 << 20))
    assert res.truncated and len(res.stdout) == 1024 and res.exit_code == 0


def test_environment_is_allowlisted(sandbox):
    res = sandbox.run("import os\nprint(sorted(os.environ))")
    names = eval(res.stdout)  # noqa: S307 - a list literal printed by our own test program
    assert set(names) <= {"PATH", "LANG", "PYTHONIOENCODING", "HOME", "TMPDIR", "USER", "OMP_NUM_THREADS",
                          "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                          "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"}


def test_runs_are_fresh_and_independent(sandbox):
    first = sandbox.run("import random, sympy\nsympy.MARK = 1\nopen('f', 'w').write('x')\nprint(random.random())")
    second = sandbox.run("import os, random, sympy\nprint(hasattr(sympy, 'MARK'), os.path.exists('f'), random.random())")
    flag, exists, rnd = second.stdout.split()
    assert (flag, exists) == ("False", "False")
    assert rnd != first.stdout.strip()  # each run reseeds its random generator


def test_many_threads_at_once(sandbox):
    results: dict[int, str] = {}

    def work(i: int) -> None:
        results[i] = sandbox.run(f"print({i} * {i})").stdout

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: f"{i * i}\n" for i in range(16)}


async def test_async_runs_concurrently(sandbox):
    outs = await asyncio.gather(*(sandbox.arun(f"import time\ntime.sleep(0.3)\nprint({i})") for i in range(8)))
    assert [o.stdout for o in outs] == [f"{i}\n" for i in range(8)]


async def test_cancelling_the_task_kills_the_process_tree(sandbox, survivors):
    code = "import os, time\nfor _ in range(3):\n    if os.fork() == 0:\n        os.setsid()\n        break\ntime.sleep(60)"
    task = asyncio.create_task(sandbox.arun(code, limits=SandboxLimits(timeout_s=60)))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert survivors() == []


def test_kill_from_another_thread(sandbox):
    handle = sandbox.start_run("import time\ntime.sleep(60)", limits=SandboxLimits(timeout_s=60))
    threading.Timer(0.3, handle.kill).start()
    t0 = time.monotonic()
    res = handle.wait()
    assert res.killed_reason == "cancelled" and time.monotonic() - t0 < 5


def test_helper_is_restarted_after_it_dies():
    sb = Sandbox(preload=())
    try:
        first = sb.start()
        old = sb._proc.pid  # noqa: SLF001
        os.kill(old, 9)
        sb._proc.wait()  # noqa: SLF001
        assert sb.run("print('back')").stdout == "back\n"
        assert sb._proc.pid != old and sb.info == first  # noqa: SLF001
    finally:
        sb.close()


def test_strict_mode_refuses_without_network_isolation():
    sb = Sandbox(preload=(), max_tier="process", use_landlock=False, use_seccomp=False, strict=True)
    try:
        assert not sb.info.network_isolated and sb.info.tier == "process"
        with pytest.raises(SandboxUnavailableError):
            sb.run("print(1)")
    finally:
        sb.close()


def test_strict_mode_runs_where_isolated(sandbox):
    strict = Sandbox(preload=(), strict=True)
    try:
        if strict.info.network_isolated:
            assert strict.run("print(1)").stdout == "1\n"
    finally:
        strict.close()


def test_process_tier_confines_files_and_network(canary, tmp_path):
    sb = Sandbox(preload=(), max_tier="process")
    try:
        info = sb.info
        assert info.tier == "process" and not info.network_namespace
        code = (f"import os, socket\nopen('mine', 'w').write('ok')\nprint(os.listdir('.'))\n"
                f"try:\n    print(open({str(canary.files['canary.txt'])!r}).read())\nexcept OSError as e:\n    print('read', type(e).__name__)\n"
                "try:\n    socket.socket()\n    print('socket made')\nexcept OSError as e:\n    print('net', type(e).__name__)\n"
                "print(os.getcwd())")
        res = sb.run(code)
        lines = res.stdout.splitlines()
        assert lines[0] == "['main.py', 'mine']"
        if info.landlock_abi:
            assert lines[1] == "read PermissionError"
        if info.seccomp:
            assert lines[2] == "net PermissionError"
        assert not os.path.exists(lines[3])  # the work directory is removed after the run
    finally:
        sb.close()


def test_userns_tier_runs_in_namespaces():
    sb = Sandbox(preload=(), max_tier="userns")
    try:
        if sb.info.tier != "userns":
            pytest.skip(f"user namespaces are not available here ({sb.info.notes})")
        res = sb.run("import os\nprint(os.getpid(), sorted(os.listdir('/tmp')))")
        assert res.stdout == "2 ['main.py']\n"  # pid 1 is the run's own init
    finally:
        sb.close()


def test_limits_validate_themselves():
    with pytest.raises(ValidationError):
        SandboxLimits(output_bytes=4096, output_kill_bytes=2048)
    with pytest.raises(ValidationError):
        SandboxLimits(timeout_s=0)
    with pytest.raises(ValueError):
        Sandbox(max_tier="bogus")
    from agentrt.core.config import Limits

    lim = SandboxLimits.from_config(Limits(tool_timeout_s=3, tool_memory_mb=256), disk_mb=8)
    assert (lim.timeout_s, lim.memory_mb, lim.disk_mb, lim.effective_cpu_s()) == (3, 256, 8, 3)


def test_only_interpreter_and_package_dirs_are_exposed():
    paths = python_paths()
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert repo not in paths and "/" not in paths


ROOTLESS = '''
from agentrt.tools.sandbox import Sandbox
sb = Sandbox(preload=())
info = sb.start()
res = sb.run("import os, socket\\nprint(os.getpid())\\ntry:\\n    socket.create_connection(('127.0.0.1', 5432))\\nexcept OSError as e:\\n    print(type(e).__name__)")
print(info.tier, info.network_namespace, res.stdout.split())
print(info.memory_limit_scope, res.memory_limit_scope, info.ipc_limits)
sb.close()
'''


def _system_python() -> str | None:
    """An interpreter another user may run, of this interpreter's version (same extension ABI)."""
    import subprocess
    import sys

    for cand in (f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}", "/usr/bin/python3"):
        if os.access(cand, os.X_OK):
            out = subprocess.run([cand, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True)
            if out.stdout.strip() == str(tuple(sys.version_info[:2])):
                return cand
    return None


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv") or not _system_python(),
                    reason="needs root (to become another user) and a system Python of this version")
def test_an_unprivileged_user_gets_the_userns_tier():
    import subprocess
    import tempfile

    work = tempfile.mkdtemp(prefix="agentrt-rootless-")
    try:
        os.chmod(work, 0o755)
        os.chown(work, 65534, 65534)
        as_nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
        subprocess.run(as_nobody + [_system_python(), "-m", "venv", "--without-pip", f"{work}/v"], check=True)
        site = subprocess.run([f"{work}/v/bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
        import sysconfig

        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        readable = subprocess.run(as_nobody + ["test", "-r", f"{repo}/tools/__init__.py"])
        if readable.returncode != 0:  # e.g. a checkout inside a 0700 temp dir
            pytest.skip("the checkout is not readable by an unprivileged user")
        with open(f"{site}/agentrt-dev.pth", "w") as f:
            f.write(f"{sysconfig.get_paths()['purelib']}\n{repo}\n")
        proc = subprocess.run(as_nobody + ["env", f"HOME={work}", f"{work}/v/bin/python", "-c", ROOTLESS],
                              capture_output=True, text=True, timeout=120, cwd=work)
        assert proc.returncode == 0, proc.stderr[-2000:]
        first, memory = proc.stdout.strip().splitlines()
        tier, netns, out = first.split(" ", 2)
        if tier == "process":
            pytest.skip("unprivileged user namespaces are disabled on this machine")
        assert (tier, netns, out) == ("userns", "True", "['2', 'PermissionError']")
        scope, run_scope, ipc = memory.split()
        assert scope == run_scope and ipc == "True"  # what memory_mb bounds is said, not assumed
        print("unprivileged userns tier: memory_limit_scope", scope)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_cancel_on_event_kills_a_blocking_run(sandbox, survivors):
    from agentrt.tools.sandbox import cancel_on

    event = threading.Event()
    threading.Timer(0.3, event.set).start()
    with cancel_on(event):
        res = sandbox.run("import time\ntime.sleep(60)", limits=SandboxLimits(timeout_s=60))
    assert res.killed_reason == "cancelled"
    assert survivors() == []
    assert sandbox.run("print('after')").stdout == "after\n"  # outside the context nothing cancels


def test_memory_limit_scope_is_reported(sandbox):
    found, _ = cgroup.locate()
    if os.geteuid() == 0 and found is not None:  # root with a memory hierarchy: a cgroup per run
        assert sandbox.info.memory_limit_scope == "run"
    res = sandbox.run("print(1)")
    assert res.memory_limit_scope == sandbox.info.memory_limit_scope
    if res.memory_limit_scope == "run":
        assert 0 < res.memory_peak_mb < sandbox.limits.memory_mb
    if sandbox.info.tier != "process":
        assert sandbox.info.ipc_limits


def test_without_a_cgroup_the_weaker_limit_is_said():
    sb = Sandbox(preload=(), use_cgroup=False)
    try:
        assert sb.info.memory_limit_scope == "process"
        assert any("no memory cgroup per run" in n for n in sb.info.notes)
        assert sb.run("print(1)").memory_limit_scope == "process"
        out = PythonTool(sandbox=sb).run({"code": "print(1)"})
        assert out["memory_limit_scope"] == "process"
    finally:
        sb.close()


def test_cgroups_of_a_killed_run_and_a_killed_helper_are_removed(leftover_cgroups):
    sb = Sandbox(preload=())
    try:
        if sb.info.memory_limit_scope != "run":
            pytest.skip(f"no memory cgroup per run here: {sb.info.notes}")
        handle = sb.start_run("import time\nprint('up', flush=True)\ntime.sleep(60)", limits=SandboxLimits(timeout_s=60))
        time.sleep(0.5)
        handle.kill()  # the monitor dies before it can remove the run's cgroup: the helper does
        assert handle.wait().killed_reason == "cancelled"
        assert leftover_cgroups(sb) == []
        helper = sb._proc  # noqa: SLF001
        stale = os.path.join(cgroup.locate()[0][1], f"agentrt-sandbox-{helper.pid}")
        assert os.path.isdir(stale)
        helper.kill()  # our own child
        helper.wait()
        sb._proc = None  # noqa: SLF001
        assert os.path.isdir(stale)
    finally:
        sb.close()
    fresh = Sandbox(preload=())
    try:
        fresh.start()  # sweeps what helpers that no longer run left behind
        assert not os.path.isdir(stale)
    finally:
        fresh.close()


def test_killing_the_init_from_outside_is_not_a_plain_exit(sandbox, children):
    handle = sandbox.start_run("import time\ntime.sleep(60)", limits=SandboxLimits(timeout_s=30))
    deadline = time.monotonic() + 5
    init = []
    while not (init and children(init[0])) and time.monotonic() < deadline:  # the program runs
        time.sleep(0.05)
        init = children(handle.pid)
    os.kill(init[0], signal.SIGKILL)  # the run's init: a child of its monitor, started by this process
    res = handle.wait()
    assert (res.exit_code, res.signal, res.killed_reason, res.timed_out) == (-9, 9, "signal", False)


def test_compiled_before_it_runs_and_still_at_home(sandbox):
    res = sandbox.run("import sys, signal\nprint(signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n"
                      "import ctypes\nprint(ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x + 1)(41))\n"
                      "import multiprocessing as mp\nwith mp.Pool(2) as p:\n    print(sum(p.map(abs, [-1, -2])))")
    assert res.stdout == "True\n42\n3\n", res.stderr[-2000:]


@pytest.mark.parametrize("mountinfo,proc_cgroup,expect", [
    ("35 25 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n", "4:memory:/a/b\n0::/\n",
     (1, "/sys/fs/cgroup/memory/a/b")),
    ("30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", "0::/svc\n", None),
    ("", "0::/\n", None),
])
def test_cgroup_locate_reads_mounts_and_membership(mountinfo, proc_cgroup, expect):
    found, why = cgroup.locate(mountinfo, proc_cgroup)
    assert found == expect
    assert bool(why) == (expect is None)
