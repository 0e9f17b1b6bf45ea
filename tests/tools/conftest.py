"""Fixtures for the tools tests: one shared sandbox, a host canary, loopback listeners, checks.

The secret is put into this process's environment and into canary files BEFORE the sandbox's
helper starts, so any leak of the environment, of host files or of helper memory would show
the secret in a run's output.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agentrt.tools.sandbox import Sandbox, SandboxLimits, cgroup

SECRET = "AGENTRTCANARY" + secrets.token_hex(16)
SMALL = SandboxLimits(timeout_s=2.0, memory_mb=128, max_processes=32, disk_mb=16, max_files=512,
                      file_size_mb=8, output_bytes=64 * 1024, output_kill_bytes=8 * 1024 * 1024)


@dataclass
class Canary:
    """Host files the sandbox must neither read nor change, and a way to snapshot them."""

    root: Path
    files: dict[str, Path] = field(default_factory=dict)

    def snapshot(self) -> dict[str, bytes]:
        out = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                out[str(p)] = p.read_bytes() if p.is_file() and not p.is_symlink() else b"<dir-or-special>"
        return out


@dataclass
class Listeners:
    """Loopback services on the host that sandboxed programs must not reach."""

    tcp_port: int
    udp_port: int
    unix_path: str
    abstract_name: str
    hits: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
def canary(tmp_path_factory: pytest.TempPathFactory) -> Canary:
    root = tmp_path_factory.mktemp("canary")
    root.chmod(0o755)
    c = Canary(root=root)
    for name, mode in (("canary.txt", 0o644), ("agentrt.db", 0o644), ("other_user.txt", 0o600)):
        p = root / name
        p.write_text(f"{name} {SECRET}\n")
        p.chmod(mode)
        c.files[name] = p
    os.chown(c.files["other_user.txt"], 1000, 1000)
    return c


def _serve(sock: socket.socket, hits: list[str], kind: str, stream: bool) -> None:
    while True:
        try:
            if stream:
                conn, _ = sock.accept()
                hits.append(kind)
                conn.close()
            else:
                sock.recv(65536)
                hits.append(kind)
        except OSError:
            return


@pytest.fixture(scope="session")
def listeners(canary: Canary):
    hits: list[str] = []
    tcp = socket.create_server(("127.0.0.1", 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    unix_path = str(canary.root / "service.sock")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(unix_path)
    os.chmod(unix_path, 0o777)
    unix.listen()
    abstract_name = "agentrt-test-" + secrets.token_hex(4)
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract.bind("\0" + abstract_name)
    abstract.listen()
    for s, kind, stream in ((tcp, "tcp", True), (udp, "udp", False), (unix, "unix", True), (abstract, "abstract", True)):
        threading.Thread(target=_serve, args=(s, hits, kind, stream), daemon=True).start()
    yield Listeners(tcp.getsockname()[1], udp.getsockname()[1], unix_path, abstract_name, hits)
    for s in (tcp, udp, unix, abstract):
        s.close()


@pytest.fixture(scope="session")
def sandbox(canary: Canary):
    """The sandbox every tools test shares (started once, with the secret in the environment)."""
    os.environ["AGENTRT_TEST_SECRET"] = SECRET
    sb = Sandbox(limits=SMALL)
    sb.start()
    yield sb
    sb.close()
    os.environ.pop("AGENTRT_TEST_SECRET", None)


def run_uids(sb: Sandbox) -> list[int]:
    """Pids of host processes running under this process's sandbox uids (should be none)."""
    lo = sb._uids._base  # noqa: SLF001 - the test inspects the allocator's range on purpose
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        uid = int(next(line for line in text.splitlines() if line.startswith("Uid:")).split()[1])
        if lo <= uid < lo + 4096:
            found.append(int(entry))
    return found


def run_cgroups(sb: Sandbox) -> list[str]:
    """The run cgroups of `sb`'s helper that exist now (none between runs)."""
    found, _ = cgroup.locate()
    parent = os.path.join(found[1], f"agentrt-sandbox-{sb._proc.pid}") if found else ""  # noqa: SLF001
    if not os.path.isdir(parent):
        return []
    return sorted(n for n in os.listdir(parent) if os.path.isdir(os.path.join(parent, n)))


@pytest.fixture
def leftover_cgroups():
    """A function listing a sandbox's run cgroups, waiting up to 3 s for them to go."""
    def check(sb: Sandbox) -> list[str]:
        deadline = time.monotonic() + 3.0
        while run_cgroups(sb) and time.monotonic() < deadline:
            time.sleep(0.05)
        return run_cgroups(sb)
    return check


@pytest.fixture
def survivors(sandbox: Sandbox):
    """A function returning surviving run processes, waiting up to 3 s for teardown."""
    def check() -> list[int]:
        deadline = time.monotonic() + 3.0
        while True:
            left = run_uids(sandbox)
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.05)
    return check


@pytest.fixture(scope="session")
def secret_sha() -> str:
    return hashlib.sha256(SECRET.encode()).hexdigest()


@pytest.fixture(scope="session")
def secret() -> str:
    return SECRET


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


@pytest.fixture
def children():
    """The child pids of a process (from /proc), for tests that look for a run's processes."""
    return _children
