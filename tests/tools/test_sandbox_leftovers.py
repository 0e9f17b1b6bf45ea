"""The sandbox against what a run may leave or reach past its end: processes left running in
the process tier, the bare tier, uids shared across forks, rlimits the caller holds."""

from __future__ import annotations

import logging
import os
import resource
import select
import signal
import time

import pytest

from agentrt.core.errors import SandboxUnavailableError
from agentrt.tools.sandbox import Sandbox, SandboxLimits


LINGER = ("import os, sys, time\n"
          "kid = os.fork()\n"
          "if kid == 0:\n"
          "    os.setsid()  # out of the init's process group\n"
          "    time.sleep(60)\n"
          "    os._exit(0)\n"
          "os.write(2, b'PIDS %d %d\\n' % (os.getpid(), kid))\n"
          "{end}\n"
          "time.sleep(60)\n")
LINGER_ENDS = {"output_limit": "sys.stdout.write('x' * (2 << 20))\nsys.stdout.flush()",
               "timeout": "", "cancelled": ""}


@pytest.mark.parametrize("how", sorted(LINGER_ENDS))
def test_process_tier_leaves_nothing_running_after_a_kill(how, children):
    """Without a pid namespace or a memory cgroup nothing takes a run's processes along when its
    init dies; the fork helper, their subreaper, must kill them."""
    sb = Sandbox(preload=(), max_tier="process", use_cgroup=False)
    held: list[int] = []
    try:
        try:
            info = sb.start()
        except SandboxUnavailableError as e:
            pytest.skip(f"the process tier cannot be built here: {e}")
        if info.tier != "process":
            pytest.skip(f"the process tier cannot be built here: {info.notes}")
        limits = SandboxLimits(timeout_s=2 if how == "timeout" else 30, output_bytes=1024,
                               output_kill_bytes=1 << 20)
        handle = sb.start_run(LINGER.format(end=LINGER_ENDS[how]), limits=limits)
        if how == "cancelled":  # once the program and its daemon exist (monitor, init, program)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not any(
                    children(p) for i in children(handle.pid) for p in children(i)):
                time.sleep(0.05)
            time.sleep(0.5)  # for the program to write the pids out
            handle.kill()
        res = handle.wait()
        assert res.killed_reason == how, res
        pids = [int(p) for p in res.stderr.split("PIDS ", 1)[1].split()[:2]]
        for pid in pids:
            try:
                held.append(os.pidfd_open(pid))
            except ProcessLookupError:
                pass  # already gone
        deadline = time.monotonic() + 3.0
        alive = list(held)
        while alive and time.monotonic() < deadline:
            alive = [fd for fd in alive if not select.select([fd], [], [], 0.05)[0]]
        assert not alive, f"{len(alive)} of the run's processes outlived it"
    finally:
        for fd in held:  # leave nothing behind even when the check failed
            try:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            except OSError:
                pass
            os.close(fd)
        sb.close()


def test_the_bare_tier_is_said_loudly_and_can_be_refused(sandbox, canary, caplog):
    bare = dict(preload=(), max_tier="process", use_landlock=False, use_seccomp=False)
    steal = f"print(open({str(canary.files['other_user.txt'])!r}).read())"
    with caplog.at_level(logging.WARNING):
        sb = Sandbox(**bare)
        try:
            assert sb.info.bare and any(n.startswith("bare tier") for n in sb.info.notes)
        finally:
            sb.close()
    assert any("bare process tier" in r.getMessage() for r in caplog.records)
    refusing = Sandbox(**bare, allow_bare=False)
    try:
        with pytest.raises(SandboxUnavailableError, match="refused by configuration"):
            refusing.run(steal)
    finally:
        refusing.close()
    assert not sandbox.info.bare  # the default tier here is a confined one, and says so
    assert not any(n.startswith("bare tier") for n in sandbox.info.notes)


@pytest.mark.skipif(os.geteuid() != 0, reason="a uid per run needs root")
def test_a_forked_process_takes_uids_of_its_own(sandbox):
    """A process forked after import must not hand its runs the uids of its parent's runs: the
    uid is what RLIMIT_NPROC counts, so a run that holds all its processes would starve the
    other's."""
    if sandbox.info.tier != "namespaces":
        pytest.skip("runs get a uid of their own only in the namespaces tier")
    go_r, go_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: wait until the parent's run holds its processes, then run
        status = 1
        try:
            os.read(go_r, 1)
            sb = Sandbox(preload=())
            try:
                res = sb.run("import os\nprint(os.getuid())\nkid = os.fork()\nif kid == 0:\n"
                             "    os._exit(0)\nos.waitpid(kid, 0)\nprint('forked')",
                             limits=SandboxLimits(timeout_s=20, max_processes=8))
                os.write(out_w, f"{sb._uids._base} {res.stdout}".encode())  # noqa: SLF001
                status = 0
            finally:
                sb.close()
        finally:
            os._exit(status)
    os.close(go_r)
    os.close(out_w)
    hog = sandbox.start_run("import os, time\nprint(os.getuid(), flush=True)\nfor _ in range(7):\n"
                            "    if os.fork() == 0:\n        time.sleep(60)\n        os._exit(0)\n"
                            "time.sleep(60)", limits=SandboxLimits(timeout_s=60, max_processes=8))
    try:
        time.sleep(0.5)
        os.write(go_w, b"x")
        with os.fdopen(out_r) as f:
            out = f.read().split()
        os.waitpid(pid, 0)
    finally:
        os.close(go_w)
        hog.kill()
        hog_uid = int(hog.wait().stdout.split()[0])
    base, uid = int(out[0]), int(out[1])
    assert base != sandbox._uids._base and base <= uid < base + 4096, out  # noqa: SLF001
    assert uid != hog_uid and out[2:] == ["forked"], out


SCHEDULING = """import os, resource
R = resource
print(R.getrlimit(R.RLIMIT_RTPRIO), R.getrlimit(R.RLIMIT_NICE),
      R.getrlimit(R.RLIMIT_SIGPENDING)[1] <= 1024)
for what, fn in (('fifo', lambda: os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))),
                 ('nice', lambda: os.setpriority(os.PRIO_PROCESS, 0, -5))):
    try:
        fn()
        print(what, 'done')
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except OSError:
        print(what, 'refused')
"""


def test_scheduling_limits_are_pinned_whatever_the_caller_has():
    """A host that allows real-time scheduling or a raised priority must not pass it on: a
    SCHED_FIFO program could hold a CPU against the monitor that has to kill it. The caller's
    limits are raised where it may (root with CAP_SYS_RESOURCE); its pending-signal limit is
    far above the run's anyway."""
    saved = {r: resource.getrlimit(r) for r in (resource.RLIMIT_RTPRIO, resource.RLIMIT_NICE)}
    for r, value in ((resource.RLIMIT_RTPRIO, 50), (resource.RLIMIT_NICE, 30)):
        try:
            resource.setrlimit(r, (value, value))
        except (ValueError, OSError):
            pass  # not allowed here: the run must still get (0, 0)
    try:
        sb = Sandbox(preload=())  # the helper inherits the caller's limits
        sb.start()
    finally:
        for r, value in saved.items():
            resource.setrlimit(r, value)
    try:
        res = sb.run(SCHEDULING)
        assert res.stdout == "(0, 0) (0, 0) True\nfifo refused\nnice refused\n", res
    finally:
        sb.close()
