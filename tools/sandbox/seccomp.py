"""A seccomp-BPF syscall filter for sandboxed programs, written as raw BPF (no libseccomp needed).

The filter is a deny list on top of the other layers (namespaces, uid, Landlock, rlimits): it
removes the kernel surfaces a computation never needs and that escapes and privilege bugs go
through (ptrace, mount and namespace calls, keyrings, bpf, perf, io_uring, kernel modules),
refuses the ways to hold memory outside a process's address space (SysV shared memory,
semaphores and message queues, POSIX message queues, memfds), forbids `execve` (no shells, no
compilers, no setuid binaries), forbids changing the parent-death signal (killing the monitor
must kill the run) and touching another process's rlimits (`prlimit64` on a pid other than
0: the init's limits are the sandbox's, not the program's), refuses sockets other than
AF_INET/AF_INET6 inside an empty network namespace (all sockets without one), refuses
`kill(-1, ...)` and terminal input injection.
Denied calls fail with EPERM (clone3 with ENOSYS so the C library falls back to clone, whose
namespace flags are then checked).

Only x86_64 is covered: the syscall numbers of other architectures are not tested here, so
`available()` says False there and the sandbox reports seccomp as inactive. This module knows
nothing about processes or jobs; it builds and installs a filter in the calling thread.
"""

from __future__ import annotations

import ctypes
import errno
import struct

from agentrt.tools.sandbox import linux

__all__ = ["available", "build_filter", "install"]

_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_BIT = 0x40000000
_RET_ALLOW = 0x7FFF0000
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000

_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06

_OFF_NR, _OFF_ARCH, _OFF_ARGS = 0, 4, 16

_X86_64 = {
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "mount": 165, "umount2": 166,
    "pivot_root": 155, "chroot": 161, "unshare": 272, "setns": 308, "keyctl": 250, "add_key": 248,
    "request_key": 249, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323, "kexec_load": 246,
    "kexec_file_load": 320, "init_module": 175, "finit_module": 313, "delete_module": 176,
    "reboot": 169, "swapon": 167, "swapoff": 168, "acct": 163, "quotactl": 179, "quotactl_fd": 443,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "open_by_handle_at": 304, "name_to_handle_at": 303, "fanotify_init": 300, "move_mount": 429,
    "open_tree": 428, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "mount_setattr": 442, "settimeofday": 164, "clock_settime": 227, "clock_adjtime": 305,
    "adjtimex": 159, "syslog": 103, "vhangup": 153, "pidfd_getfd": 438, "process_madvise": 440,
    "kcmp": 312, "lookup_dcookie": 212, "iopl": 172, "ioperm": 173, "modify_ldt": 154,
    "uselib": 134, "personality": 135, "_sysctl": 156, "ustat": 136, "sysfs": 139,
    "nfsservctl": 180, "create_module": 174, "get_kernel_syms": 177, "query_module": 178,
    "migrate_pages": 256, "move_pages": 279,
    # memory a run could pin outside every process's address space: SysV IPC, POSIX message
    # queues, memfds (the run's cgroup counts them too, where it has one)
    "shmget": 29, "shmat": 30, "shmctl": 31, "shmdt": 67, "semget": 64, "semop": 65, "semctl": 66,
    "semtimedop": 220, "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71, "mq_open": 240,
    "mq_unlink": 241, "mq_timedsend": 242, "mq_timedreceive": 243, "mq_notify": 244, "mq_getsetattr": 245,
    "memfd_create": 319, "memfd_secret": 447,
    # calls with argument checks or special answers
    "execve": 59, "execveat": 322, "socket": 41, "clone": 56, "clone3": 435, "kill": 62, "ioctl": 16,
    "prctl": 157, "prlimit64": 302,
}
_ARG_CHECKED = {"execve", "execveat", "socket", "clone", "clone3", "kill", "ioctl", "prctl",
                "prlimit64"}
_PR_SET_PDEATHSIG = 1
_NS_FLAGS = (
    linux.CLONE_NEWNS | linux.CLONE_NEWUTS | linux.CLONE_NEWIPC | linux.CLONE_NEWUSER
    | linux.CLONE_NEWPID | linux.CLONE_NEWNET | linux.CLONE_NEWCGROUP
)
_AF_INET, _AF_INET6 = 2, 10
_TIOCSTI, _TIOCLINUX = 0x5412, 0x541C


def available() -> bool:
    """True where this module has a tested syscall table (x86_64)."""
    return linux.ARCH == "x86_64"


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k & 0xFFFFFFFF)


def _deny(nr: int, err: int) -> list[bytes]:
    return [_ins(_JEQ_K, nr, 0, 1), _ins(_RET_K, _RET_ERRNO | err)]


def _deny_if_arg_in(nr: int, arg: int, values: list[int], err: int) -> list[bytes]:
    """Deny `nr` when the low word of argument `arg` equals one of `values`."""
    body = [_ins(_LD_W_ABS, _OFF_ARGS + 8 * arg)]
    body += [_ins(_JEQ_K, v, len(values) - i - 1, 0) for i, v in enumerate(values)]
    body[-1] = _ins(_JEQ_K, values[-1], 0, 1)
    body += [_ins(_RET_K, _RET_ERRNO | err), _ins(_LD_W_ABS, _OFF_NR)]
    return [_ins(_JEQ_K, nr, 0, len(body))] + body


def _deny_unless_arg_in(nr: int, arg: int, allowed: list[int], err: int) -> list[bytes]:
    """Deny `nr` unless the low word of argument `arg` is one of `allowed` (may be empty)."""
    body = [_ins(_LD_W_ABS, _OFF_ARGS + 8 * arg)]
    body += [_ins(_JEQ_K, v, len(allowed) - i, 0) for i, v in enumerate(allowed)]
    body += [_ins(_RET_K, _RET_ERRNO | err), _ins(_LD_W_ABS, _OFF_NR)]
    return [_ins(_JEQ_K, nr, 0, len(body))] + body


def _deny_if_flags(nr: int, arg: int, mask: int, err: int) -> list[bytes]:
    body = [
        _ins(_LD_W_ABS, _OFF_ARGS + 8 * arg),
        _ins(_JSET_K, mask, 0, 1),
        _ins(_RET_K, _RET_ERRNO | err),
        _ins(_LD_W_ABS, _OFF_NR),
    ]
    return [_ins(_JEQ_K, nr, 0, len(body))] + body


def build_filter(*, allow_inet: bool, allow_exec: bool = False) -> bytes:
    """Build the BPF program.

    Args:
        allow_inet: allow AF_INET/AF_INET6 sockets (only sensible inside an empty network
            namespace); every other address family is always refused.
        allow_exec: allow execve/execveat (off by default).

    Returns:
        The packed `sock_filter` array.
    """
    t = _X86_64
    prog = [
        _ins(_LD_W_ABS, _OFF_ARCH),
        _ins(_JEQ_K, _AUDIT_ARCH_X86_64, 1, 0),
        _ins(_RET_K, _RET_KILL_PROCESS),
        _ins(_LD_W_ABS, _OFF_NR),
        _ins(_JGE_K, _X32_BIT, 0, 1),
        _ins(_RET_K, _RET_ERRNO | errno.EPERM),
    ]
    for name, nr in t.items():
        if name not in _ARG_CHECKED:
            prog += _deny(nr, errno.EPERM)
    if not allow_exec:
        prog += _deny(t["execve"], errno.EPERM) + _deny(t["execveat"], errno.EPERM)
    prog += _deny(t["clone3"], errno.ENOSYS)
    prog += _deny_if_flags(t["clone"], 0, _NS_FLAGS, errno.EPERM)
    prog += _deny_unless_arg_in(t["socket"], 0, [_AF_INET, _AF_INET6] if allow_inet else [], errno.EACCES)
    prog += _deny_if_arg_in(t["kill"], 0, [0xFFFFFFFF], errno.EPERM)
    prog += _deny_if_arg_in(t["ioctl"], 1, [_TIOCSTI, _TIOCLINUX], errno.EPERM)
    prog += _deny_if_arg_in(t["prctl"], 0, [_PR_SET_PDEATHSIG], errno.EPERM)
    # rlimits of the calling process only (pid 0, what setrlimit/getrlimit use): not the init's
    prog += _deny_unless_arg_in(t["prlimit64"], 0, [0], errno.EPERM)
    prog.append(_ins(_RET_K, _RET_ALLOW))
    return b"".join(prog)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(program: bytes) -> None:
    """Install `program` on the calling thread (no_new_privs must already be set).

    Raises:
        OSError: the kernel refused the filter.
    """
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    linux.prctl(22, 2, ctypes.addressof(fprog))  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
