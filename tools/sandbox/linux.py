"""Thin ctypes wrappers over the Linux calls the sandbox needs and Python 3.11 lacks.

Covers namespaces (`unshare`), mounts (`mount`, `umount2`, `pivot_root`), `prctl` flags,
capability dropping and raw `syscall`. Every wrapper raises `OSError` with the real errno.
This module knows nothing about jobs, tiers or policies; it only speaks to the kernel. It is
imported by the sandbox's own trusted processes (the fork helper and its children before they
drop privileges), never by code that runs model programs' logic.
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = [
    "CLONE_NEWNS",
    "CLONE_NEWUTS",
    "CLONE_NEWIPC",
    "CLONE_NEWUSER",
    "CLONE_NEWPID",
    "CLONE_NEWNET",
    "CLONE_NEWCGROUP",
    "MS_RDONLY",
    "MS_NOSUID",
    "MS_NODEV",
    "MS_NOEXEC",
    "MS_REMOUNT",
    "MS_BIND",
    "MS_REC",
    "MS_PRIVATE",
    "MNT_DETACH",
    "ARCH",
    "unshare",
    "mount",
    "umount2",
    "pivot_root",
    "prctl",
    "syscall",
    "set_no_new_privs",
    "set_parent_death_signal",
    "set_dumpable",
    "set_child_subreaper",
    "drop_capabilities",
    "sethostname",
]

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38

ARCH = platform.machine()
# Syscalls without a glibc wrapper we can rely on, per architecture.
_NR = {
    "x86_64": {"pivot_root": 155, "capset": 126},
    "aarch64": {"pivot_root": 41, "capset": 91},
}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def syscall(name_or_nr: str | int, *args: int | bytes | ctypes.Array | None) -> int:
    """Call a raw syscall by number or by a name known for this architecture.

    Raises:
        OSError: the kernel refused, or the name is unknown on this architecture.
    """
    nr = name_or_nr
    if isinstance(nr, str):
        try:
            nr = _NR[ARCH][nr]
        except KeyError:
            raise OSError(38, f"syscall {name_or_nr} unknown on {ARCH}") from None
    conv = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    return _check(_libc.syscall(ctypes.c_long(nr), *conv), f"syscall {name_or_nr}")


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces (see unshare(2))."""
    _check(_libc.unshare(flags), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    """mount(2) with str arguments."""
    enc = (lambda s: s.encode() if s is not None else None)  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    _check(_libc.umount2(target.encode(), flags), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2): make `new_root` the root of this mount namespace."""
    syscall("pivot_root", ctypes.c_char_p(new_root.encode()), ctypes.c_char_p(put_old.encode()))


def prctl(option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
    """prctl(2) with integer arguments."""
    return _check(_libc.prctl(option, a2, a3, a4, a5), f"prctl {option}")


def set_no_new_privs() -> None:
    """Forbid gaining privileges through execve (setuid binaries, file capabilities)."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def set_parent_death_signal(sig: int) -> None:
    """Ask the kernel to send `sig` to this process when its parent thread exits."""
    prctl(PR_SET_PDEATHSIG, sig)


def set_dumpable(on: bool) -> None:
    """Set the dumpable flag. Off, no process without CAP_SYS_PTRACE can read this one's memory
    or descriptors through /proc, even under the same uid."""
    prctl(PR_SET_DUMPABLE, int(on))


def set_child_subreaper() -> None:
    """Become a child subreaper: orphaned descendants are reparented to this process (not to
    the host's init), so it can still wait for them and kill them."""
    prctl(PR_SET_CHILD_SUBREAPER, 1)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_capabilities(*, current: bool = True) -> None:
    """Empty the capability bounding set and, with `current`, the effective, permitted and
    inheritable sets.

    Bounding-set drops need CAP_SETPCAP; where it is missing they are skipped (the capset
    still empties the current sets). Keep `current=False` when a uid change follows: the change
    itself clears the current sets, and needs CAP_SETUID until then.
    """
    for cap in range(64):
        try:
            prctl(PR_CAPBSET_DROP, cap)
        except OSError as e:
            if e.errno in (1, 22):  # EPERM: no CAP_SETPCAP; EINVAL: past the last capability
                break
            raise
    if current:
        header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
        data = (_CapData * 2)()
        syscall("capset", ctypes.byref(header), ctypes.byref(data))


def sethostname(name: str) -> None:
    """sethostname(2) (needs a UTS namespace of one's own)."""
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname")
