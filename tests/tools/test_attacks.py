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

import pytest

from tools.sandbox import SandboxLimits

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
    ("memory_bomb", "x = []\nwhile True:\n    x.append(bytearray(16 << 20))", {"bomb": True, "reason": ("memory_limit",)}),
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
    ("close_stdio_and_linger", "import time\nos.close(1)\nos.close(2)\ntime.sleep(100)", BOMB),
    ("patch_exit_and_return", "import threading\nos._exit = lambda *a: None\nsys.exit = lambda *a: None\nthreading.Thread(target=lambda: __import__('time').sleep(100)).start()", BOMB),
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
def test_attack_is_contained(name, code, opts, sandbox, header, canary, listeners, survivors, secret):
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
    assert survivors() == []
    assert sandbox._proc.poll() is None and sandbox._proc.pid == helper  # noqa: SLF001
    if opts.get("bomb"):
        assert res.duration_s <= limits.timeout_s + 1.0, res
        assert res.exit_code != 0 or res.killed_reason is not None
    if opts.get("reason"):
        assert res.killed_reason in opts["reason"], res
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
