"""The seccomp filters of both architectures, run by a small BPF interpreter on made-up
system calls (the real filter is tried on x86-64 by tests/test_fork.py and the
adversarial forbidden_syscalls notebook)."""

import errno
import platform
import struct

import pytest

from grader.run import seccomp
from grader.run.seccomp import AARCH64, ALLOW, ERRNO, KILL_PROCESS, X86_64, seccomp_filter

AUDIT_ARCH_I386, AUDIT_ARCH_ARM = 0x40000003, 0x40000028
CLONE_THREAD_FLAGS = 0x3D0F00  # what pthread_create passes: VM, FS, FILES, SIGHAND, THREAD, SYSVSEM, SETTLS, ...
CLONE_NEWUSER = 0x10000000


def run_filter(program: bytes, nr: int, arch: int, first_argument: int = 0) -> int:
    """What the kernel would do with the call: the BPF program run on its seccomp_data."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, first_argument, 0, 0, 0, 0, 0)
    ops = [struct.unpack("=HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
    assert len(ops) <= 4096, "the kernel refuses longer programs"
    pc, accumulator = 0, 0
    while True:
        code, jump_true, jump_false, k = ops[pc]
        if code == seccomp.LOAD_WORD:
            accumulator = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif code == seccomp.RETURN:
            return k
        else:
            taken = {seccomp.JUMP_EQUAL: accumulator == k, seccomp.JUMP_AT_LEAST: accumulator >= k,
                     seccomp.JUMP_ANY_BIT: bool(accumulator & k)}[code]
            pc += 1 + (jump_true if taken else jump_false)
        assert pc < len(ops), "a jump past the end of the program"


# Calls any notebook makes, by architecture: (name, number, first argument).
EVERYDAY = {
    "x86_64": [("read", 0, 0), ("write", 1, 0), ("mmap", 9, 0), ("openat", 257, 0), ("futex", 202, 0),
               ("clone", 56, CLONE_THREAD_FLAGS), ("execve", 59, 0)],
    # 56 is openat here, clone on x86-64: its first argument is a path, not flags
    "aarch64": [("read", 63, 0), ("write", 64, 0), ("mmap", 222, 0), ("openat", 56, CLONE_NEWUSER),
                ("futex", 98, 0), ("clone", 220, CLONE_THREAD_FLAGS), ("execve", 221, 0)],
}
TABLES = {"x86_64": X86_64, "aarch64": AARCH64}


def test_both_architectures_refuse_the_same_calls():
    assert set(X86_64.refused) == set(AARCH64.refused)


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_everyday_calls_are_allowed(machine):
    program = seccomp_filter(machine)
    for name, number, argument in EVERYDAY[machine]:
        assert run_filter(program, number, TABLES[machine].audit, argument) == ALLOW, name


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_refused_calls_answer_eperm_and_clone3_enosys(machine):
    arch = TABLES[machine]
    program = seccomp_filter(machine)
    for name, number in arch.refused.items():
        assert run_filter(program, number, arch.audit) == ERRNO | errno.EPERM, name
    assert run_filter(program, arch.clone, arch.audit, CLONE_THREAD_FLAGS | CLONE_NEWUSER) == ERRNO | errno.EPERM
    assert run_filter(program, arch.clone3, arch.audit) == ERRNO | errno.ENOSYS


@pytest.mark.parametrize("machine, foreign", [("x86_64", AUDIT_ARCH_I386), ("x86_64", AARCH64.audit),
                                              ("aarch64", AUDIT_ARCH_ARM), ("aarch64", X86_64.audit)])
def test_calls_of_another_architecture_kill_the_process(machine, foreign):
    program = seccomp_filter(machine)
    for _, number, argument in EVERYDAY[machine]:
        assert run_filter(program, number, foreign, argument) == KILL_PROCESS


def test_x32_calls_are_refused_on_x86_64():
    program = seccomp_filter("x86_64")
    for _, number, _ in EVERYDAY["x86_64"]:
        assert run_filter(program, 0x40000000 | number, X86_64.audit) == ERRNO | errno.EPERM


def test_the_table_follows_the_machine(monkeypatch):
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert seccomp_filter() == seccomp_filter("aarch64") != seccomp_filter("x86_64")
    monkeypatch.setattr(platform, "machine", lambda: "riscv64")
    assert seccomp_filter() is None
