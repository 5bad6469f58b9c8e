"""Kernels forked from a pre-imported parent: the default engine, and its fallback.

A fresh kernel spends ~2.5 CPU-s importing torch, torch._dynamo, matplotlib and
ipykernel before the first cell. Instead each grader process keeps one parent
(`grader.run.zygote`) that imported them once and forks a child per run, which becomes
the run's kernel (`grader.run.forked`): inside the run's bubblewrap sandbox, built as
today around a placeholder process, or plainly when unsandboxed. jupyter_client and
nbclient drive it as any kernel: `KernelProvisioner` below owns the child through a pidfd.

Where forking is impossible (not Linux, no pidfd, a parent that fails to start) or
switched off (`GRADER_KERNELS=fresh`), kernels start as fresh processes, and the grader
says so once on stderr.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

from jupyter_client.provisioning import LocalProvisioner

from grader.run.sandbox import SANDBOX_ENV, KernelSandbox, Unsandboxed
from grader.run.seccomp import seccomp_filter
from grader.run.zygote import receive, reply

ENGINE_SWITCH = "GRADER_KERNELS"  # "fresh": start every kernel as a fresh process
# Set in each forked kernel; the parent never initialises CUDA, so a kernel's GPU is its own.
PER_RUN_VARIABLES = ("HOME", "PWD", "MPLCONFIGDIR", "IPYTHONDIR", "JPY_PARENT_PID", "JPY_SESSION_NAME",
                     "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER")
WARM_UP_TIMEOUT = 180.0
FORK_TIMEOUT = 30.0
NAME_ROOM = " " * 1024  # an argument of the parent's, overwritten by each kernel's command line
PLACEHOLDER = ["/bin/sh", "-c", "echo ready; exec sleep infinity"]


class ParentUnavailable(Exception):
    """The kernel parent cannot be started here: kernels start as fresh processes."""


async def _readable(fd: int, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await asyncio.wait_for(ready, timeout)
    finally:
        loop.remove_reader(fd)


class ForkServer:
    """The grader's one kernel parent: started on first use, restarted when it died or the
    kernels' environment changed, stopped when the grader exits (and killed by the kernel
    if the grader is: it dies with its parent)."""

    def __init__(self):
        self.process: subprocess.Popen | None = None
        self.channel: socket.socket | None = None
        self.folder: str | None = None
        self.environment_key: tuple | None = None
        self.broken: str | None = None  # why the parent could not start: no second try
        self._lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    def lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock[0] is not loop:
            self._lock = (loop, asyncio.Lock())
        return self._lock[1]

    async def fork(self, request: dict, log_fd: int) -> tuple[int, int]:
        """Fork a kernel as `request` says; its host pid and a pidfd."""
        async with self.lock():
            await self._ensure_running(request["env"])
            try:
                reply(self.channel, request, [log_fd])
                await _readable(self.channel.fileno(), FORK_TIMEOUT)
                answer, fds = receive(self.channel)
            except BaseException:
                self.stop()  # a reply may still come: never read it as the next one's
                raise
        if answer is None:
            self.stop()
            raise RuntimeError("the kernel parent died while forking a kernel")
        if "error" in answer:
            raise RuntimeError(f"the kernel could not be forked: {answer['error']}")
        return answer["pid"], fds[0]

    async def _ensure_running(self, env: dict[str, str]) -> None:
        key = (sys.executable, tuple(sorted((k, v) for k, v in env.items() if k not in PER_RUN_VARIABLES)))
        if self.process is not None and self.process.poll() is None and key == self.environment_key:
            return
        self.stop()
        if self.broken:
            raise ParentUnavailable(self.broken)
        try:
            await self._start(env)
        except BaseException as exc:
            self.stop()
            if isinstance(exc, (OSError, RuntimeError, TimeoutError)):
                self.broken = str(exc) or type(exc).__name__
                raise ParentUnavailable(self.broken) from exc
            raise
        self.environment_key = key

    async def _start(self, env: dict[str, str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.channel = ours
        self.folder = tempfile.mkdtemp(prefix="grader-zygote-")
        own = {"HOME": self.folder, "MPLCONFIGDIR": os.path.join(self.folder, "matplotlib"),
               "IPYTHONDIR": os.path.join(self.folder, "ipython"), "GRADER_PID": str(os.getpid())}
        with theirs:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "grader.run.zygote", str(theirs.fileno()), NAME_ROOM], pass_fds=[theirs.fileno()],
                env={**env, **own}, cwd=self.folder, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE)
        try:
            await _readable(ours.fileno(), WARM_UP_TIMEOUT)
        except TimeoutError:
            raise RuntimeError(f"the kernel parent was not ready within {WARM_UP_TIMEOUT:.0f} s") from None
        answer, _ = receive(ours)
        if answer is None or "error" in answer:
            self.process.kill()
            why = answer["error"] if answer else self.process.communicate()[1].decode(errors="replace")[-500:]
            raise RuntimeError(f"the kernel parent failed to start: {why.strip()}")
        self.process.stderr.close()  # nothing more is read from it; never let it fill a pipe

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            if self.process.stderr:
                self.process.stderr.close()
            self.process = None
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


SERVER = ForkServer()
atexit.register(SERVER.stop)
_told: set[str] = set()


def _tell_once(why: str) -> None:
    if why not in _told:
        _told.add(why)
        print(f"note: kernels start as fresh processes, not forked from a pre-imported parent ({why})",
              file=sys.stderr, flush=True)


def fork_problem() -> str | None:
    """Why kernels cannot be forked here, or None."""
    if os.environ.get(ENGINE_SWITCH, "fork") == "fresh":
        return f"{ENGINE_SWITCH}=fresh"
    if sys.platform != "linux" or not hasattr(os, "pidfd_open") or not hasattr(os, "fork"):
        return "forking kernels needs Linux 5.3 or later"
    return None


class ForkedKernel:
    """A forked kernel, as much of `subprocess.Popen` as jupyter_client uses, over a pidfd.

    It is not the grader's child (the parent's, reaped there): its exit status is unknown."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int, pidfd: int, placeholder: asyncio.subprocess.Process | None):
        self.pid, self.pidfd, self.placeholder = pid, pidfd, placeholder
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self.pidfd], [], [], 0)[0]:
            self.returncode = -signal.SIGKILL
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            signal.pidfd_send_signal(self.pidfd, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    async def wait_and_release(self) -> None:
        """Wait for the kernel's end, then end its sandbox's placeholder and close the pidfd."""
        if self.poll() is None:
            await _readable(self.pidfd, float("inf"))
            self.poll()
        await _end_placeholder(self.placeholder)
        os.close(self.pidfd)


async def _end_placeholder(placeholder: asyncio.subprocess.Process | None) -> None:
    if placeholder is not None and placeholder.returncode is None:
        placeholder.kill()  # bwrap's pid 1 dies with it, and the pid namespace with that
        await placeholder.wait()


async def _start_placeholder(sandbox: KernelSandbox, connection_file: str,
                             env: dict[str, str]) -> tuple[asyncio.subprocess.Process, int]:
    """The run's sandbox holding a placeholder; the host pid of its pid 1, once it runs
    inside (joining before "ready" could still see the host's root)."""
    info_read, info_write = os.pipe()
    # "ready" comes through a pipe of our own, not asyncio's: asyncio waits for its pipes to
    # close before a process counts as ended, and a sandbox stopped while starting can leave
    # a process holding them until its cgroups are emptied (KernelSandbox.close).
    ready_read, ready_write = os.pipe()
    try:
        command = sandbox.command(PLACEHOLDER, connection_file, bwrap_options=["--info-fd", str(info_write)])
        placeholder = await asyncio.create_subprocess_exec(
            *command, stdin=subprocess.DEVNULL, stdout=ready_write, stderr=subprocess.DEVNULL,
            pass_fds=[info_write], env=env, start_new_session=True)  # a Ctrl-C is the grader's, not bwrap's
    finally:
        os.close(info_write)
        os.close(ready_write)
    try:
        await _readable(ready_read, FORK_TIMEOUT)
        if os.read(ready_read, 64) != b"ready\n":
            raise RuntimeError("the sandbox did not start (bubblewrap failed)")
        info = b""
        while info.count(b"{") != info.count(b"}") or not info:  # bwrap has written it before "ready"
            info += os.read(info_read, 4096)
        return placeholder, json.loads(info)["child-pid"]
    except BaseException:
        await _end_placeholder(placeholder)
        raise
    finally:
        os.close(info_read)
        os.close(ready_read)


async def fork_kernel(sandbox, argv: list[str], env: dict[str, str], cwd: str, log_fd: int) -> ForkedKernel:
    """A kernel forked from the parent, sandboxed when `sandbox` is a `KernelSandbox`."""
    request = {"argv": argv, "cwd": cwd, "launcher": importlib.util.find_spec("ipykernel_launcher").origin,
               "env": {**env, "JPY_PARENT_PID": "1"}, "sandbox": None}
    placeholder = None
    if isinstance(sandbox, KernelSandbox):
        placeholder, pid = await _start_placeholder(sandbox, argv[argv.index("-f") + 1], env)
        request["env"].update(SANDBOX_ENV, PWD=cwd)  # as the sandbox's `sh` sets it
        program = seccomp_filter()
        request["sandbox"] = {"pid": pid, "uid": sandbox.uid, "gid": sandbox.gid,
                              "cpu_seconds": int(sandbox.settings.cpu_time_limit),
                              "cgroup_procs": [str(folder / "cgroup.procs") for folder in sandbox.cgroups],
                              "seccomp": program.hex() if program is not None else None}
    try:
        pid, pidfd = await SERVER.fork(request, log_fd)
    except BaseException:
        await _end_placeholder(placeholder)
        raise
    return ForkedKernel(pid, pidfd, placeholder)


class KernelProvisioner(LocalProvisioner):
    """jupyter_client's local provisioner, forking the kernel where it can."""

    async def launch_kernel(self, cmd: list[str], **kwargs):
        km = self.parent
        problem = fork_problem()
        if problem is None and not isinstance(km.sandbox, (KernelSandbox, Unsandboxed)):
            # A sandbox without root lives in a user namespace the parent cannot join.
            problem = "the sandbox runs without root, in a user namespace"
        if problem is None:
            try:
                self.process = await fork_kernel(km.sandbox, km.kernel_argv(), kwargs["env"], kwargs["cwd"],
                                                 kwargs["stdout"].fileno())
            except ParentUnavailable as exc:
                problem = f"the parent could not start: {exc}"
        if problem is not None:
            _tell_once(problem)
            return await super().launch_kernel(cmd, **kwargs)
        self.pid = self.pgid = self.process.pid  # the child made itself a session leader
        self.cwd = kwargs["cwd"]
        return self.connection_info

    async def wait(self):
        if isinstance(self.process, ForkedKernel):
            await self.process.wait_and_release()
            self.process = None
            return None
        return await super().wait()
