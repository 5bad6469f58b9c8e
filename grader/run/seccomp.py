"""A seccomp filter for kernels: system calls a notebook never needs are refused.

Given to bubblewrap (`--seccomp FD`) as a classic BPF program, assembled here by hand (no
libseccomp binding needed). Refused with EPERM: new namespaces (`unshare`, `setns`, and
`clone` with any CLONE_NEW* flag, user namespaces included), tracing and reading other
processes (`ptrace`, `process_vm_*`, `kcmp`, `pidfd_getfd`), the kernel keyring (`keyctl`,
`add_key`, `request_key`), mounting, BPF, perf events, userfaultfd, io_uring, kernel
modules, kexec, clocks, swap, reboot and file handles. `clone3` answers ENOSYS, so the C
library falls back to `clone`, whose flags the filter can read.

Built for x86-64 and aarch64 (the table is chosen by `platform.machine()`); elsewhere
`seccomp_filter` returns None. A system call of any other architecture or ABI kills the
process (i386 through `int 0x80` on x86-64, AArch32 on aarch64), and x86-64's x32 calls
(numbers with bit 30 set) are refused.
"""

from __future__ import annotations

import errno
import platform
import struct
from dataclasses import dataclass

CLONE_NEW_FLAGS = 0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET


@dataclass(frozen=True)
class Architecture:
    audit: int  # AUDIT_ARCH_*: what seccomp_data.arch holds for this architecture's native calls
    refused: dict[str, int]  # system call numbers, by name
    clone: int
    clone3: int
    refused_from: int | None = None  # every number from this one on is refused (x86-64: the x32 ABI)


# Both tables name the same calls (a test checks it): arch/x86/entry/syscalls/syscall_64.tbl and
# include/uapi/asm-generic/unistd.h, which aarch64 uses.
X86_64 = Architecture(0xC000003E, {
    "ptrace": 101, "syslog": 103, "vhangup": 153, "pivot_root": 155, "adjtimex": 159,
    "chroot": 161, "acct": 163, "settimeofday": 164, "mount": 165, "umount2": 166, "swapon": 167,
    "swapoff": 168, "reboot": 169, "init_module": 175, "delete_module": 176, "quotactl": 179,
    "lookup_dcookie": 212, "clock_settime": 227, "kexec_load": 246, "add_key": 248, "request_key": 249,
    "keyctl": 250, "unshare": 272, "perf_event_open": 298, "name_to_handle_at": 303, "open_by_handle_at": 304,
    "clock_adjtime": 305, "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312,
    "finit_module": 313, "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "pidfd_getfd": 438, "mount_setattr": 442,
}, clone=56, clone3=435, refused_from=0x40000000)
AARCH64 = Architecture(0xC00000B7, {
    "ptrace": 117, "syslog": 116, "vhangup": 58, "pivot_root": 41, "adjtimex": 171,
    "chroot": 51, "acct": 89, "settimeofday": 170, "mount": 40, "umount2": 39, "swapon": 224,
    "swapoff": 225, "reboot": 142, "init_module": 105, "delete_module": 106, "quotactl": 60,
    "lookup_dcookie": 18, "clock_settime": 112, "kexec_load": 104, "add_key": 217, "request_key": 218,
    "keyctl": 219, "unshare": 97, "perf_event_open": 241, "name_to_handle_at": 264, "open_by_handle_at": 265,
    "clock_adjtime": 266, "setns": 268, "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272,
    "finit_module": 273, "kexec_file_load": 294, "bpf": 280, "userfaultfd": 282, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "pidfd_getfd": 438, "mount_setattr": 442,
}, clone=220, clone3=435)
ARCHITECTURES = {"x86_64": X86_64, "aarch64": AARCH64, "arm64": AARCH64}  # by platform.machine()

LOAD_WORD = 0x20  # BPF_LD | BPF_W | BPF_ABS
JUMP_EQUAL, JUMP_AT_LEAST, JUMP_ANY_BIT = 0x15, 0x35, 0x45  # BPF_JMP | BPF_JEQ / BPF_JGE / BPF_JSET, BPF_K
RETURN = 0x06  # BPF_RET | BPF_K
ALLOW, KILL_PROCESS, ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
NR_OFFSET, ARCH_OFFSET, FIRST_ARGUMENT_OFFSET = 0, 4, 16  # in struct seccomp_data (little-endian low word)


def _op(code: int, k: int = 0, jump_true: int = 0, jump_false: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jump_true, jump_false, k)


def _refuse(code: int) -> bytes:
    return _op(RETURN, ERRNO | code)


def seccomp_filter(machine: str | None = None) -> bytes | None:
    """The filter for `machine` (this one's by default) as `struct sock_filter[]` bytes, or
    None on an architecture it is not built for."""
    arch = ARCHITECTURES.get(machine or platform.machine())
    if arch is None:
        return None
    program = [
        _op(LOAD_WORD, ARCH_OFFSET),
        _op(JUMP_EQUAL, arch.audit, 1, 0),
        _op(RETURN, KILL_PROCESS),
        _op(LOAD_WORD, NR_OFFSET),
    ]
    if arch.refused_from is not None:
        program += [_op(JUMP_AT_LEAST, arch.refused_from, 0, 1), _refuse(errno.EPERM)]
    for number in sorted(arch.refused.values()):
        program += [_op(JUMP_EQUAL, number, 0, 1), _refuse(errno.EPERM)]
    program += [
        _op(JUMP_EQUAL, arch.clone3, 0, 1), _refuse(errno.ENOSYS),
        _op(JUMP_EQUAL, arch.clone, 0, 3),
        _op(LOAD_WORD, FIRST_ARGUMENT_OFFSET),
        _op(JUMP_ANY_BIT, CLONE_NEW_FLAGS, 0, 1),
        _refuse(errno.EPERM),
        _op(RETURN, ALLOW),
    ]
    return b"".join(program)
