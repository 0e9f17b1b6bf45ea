"""The attack suite: hostile programs, each followed by an assertion of containment.

Every program gets a header naming the host's canary files, loopback listeners, the host and
helper pids and a hash of the secret. After each run the test checks: the program printed no
"ESCAPED" marker and no secret; host files and environment are unchanged; no listener was
reached; no process of the run survives; the helper was not restarted; and the next run sees
an empty /tmp and no process but its own init and itself. Bombs must end within their limit plus one second.
"""

from __future__ import annotations

import os
import resource
import threading
import time

import pytest

from agentrt.core.errors import ToolInputError
from agentrt.tools.python_tool import PythonTool
from agentrt.tools.sandbox import Sandbox, SandboxLimits

HEADER = '''
import os, sys
HOST_DIR = {host_dir!r}; CANARY = {canary!r}; TRACE_DB = {db!r}; OTHER_USER_FILE = {other!r}
UNIX_SOCK = {unix!r}; ABSTRACT = {abstract!r}; TCP_PORT = {tcp}; UDP_PORT = {udp}
HOST_PID = {host_pid}; HELPER_PID = {helper_pid}; SECRET_SHA = {sha!r}
def escaped(what):
    print("ESCAPED:" + what, flush=True)
def attempt(what, fn):
    try:
        value = fn()
    except BaseException as e:
        print("blocked", what, type(e).__name__, str(e)[:120], flush=True)
        return None
    return value
'''

BOMB = {"bomb": True}
# Each holds host memory outside its address space, then waits a second so a sampler sees it.
SYSV_SHM = """import ctypes, time
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype, libc.shmat.argtypes, libc.shmdt.argtypes = ctypes.c_void_p, [ctypes.c_int, ctypes.c_void_p, ctypes.c_int], [ctypes.c_void_p]
n = 0
for _ in range(32):
    sid = libc.shmget(0, 32 << 20, 0o1600)
    addr = libc.shmat(sid, None, 0) if sid >= 0 else None
    if addr in (None, 2**64 - 1):
        print('refused', ctypes.get_errno()); break
    ctypes.memset(addr, 1, 32 << 20)
    libc.shmdt(addr)
    n += 1
print('segments of 32 MiB', n, flush=True)
time.sleep(1)"""
MEMFD = """import os, time
fds = []
try:
    for i in range(100):
        fd = os.memfd_create('m%d' % i)
        for _ in range(6): os.write(fd, b'x' * (1 << 20))
        fds.append(fd)
except OSError as e:
    print('refused', e)
print('memfds of 6 MiB', len(fds), flush=True)
time.sleep(1)"""
MSG_QUEUES = """import ctypes, time
libc = ctypes.CDLL(None, use_errno=True)
msg = ctypes.create_string_buffer(8 + 8192)
msg[0] = 1
queues = sent = 0
for _ in range(32000):
    q = libc.msgget(0, 0o1600)
    if q < 0:
        print('refused', ctypes.get_errno()); break
    queues += 1
    while libc.msgsnd(q, msg, 8192, 0o4000) == 0: sent += 1
print('queues', queues, 'messages of 8 KiB', sent, flush=True)
time.sleep(1)"""
POSIX_SHM = """import time
n = 0
try:
    for i in range(200):
        with open('/dev/shm/seg%d' % i, 'wb') as f:
            for _ in range(6): f.write(b'x' * (1 << 20))
        n += 6
except OSError as e:
    print('refused', e)
print('MiB in /dev/shm', n, flush=True)
time.sleep(1)"""
ATTACKS = [
    # --- running other programs ------------------------------------------------------------
    ("subprocess_shell", "import subprocess\nif attempt('sh', lambda: subprocess.run(['/bin/sh','-c','touch '+HOST_DIR+'/pwned'], check=True)): escaped('shell')", {}),
    ("os_system", "rc = os.system('touch ' + HOST_DIR + '/pwned')\nif rc == 0: escaped('system')", {}),
    ("os_execv", "attempt('execv', lambda: os.execv('/bin/sh', ['sh', '-c', 'touch ' + HOST_DIR + '/pwned']))", {}),
    ("pty_spawn", "import pty\nattempt('pty', lambda: pty.spawn(['/bin/sh', '-c', 'touch ' + HOST_DIR + '/pwned']))", {}),
    ("posix_spawn", "attempt('spawn', lambda: os.waitpid(os.posix_spawn('/bin/sh', ['sh', '-c', 'id'], {}), 0))", {}),
    ("ctypes_system", "import ctypes\nlibc = ctypes.CDLL(None)\nrc = libc.system(('touch ' + HOST_DIR + '/pwned').encode())\nif rc == 0: escaped('libc.system')", {}),
    ("ctypes_raw_execve", "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nargv = (ctypes.c_char_p * 2)(b'/bin/sh', None)\nrc = libc.syscall(59, b'/bin/sh', argv, None)\nprint('execve', rc, ctypes.get_errno())", {}),
    ("memfd_exec", "import ctypes\nfd = os.memfd_create('x')\nos.write(fd, open('/bin/sh','rb').read())\nattempt('fexecve', lambda: os.execve(fd, ['sh', '-c', 'id'], {}))", {}),
    # --- Python-level escape chains: they reach os, which is contained anyway -----------------
    ("subclasses_chain", "for c in ().__class__.__base__.__subclasses__():\n    if c.__name__ == '_wrap_close':\n        c.__init__.__globals__['system']('touch ' + HOST_DIR + '/pwned')\n        break", {}),
    ("frame_globals", "f = sys._getframe()\nwhile f.f_back: f = f.f_back\ng = f.f_globals\nprint(sorted(k for k in g if not k.startswith('__'))[:30])\nimp = g['__builtins__']['__import__'] if isinstance(g['__builtins__'], dict) else g['__builtins__'].__import__\nimp('os').system('touch ' + HOST_DIR + '/pwned')", {}),
    ("traceback_globals", "try:\n    1/0\nexcept ZeroDivisionError as e:\n    tb = e.__traceback__\n    g = tb.tb_frame.f_globals\n    g['os'].system('touch ' + HOST_DIR + '/pwned')", {}),
    ("importlib_tricks", "import importlib, importlib.util\nposix = importlib.import_module('posix')\nposix.system('touch ' + HOST_DIR + '/pwned')\nspec = attempt('spec', lambda: importlib.util.spec_from_file_location('cfg', '/work/main/agentrt/config.py'))\nif spec: attempt('load', lambda: spec.loader.exec_module(importlib.util.module_from_spec(spec)))", {}),
    ("gc_objects_scan", "import gc\nfor o in gc.get_objects():\n    if isinstance(o, dict) and 'AGENTRT_TEST_SECRET' in o: escaped('env in heap')", {}),
    ("memory_scan_for_secret", "import re, hashlib\nhits = 0\nfor line in open('/proc/self/maps'):\n    a, b = (int(x, 16) for x in line.split()[0].split('-'))\n    if 'r' not in line.split()[1] or b - a > 1 << 28: continue\n    try:\n        with open('/proc/self/mem', 'rb') as m:\n            m.seek(a); data = m.read(b - a)\n    except OSError: continue\n    for mt in re.finditer(rb'AGENTRTCANARY[0-9a-f]{32}', data):\n        if hashlib.sha256(mt.group(0)).hexdigest() == SECRET_SHA: escaped('secret in memory')\nprint('scanned')", {}),
    # --- reading what is not theirs --------------------------------------------------------
    ("read_etc_shadow", "d = attempt('shadow', lambda: open('/etc/shadow').read())\nif d: escaped('shadow:' + d[:40])", {}),
    ("read_proc_environ", "d = open('/proc/self/environ','rb').read()\nprint(d)\nif b'SECRET' in d: escaped('environ')\nprint(dict(os.environ))", {}),
    ("read_pid1_and_host_environ", "for p in (1, HOST_PID, HELPER_PID):\n    d = attempt(str(p), lambda: open('/proc/%d/environ' % p, 'rb').read())\n    if d and b'SECRET' in d: escaped('environ of %d' % p)\n    print(p, attempt('cmd', lambda: open('/proc/%d/cmdline' % p, 'rb').read()))", {}),
    ("read_trace_db", "for p in (TRACE_DB, os.path.expanduser('~/.local/share/agentrt/agentrt.db'), '/root/.local/share/agentrt/agentrt.db'):\n    d = attempt(p, lambda: open(p).read())\n    if d: escaped('db:' + d)", {}),
    ("read_canary_and_other_user", "for p in (CANARY, OTHER_USER_FILE, HOST_DIR):\n    d = attempt(p, lambda: open(p).read() if not os.path.isdir(p) else os.listdir(p))\n    if d: escaped('read:' + str(d))", {}),
    ("read_repo_and_home", "for p in ('/work/main/pyproject.toml', '/root/.bashrc', '/root', '/home', '/var/run/postgresql', '/etc/passwd'):\n    d = attempt(p, lambda: open(p).read()[:200] if os.path.isfile(p) else os.listdir(p))\n    print(p, d)\n    if p == '/root' and d: d = set(d) - {'.pyenv'}  # the interpreter itself lives there\n    if p != '/etc/passwd' and d: escaped(p)", {}),
    ("read_host_proc_mem", "d = attempt('mem', lambda: open('/proc/%d/mem' % HOST_PID, 'rb'))\nif d: escaped('host mem')", {}),
    ("proc_root_escape", "for p in ('/proc/1/root' + HOST_DIR, '/proc/self/root' + CANARY, '/proc/1/cwd/../../' + CANARY):\n    d = attempt(p, lambda: open(p).read())\n    if d: escaped(p)", {}),
    # --- writing outside the work directory ------------------------------------------------
    ("write_outside_workdir", "for p in (HOST_DIR + '/pwned', '/usr/pwned', '/etc/pwned', '/pwned', '/root/pwned', '/proc/sys/kernel/hostname'):\n    if attempt(p, lambda: open(p, 'w').write('x')): escaped('write ' + p)", {}),
    ("write_site_packages", "import sympy\np = os.path.dirname(sympy.__file__) + '/../zz_persist.pth'\nif attempt('pth', lambda: open(p, 'w').write('import os')): escaped('pth')\nif attempt('mod', lambda: open(sympy.__file__, 'a').write('#')): escaped('modify sympy')", {}),
    ("symlink_tricks", "for i, t in enumerate((CANARY, '/etc/shadow', HOST_DIR, '/proc/1/root' + HOST_DIR)):\n    attempt('link', lambda: os.symlink(t, 'l%d' % i))\n    d = attempt('read', lambda: open('l%d' % i).read() if not os.path.isdir('l%d' % i) else os.listdir('l%d' % i))\n    if d: escaped('symlink ' + t)\n    attempt('hardlink', lambda: os.link(t, 'h%d' % i))\n    if attempt('write', lambda: open('l%d/pwned' % i, 'w').write('x')): escaped('write via link')", {}),
    ("mount_and_chroot", "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nprint(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None), ctypes.get_errno())\nattempt('chroot', lambda: os.chroot('/tmp'))\nif libc.unshare(0x10000000) == 0: escaped('userns')\nif libc.unshare(0x20000) == 0: escaped('mountns')", {}),
    # --- network ---------------------------------------------------------------------------
    ("tcp_loopback", "import socket\nif attempt('tcp', lambda: socket.create_connection(('127.0.0.1', TCP_PORT), timeout=1)): escaped('tcp')", {}),
    ("tcp_postgres", "import socket\nif attempt('pg', lambda: socket.create_connection(('127.0.0.1', 5432), timeout=1)): escaped('postgres')", {}),
    ("udp_loopback", "import socket\ns = attempt('udp', lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))\nif s and attempt('send', lambda: s.sendto(b'x', ('127.0.0.1', UDP_PORT))): escaped('udp')", {}),
    ("dns_lookup", "import socket\nif attempt('dns', lambda: socket.getaddrinfo('example.com', 80)): escaped('dns')", {}),
    ("route_to_outside", "import socket\ns = attempt('udp', lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))\nif s and attempt('connect', lambda: s.connect(('192.0.2.1', 53))) is None and attempt('name', lambda: s.getsockname()[0] != '0.0.0.0'): escaped('has a route out')\nprint(attempt('ifaces', lambda: os.listdir('/sys/class/net')))", {}),
    ("unix_socket_host_service", "import socket\ns = attempt('unix', lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))\nif s and attempt('connect', lambda: s.connect(UNIX_SOCK)) is None and s: escaped('unix')", {}),
    ("abstract_unix_socket", "import socket\ns = attempt('unix', lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))\nif s and attempt('connect', lambda: s.connect('\\0' + ABSTRACT)) is None: escaped('abstract')", {}),
    ("raw_packet_vsock_netlink", "import socket\nfor fam, typ in ((17, 3), (40, 1), (16, 3), (socket.AF_INET, socket.SOCK_RAW)):\n    if attempt(str(fam), lambda: socket.socket(fam, typ, 0 if fam != socket.AF_INET else 1)): escaped('socket family %d' % fam)", {}),
    # --- resource bombs --------------------------------------------------------------------
    ("fork_bomb", "while True:\n    try:\n        os.fork()\n    except OSError:\n        pass", BOMB),
    ("thread_bomb", "import threading, time\nwhile True:\n    try:\n        threading.Thread(target=time.sleep, args=(100,)).start()\n    except BaseException:\n        pass", BOMB),
    ("memory_bomb", "x = []\nwhile True:\n    x.append(bytearray(16 << 20))", {"bomb": True, "memory": True}),
    ("memory_bomb_c", "import ctypes\nb = ctypes.create_string_buffer(4 << 30)\nescaped('got 4 GiB')", {}),
    ("memory_bomb_processes", "for _ in range(30):\n    if os.fork() == 0:\n        x = []\n        while True: x.append(bytearray(8 << 20))\n_, status = os.wait()\nos._exit(os.waitstatus_to_exitcode(status) % 256 or 99)", BOMB),
    ("cpu_loop_python", "while True:\n    pass", {"bomb": True, "reason": ("timeout", "cpu_limit")}),
    ("cpu_loop_c_regex", "import re\nre.match(r'(a+)+$', 'a' * 64 + 'b')", {"bomb": True, "reason": ("timeout", "cpu_limit")}),
    ("huge_power", "x = 10**10**7\nprint(len(str(x)))", {"bomb": True}),
    ("cpu_ignores_sigxcpu", "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True: pass", BOMB),
    ("sleep_forever", "import time\ntime.sleep(10**6)", {"bomb": True, "reason": ("timeout",)}),
    ("blocking_stdin", "d = sys.stdin.read()\nprint('read', len(d))\nattempt('input', input)", {}),
    ("output_100mb", "chunk = 'x' * 1023 + '\\n'\nfor _ in range(100 * 1024):\n    sys.stdout.write(chunk)", {"bomb": True, "output": True}),
    ("single_huge_line", "sys.stdout.write('y' * (50 << 20))", {"bomb": True, "output": True}),
    ("invalid_utf8", "os.write(1, b'\\xff\\xfe\\xc3\\x28 ok \\xed\\xa0\\x80\\n')\nos.write(2, b'\\x80\\x81')", {}),
    ("disk_fill_big_file", "with open('big', 'wb') as f:\n    while True: f.write(b'\\0' * (1 << 20))", {}),
    ("disk_fill_many_files", "i = 0\nwhile True:\n    open('f%d' % i, 'w').write('x' * 100)\n    i += 1", {}),
    ("dev_shm_fill", "with open('/dev/shm/big', 'wb') as f:\n    while True: f.write(b'\\0' * (1 << 20))", {}),
    # --- outliving the run, and attacking the parent -----------------------------------------
    ("double_fork_daemon", "import time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        for _ in range(200):\n            time.sleep(0.05)\n            attempt('w', lambda: open(HOST_DIR + '/late', 'w').write('x'))\n    os._exit(0)\nprint('parent exits')", {}),
    ("daemon_survives_timeout", "import time\nif os.fork() == 0:\n    os.setsid()\n    while True: time.sleep(1)\ntime.sleep(100)", BOMB),
    ("kill_the_parent", "import signal\nfor target in (os.getppid(), HOST_PID, HELPER_PID, -1):\n    attempt('kill %d' % target, lambda: os.kill(target, signal.SIGKILL))\nfor pid in range(2, 5000):\n    try: os.kill(pid, signal.SIGKILL)\n    except OSError: pass\nprint('still here')", {}),
    ("ptrace_and_setuid", "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nif libc.ptrace(16, HOST_PID, 0, 0) == 0: escaped('ptrace host')\nif libc.ptrace(16, 1, 0, 0) == 0: escaped('ptrace init')\nattempt('setuid', lambda: os.setuid(0))\nif os.getuid() == 0 and os.geteuid() == 0 and open('/proc/self/status').read().count('CapEff:\\t0000000000000000') == 0: escaped('caps')", {}),
    ("kernel_surfaces", "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nfor name, nr in (('io_uring_setup', 425), ('bpf', 321), ('perf_event_open', 298), ('keyctl', 250), ('userfaultfd', 323), ('init_module', 175)):\n    r = libc.syscall(nr, 0, 0, 0, 0, 0)\n    print(name, r, ctypes.get_errno())\n    if r >= 0 and name != 'keyctl': escaped(name)", {}),
    ("poison_side_result", "os.write(3, b'[' * 200000)\nprint('poisoned')", {}),
    ("flood_side_result", "b = b'x' * 65536\nwhile True:\n    os.write(3, b)",
     {"bomb": True, "reason": ("output_limit",)}),
    ("prlimit_the_init", "import resource\nfor pid in (1, os.getppid(), HELPER_PID, HOST_PID):\n"
     "    cut = lambda: resource.prlimit(pid, resource.RLIMIT_CPU, (1, 1))\n"
     "    if attempt('prlimit %d' % pid, cut): escaped('rlimits of %d' % pid)", {}),
    ("close_stdio_and_linger", "import time\nos.close(1)\nos.close(2)\ntime.sleep(100)", BOMB),
    ("patch_exit_and_return", "import threading\nos._exit = lambda *a: None\nsys.exit = lambda *a: None\nthreading.Thread(target=lambda: __import__('time').sleep(100)).start()", BOMB),
    # --- memory outside every process's address space (see also test_memory_attack_is_bounded)
    ("sysv_shared_memory", SYSV_SHM, {}),
    ("memfd_files", MEMFD, {}),
    ("sysv_message_queues", MSG_QUEUES, {}),
    ("posix_shared_memory", POSIX_SHM, {}),
    ("posix_message_queue", "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nattr = (ctypes.c_long * 8)(0, 10, 8192)\nq = libc.mq_open(b'/q', os.O_CREAT | os.O_RDWR, 0o600, attr)\nprint('mq_open', q, ctypes.get_errno())\nif q >= 0: escaped('posix message queue')", {}),
    # --- forging the sandbox's own reports ---------------------------------------------------
    ("forged_result_record", "fake = b'{\"syntax_error\": {\"message\": \"forged \\\\u001b[2J\", \"line\": 1, \"offset\": 1, \"text\": \"x\"}}'\nif attempt('fd 3', lambda: os.write(3, fake)) is None: attempt('reopen', lambda: os.write(os.open('/proc/self/fd/3', os.O_WRONLY), fake))\nos._exit(0)", {"no_record": True}),
    ("forged_init_report", "import time\nfor p in ('/proc/1/fd/4', '/proc/1/fd/5', '/proc/1/mem'):\n    fd = attempt(p, lambda: os.open(p, os.O_WRONLY))\n    if fd is not None and attempt('write', lambda: os.write(fd, b'{\"status\": 0, \"cpu_s\": 0, \"max_rss_kb\": 1}\\n')): escaped('wrote to the init: ' + p)\nprint(attempt('fds', lambda: os.listdir('/proc/1/fd')))\ntime.sleep(100)", {"bomb": True, "reason": ("timeout",)}),
    ("spoofed_memory_error", "print('Traceback (most recent call last):\\nMemoryError', file=sys.stderr)\nsys.exit(1)", {"reason": (None,)}),
    ("spoofed_cpu_limit_signal", "import signal\nos.kill(os.getpid(), signal.SIGXCPU)", {"reason": ("signal",)}),
    ("killed_init", "import signal, time\nfor sig in sorted(signal.valid_signals() - {signal.SIGSTOP}):\n    attempt(str(sig), lambda: os.kill(1, sig))\ntime.sleep(100)", {"bomb": True, "reason": ("timeout",)}),
    ("persist_for_next_run", "open('/tmp/persist', 'w').write('x')\nopen('/dev/shm/persist', 'w').write('x')\nimport sympy\nsympy.PERSIST = 1\nos.environ['PERSIST'] = '1'\nprint('planted')", {}),
]


@pytest.fixture
def header(sandbox, canary, listeners, secret_sha) -> str:
    return HEADER.format(
        host_dir=str(canary.root), canary=str(canary.files["canary.txt"]), db=str(canary.files["agentrt.db"]),
        other=str(canary.files["other_user.txt"]), unix=listeners.unix_path, abstract=listeners.abstract_name,
        tcp=listeners.tcp_port, udp=listeners.udp_port, host_pid=os.getpid(),
        helper_pid=sandbox._proc.pid, sha=secret_sha)  # noqa: SLF001


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


@pytest.mark.parametrize("name,code,opts", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_attack_is_contained(name, code, opts, sandbox, header, canary, listeners, survivors, secret, leftover_cgroups):
    before_files = canary.snapshot()
    before_env = dict(os.environ)
    helper = sandbox._proc.pid  # noqa: SLF001
    hits = len(listeners.hits)
    limits = sandbox.limits
    rss0 = _rss_mb()

    res = sandbox.run(header + code, stdin="some input\n")

    text = res.stdout + res.stderr
    assert "ESCAPED" not in text, text[-3000:]
    assert secret not in text
    assert canary.snapshot() == before_files
    assert dict(os.environ) == before_env
    assert listeners.hits[hits:] == []
    assert survivors() == [] and leftover_cgroups(sandbox) == []
    assert sandbox._proc.poll() is None and sandbox._proc.pid == helper  # noqa: SLF001
    if opts.get("bomb"):
        assert res.duration_s <= limits.timeout_s + 1.0, res
        assert res.exit_code != 0 or res.killed_reason is not None
    if opts.get("reason"):
        assert res.killed_reason in opts["reason"], res
    if opts.get("memory"):  # the address-space rlimit answers MemoryError, the cgroup kills
        assert "MemoryError" in res.stderr or res.killed_reason == "memory_limit", res
    if opts.get("no_record"):  # nothing the program wrote is read as the sandbox's own record
        assert res.syntax_error is None and res.result is None and res.result_error is None, res
    if opts.get("output"):
        assert res.truncated and len(res.stdout.encode()) <= limits.output_bytes
        assert res.killed_reason in ("output_limit", "timeout", None)
    assert _rss_mb() - rss0 < 64, "the caller's memory grew with the program's"

    after = sandbox.run("import os\nprint(sorted(os.listdir('/tmp')), sorted(os.listdir('/dev/shm')), "
                        "sorted(p for p in os.listdir('/proc') if p.isdigit()), 'PERSIST' in os.environ, "
                        "hasattr(__import__('sympy'), 'PERSIST'))")
    assert after.stdout.strip() == "['main.py'] ['main.py'] ['1', '2'] False False", after


def test_suite_has_at_least_forty_attacks():
    assert len(ATTACKS) >= 40
    assert len({a[0] for a in ATTACKS}) == len(ATTACKS)


def test_memory_bomb_does_not_grow_the_caller(sandbox):
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res = sandbox.run("x = bytearray(b'1') * (100 << 20)\nprint(len(x))",
                      limits=SandboxLimits(timeout_s=5, memory_mb=256))
    assert res.stdout.strip() == str(100 << 20)
    assert res.max_rss_mb and res.max_rss_mb >= 100
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 32 * 1024


# --- memory a run holds outside its processes: measured on the host -------------------------

MEMORY_ATTACKS = {"sysv_shared_memory": SYSV_SHM, "memfd_files": MEMFD, "sysv_message_queues": MSG_QUEUES,
                  "posix_shared_memory": POSIX_SHM}
# /tmp (which is also /dev/shm) far larger than the memory limit: only the memory limit binds
MEMORY_LIMITS = SandboxLimits(timeout_s=6, memory_mb=64, disk_mb=2048, max_files=4096, file_size_mb=16)
_MARGIN_MB = 32  # other processes of this machine allocate meanwhile


def _pinned_mb() -> float:
    """Host memory no process's address space accounts for: shared memory and tmpfs (Shmem),
    and kernel allocations such as message queues (SUnreclaim)."""
    fields = {}
    with open("/proc/meminfo") as f:
        for line in f:
            name, value = line.split(":")
            fields[name] = int(value.split()[0])
    return (fields["Shmem"] + fields["SUnreclaim"]) / 1024


def _host_ipc() -> dict[str, list[str]]:
    out = {}
    for kind in ("shm", "msg", "sem"):
        with open(f"/proc/sysvipc/{kind}") as f:
            out[kind] = sorted(line.split()[1] for line in f.readlines()[1:])
    return out


@pytest.fixture(scope="module")
def sandbox_without_seccomp(canary):
    """Only the cgroup and the IPC namespace's limits stand between these attacks and the host."""
    sb = Sandbox(preload=(), use_seccomp=False, limits=MEMORY_LIMITS)
    sb.start()
    yield sb
    sb.close()


@pytest.mark.parametrize("layers", ["all", "without_seccomp"])
@pytest.mark.parametrize("name", MEMORY_ATTACKS)
def test_memory_attack_is_bounded(name, layers, request, sandbox, survivors, leftover_cgroups):
    sb = sandbox if layers == "all" else request.getfixturevalue("sandbox_without_seccomp")
    if layers == "without_seccomp" and sb.info.memory_limit_scope != "run" and name in ("memfd_files",
                                                                                     "posix_shared_memory"):
        pytest.skip(f"no memory cgroup per run on this machine: {sb.info.notes}")
    ipc, shm_files, base = _host_ipc(), sorted(os.listdir("/dev/shm")), _pinned_mb()
    peak, done = [base], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _pinned_mb())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        res = sb.run(MEMORY_ATTACKS[name], limits=MEMORY_LIMITS)
    finally:
        done.set()
        sampler.join()
    grew = peak[0] - base
    print(f"{name} ({layers}): host grew {grew:.0f} MiB at peak; {res.stdout.strip()!r}, "
          f"{res.killed_reason}, cgroup peak {res.memory_peak_mb} MiB")
    assert grew <= MEMORY_LIMITS.memory_mb + 16 + _MARGIN_MB, res
    if res.memory_limit_scope == "run":
        assert res.memory_peak_mb is not None and res.memory_peak_mb <= MEMORY_LIMITS.memory_mb + 16
    if "refused" not in res.stdout:  # it held memory until the cgroup stopped it
        assert res.killed_reason == "memory_limit", res
    deadline = time.monotonic() + 5  # the run's IPC namespace is freed after its last process
    while _pinned_mb() - base > _MARGIN_MB and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _pinned_mb() - base <= _MARGIN_MB, "memory of the run outlived it"
    assert _host_ipc() == ipc and sorted(os.listdir("/dev/shm")) == shm_files
    assert survivors() == [] and leftover_cgroups(sb) == []


def test_forged_result_is_not_believed(sandbox):
    fake = ('import os\nos.write(3, b\'{"syntax_error": {"message": "forged", "line": 7, "offset": 1, "text": "x"}}\')\n'
            "os._exit(0)")
    res = sandbox.run(fake, result_var="answer")
    assert res.syntax_error is None and res.result is None
    assert res.result_error == "the result channel holds no valid result"
    res = sandbox.run("import os\nos.write(3, b'{\"error\": \"no such code\"}')\nos._exit(0)", result_var="answer")
    assert res.result_error == "the result channel holds no valid result"
    with pytest.raises(ToolInputError) as e:
        PythonTool(sandbox=sandbox).run({"code": fake, "result_var": "answer"})
    assert "forged" not in e.value.message and "line" not in e.value.details
    real = sandbox.run("x = 1\nif x\n    pass", result_var="x")  # the real one still comes through
    assert real.syntax_error["line"] == 2 and real.exit_code == 1


@pytest.mark.parametrize("result_var", [None, "answer"])
def test_a_flood_on_the_result_channel_is_an_output_limit(sandbox, result_var, survivors):
    """Bytes on descriptor 3 count like stdout: the run ends at once, not at its timeout, and the
    caller reads a bounded amount whether or not it asked for a value."""
    limits = SandboxLimits(timeout_s=20, output_kill_bytes=8 << 20)
    cpu0 = time.thread_time()
    res = sandbox.run("import os\nb = b'x' * 65536\nwhile True:\n    os.write(3, b)",
                      limits=limits, result_var=result_var)
    assert res.killed_reason == "output_limit" and not res.timed_out, res
    assert res.duration_s < 5, res
    assert time.thread_time() - cpu0 < 2.0  # the collecting thread did not spin on the flood
    assert res.result is None
    assert survivors() == []
    big = sandbox.run("answer = 'y' * 900_000", limits=limits, result_var="answer")
    assert big.ok and big.result == "y" * 900_000  # a large real value still comes back


def test_the_inits_rlimits_are_out_of_reach(sandbox):
    """Only the calling process's own limits (pid 0) may be read or set."""
    if not sandbox.info.seccomp:
        pytest.skip("no seccomp filter on this machine")
    code = ("import os, resource\n"
            "for pid in (os.getppid(), os.getpid()):\n"
            "    try:\n"
            "        resource.prlimit(pid, resource.RLIMIT_NOFILE, (16, 16))\n"
            "        print('changed')\n"
            "    except PermissionError:\n"
            "        print('refused')\n"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))\n"
            "print(resource.prlimit(0, resource.RLIMIT_NOFILE),\n"
            "      resource.getrlimit(resource.RLIMIT_NOFILE))\n"
            "open('/dev/null').close()\n")
    res = sandbox.run(code)
    assert res.stdout == "refused\nrefused\n(32, 32) (32, 32)\n" and res.ok, res
