"""What a child of the kernel parent (`grader.run.zygote`) does to become a run's kernel.

Sandboxed, it ends where a fresh kernel started by `KernelSandbox.command` ends: in the
run's cgroups and in the namespaces of a bubblewrap sandbox already built around a
placeholder process, with its rlimits, uid `nobody`, no capabilities, no inherited file
descriptors. Then it makes the interpreter look freshly started (environment, argv, RNG
seeds, memoised folders) and starts IPKernelApp on the run's connection file.
"""

from __future__ import annotations

import ctypes
import os
import resource
import select
import signal
import sys
from pathlib import Path

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x00020000, 0x02000000, 0x04000000
CLONE_NEWIPC, CLONE_NEWNET = 0x08000000, 0x40000000
JOINED_NAMESPACES = (("cgroup", CLONE_NEWCGROUP), ("ipc", CLONE_NEWIPC), ("uts", CLONE_NEWUTS),
                     ("net", CLONE_NEWNET), ("mnt", CLONE_NEWNS))  # mnt last: it changes what /proc shows
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 1, 24, 38, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
CAPABILITY_VERSION_3 = 0x20080522
CAPABILITY_LINES = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def setns(fd: int, kind: int) -> None:
    _check(_libc.setns(fd, kind), "setns")


def prctl(option: int, *args: int) -> None:
    values = [ctypes.c_ulong(a) for a in (*args, 0, 0, 0, 0)[:4]]
    _check(_libc.prctl(option, *values), f"prctl({option})")


def die_with_parent(parent: int) -> None:
    """SIGKILL when the parent dies (and now, if it already did)."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


class SandboxHandles:
    """Descriptors of a sandbox's namespaces and root, opened through its pid 1 (host pid)."""

    def __init__(self, pidfd: int, namespaces: dict[str, int], root: int):
        self.pidfd, self.namespaces, self.root = pidfd, namespaces, root

    @classmethod
    def open(cls, pid: int) -> "SandboxHandles":
        pidfd = os.pidfd_open(pid)
        flags = os.O_RDONLY | os.O_CLOEXEC
        names = ["pid", *(name for name, _ in JOINED_NAMESPACES)]
        handles = cls(pidfd, {name: os.open(f"/proc/{pid}/ns/{name}", flags) for name in names},
                      os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
        # Opened through a live pidfd: the descriptors are that process's, not a reused pid's.
        if select.select([pidfd], [], [], 0)[0]:
            handles.close()
            raise RuntimeError(f"the sandbox's process {pid} ended before its kernel was forked")
        if os.fstat(handles.namespaces["pid"]).st_ino == os.stat("/proc/self/ns/pid").st_ino:
            handles.close()
            raise RuntimeError(f"process {pid} is not in a pid namespace of its own")
        return handles

    def fds(self) -> list[int]:
        return [self.pidfd, self.root, *self.namespaces.values()]

    def close(self) -> None:
        for fd in self.fds():
            os.close(fd)


def enter_sandbox(handles: SandboxHandles, cgroup_procs: list[str]) -> None:
    """Join the run's cgroups, then the sandbox's namespaces, and check the root is its."""
    for procs in cgroup_procs:
        Path(procs).write_text("0")  # "0": this process
    for name, kind in JOINED_NAMESPACES:
        setns(handles.namespaces[name], kind)
    here, there = os.stat("/"), os.fstat(handles.root)
    if (here.st_dev, here.st_ino) != (there.st_dev, there.st_ino):
        raise RuntimeError("the forked kernel did not land in the sandbox's root")


def _redirect_stdio(log_fd: int) -> None:
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(null)


def _close_inherited(fds: list[int]) -> None:
    """Close every descriptor but stdio: the parent's socket, the sandbox handles, the rest."""
    for fd in fds:
        os.close(fd)
    for name in os.listdir("/proc/self/fd"):
        if int(name) > 2:
            try:
                os.close(int(name))
            except OSError:
                pass  # the listing's own descriptor


def name_process(argv: list[str]) -> None:
    """Make /proc/PID/cmdline (what `ps` shows) the fresh kernel's command line, not the
    parent's, by overwriting the parent's argument area (it leaves room for this)."""
    fields = Path("/proc/self/stat").read_text().rpartition(")")[2].split()
    start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end
    text = b"\0".join(a.encode() for a in argv) + b"\0"
    if len(text) <= end - start:
        with open("/proc/self/mem", "r+b", buffering=0) as memory:
            memory.seek(start)
            memory.write(text.ljust(end - start, b"\0"))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_privileges(uid: int, gid: int, last_capability: int) -> None:
    """What `setpriv --reuid --regid --clear-groups --no-new-privs --inh-caps=-all
    --bounding-set=-all` does, then a check that nothing is left."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    for capability in range(last_capability + 1):
        prctl(PR_CAPBSET_DROP, capability)
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    os.setresuid(uid, uid, uid)  # clears the permitted and effective sets
    _check(_libc.capset(ctypes.byref(_CapHeader(CAPABILITY_VERSION_3, 0)), (_CapData * 2)()), "capset")
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    left = [name for name in CAPABILITY_LINES if int(status[name], 16)]
    if left or status["Uid"].split() != [str(uid)] * 4 or status["NoNewPrivs"].strip() != "1":
        raise RuntimeError(f"privileges were not dropped ({', '.join(left) or 'uid or no_new_privs'})")


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def install_seccomp_filter(program: bytes) -> None:
    """The sandbox's seccomp filter (`grader.run.seccomp`), as bwrap --seccomp installs it in
    a fresh kernel; after no_new_privs, and after the setns calls the filter refuses."""
    fprog = _SockFprog(len(program) // 8, program)
    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog))


def look_freshly_started(env: dict[str, str], set_by_imports: dict[str, str], argv: list[str]) -> None:
    """Make what the parent's start and imports left look as a fresh kernel's would."""
    import tempfile

    tempfile.tempdir = None
    os.environ.clear()
    os.environ.update({**env, **set_by_imports})  # the kernel's, then what imports set in any kernel
    if "TORCHINDUCTOR_CACHE_DIR" in set_by_imports:  # named after the user: made again as `nobody`
        from torch._inductor.runtime import cache_dir_utils

        del os.environ["TORCHINDUCTOR_CACHE_DIR"]
        cache_dir_utils.cache_dir()
    sys.argv = list(argv)
    del sys.path[0]  # the parent's `-m` entry, which ipykernel_launcher removes from its own
    for name in [m for m in sys.modules if m == "grader" or m.startswith("grader.")]:
        del sys.modules[name]
    import matplotlib
    import numpy
    import torch

    torch.seed()  # a fresh process seeds torch and numpy from OS entropy; CPython reseeds `random`
    numpy.random.seed()
    for memoised in (matplotlib.get_configdir, matplotlib.get_cachedir):  # they read MPLCONFIGDIR once
        cells = dict(zip(memoised.__code__.co_freevars, memoised.__closure__))
        cells["called"].cell_contents = False


def become_kernel(request: dict, log_fd: int, handles: SandboxHandles | None, last_capability: int,
                  set_by_imports: dict[str, str], parent: int, close: list[int]) -> None:
    """Turn this freshly forked child into the run's kernel; returns when the kernel exits."""
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sandbox = request.get("sandbox")
    if sandbox:
        enter_sandbox(handles, sandbox["cgroup_procs"])
    os.chdir(request["cwd"])
    _redirect_stdio(log_fd)
    _close_inherited([log_fd, *close, *(handles.fds() if handles else ())])
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if sandbox:
        resource.setrlimit(resource.RLIMIT_CPU, (sandbox["cpu_seconds"], sandbox["cpu_seconds"]))
    name_process(request["argv"])
    if sandbox:
        drop_privileges(sandbox["uid"], sandbox["gid"], last_capability)
        if sandbox.get("seccomp"):
            install_seccomp_filter(bytes.fromhex(sandbox["seccomp"]))
    else:
        die_with_parent(parent)  # sandboxed kernels die with their sandbox instead
    launcher_argv = request["argv"][2:]  # [python, -m, ipykernel_launcher, ...] as ipykernel_launcher sees it
    launcher_argv[0] = request["launcher"]
    look_freshly_started(request["env"], set_by_imports, launcher_argv)
    from ipykernel.kernelapp import IPKernelApp

    IPKernelApp.launch_instance(argv=launcher_argv[1:])
