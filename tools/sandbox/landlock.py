"""Landlock: unprivileged, kernel-enforced file-system, TCP and scope rules for the calling process.

A ruleset lists directories (and files) readable and writable by the sandboxed program; every
other path is refused by the kernel whatever the uid or file mode says. Where the kernel's ABI
allows it, the same ruleset refuses every TCP bind and connect (ABI 4), and scopes abstract
unix sockets and signals to the sandbox's own domain (ABI 6), so a program cannot signal the
process that started it. Rules are best effort by ABI: each right the running kernel does not
know is left out. This module knows nothing about jobs; it restricts the calling thread.
"""

from __future__ import annotations

import ctypes
import os
import stat

from agentrt.tools.sandbox import linux

__all__ = ["abi_version", "restrict"]

_CREATE, _ADD_RULE, _RESTRICT = 444, 445, 446
_RULE_PATH_BENEATH = 1

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK = 1 << 8, 1 << 9, 1 << 10, 1 << 11
MAKE_SYM, REFER, TRUNCATE, IOCTL_DEV = 1 << 12, 1 << 13, 1 << 14, 1 << 15
_FILE_ONLY = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
_READ = EXECUTE | READ_FILE | READ_DIR
_WRITE = (
    WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG | MAKE_SOCK | MAKE_FIFO | MAKE_SYM
    | REFER | TRUNCATE
)
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1 << 0, 1 << 1


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def abi_version() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is absent or disabled."""
    try:
        return linux.syscall(_CREATE, None, 0, 1)  # LANDLOCK_CREATE_RULESET_VERSION
    except OSError:
        return 0


def _fs_mask(abi: int) -> int:
    mask = (1 << 13) - 1
    if abi >= 2:
        mask |= REFER
    if abi >= 3:
        mask |= TRUNCATE
    if abi >= 5:
        mask |= IOCTL_DEV
    return mask


def _add(ruleset: int, path: str, access: int, handled: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a path that does not exist needs no rule
    try:
        allowed = access & handled
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            allowed &= _FILE_ONLY
        attr = _PathBeneath(allowed, fd)
        linux.syscall(_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(attr), 0)
    finally:
        os.close(fd)


def restrict(read_paths: list[str], write_paths: list[str], *, deny_tcp: bool = True) -> int:
    """Restrict the calling thread (and its future children) to the given paths.

    Args:
        read_paths: trees the program may read and execute from.
        write_paths: trees (or files) it may also create, write and remove in.
        deny_tcp: refuse every TCP bind and connect (ABI 4 and later).

    Returns:
        The ABI version enforced (0: Landlock unavailable, nothing was restricted).

    Raises:
        OSError: Landlock is present but refused the ruleset.
    """
    abi = abi_version()
    if abi <= 0:
        return 0
    handled = _fs_mask(abi)
    attr = _RulesetAttr(handled, 0, 0)
    size = 8
    if abi >= 4 and deny_tcp:
        attr.net = _NET_BIND_TCP | _NET_CONNECT_TCP
        size = 16
    if abi >= 6:
        attr.scoped = _SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL
        size = 24
    ruleset = linux.syscall(_CREATE, ctypes.byref(attr), size, 0)
    try:
        for p in read_paths:
            _add(ruleset, p, _READ, handled)
        for p in write_paths:
            _add(ruleset, p, _READ | _WRITE | IOCTL_DEV, handled)
        linux.syscall(_RESTRICT, ruleset, 0)
    finally:
        os.close(ruleset)
    return abi
