"""The pre-imported parent of forked kernels ("zygote"): `python -m grader.run.zygote FD`.

It imports what every kernel imports (ipykernel, torch with torch.optim and torch._dynamo,
numpy, pandas, matplotlib), freezes the heap, and then only forks: one child per request
read from the socket FD, answered with the child's pidfd. It never runs student code,
starts no thread and no zmq context (a child of a multi-threaded parent can hang on its
first parallel op), and receives nothing but run folders, environments and sandbox
handles, so a child holds nothing of any other student. Requests are JSON (see
`grader.run.forkserver.ForkServer.start_kernel`); what a child does is in
`grader.run.forked`.
"""

from __future__ import annotations

import array
import gc
import json
import os
import signal
import socket
import sys
from pathlib import Path

from grader.run import forked

CLONE_NEWPID = 0x20000000
MAX_MESSAGE = 1 << 20
# Everything a kernel imports before the first cell (IPKernelApp.initialize included:
# each module left out costs every kernel its import, ~15 ms for these).
PRELOADED = ("ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell", "ipykernel.comm",
             "ipykernel.debugger", "IPython.core.completer", "IPython.core.completerlib",
             "IPython.core.debugger", "IPython.core.oinspect", "IPython.extensions.storemagic",
             "IPython.utils.wildcard", "faulthandler", "pdb", "tornado.platform.asyncio",
             "IPython.core.logger", "zmq.utils.garbage", "torch", "torch.optim",
             "torch._subclasses.schema_check_mode", "torch.profiler._cupti_monitor", "numpy", "pandas",
             "matplotlib", "matplotlib.pyplot", "matplotlib.backends.backend_agg", "PIL.features")


def warm_up() -> dict[str, str]:
    """Import everything a kernel imports, build one optimizer of each common kind (the
    first one imports torch._dynamo, ~1 s) and train each lecture model one step; the
    environment variables imports set."""
    import importlib

    before = dict(os.environ)
    for name in PRELOADED:
        importlib.import_module(name)
    import torch

    parameter = torch.nn.Parameter(torch.zeros(1))
    torch.optim.SGD([parameter], lr=0.1)
    torch.optim.Adam([parameter])
    del parameter
    _train_lecture_models(torch)
    gc.collect()
    gc.freeze()  # children then leave the imported objects' pages shared
    return {name: value for name, value in os.environ.items() if before.get(name) != value}


def _train_lecture_models(torch) -> None:
    """One training step of each kind of model the lectures build, so that the first use of
    each operation (dispatch and autograd set-up) is paid here once, not in every kernel.
    Its random draws do not matter: every kernel reseeds as a fresh process would. With a
    CUDA (or ROCm) build only the forward pass: autograd's first backward there counts the
    GPUs, which starts the driver and a thread per device, and the parent must stay
    single-threaded and never touch CUDA."""
    backward = not (torch.version.cuda or getattr(torch.version, "hip", None))
    nn = torch.nn
    text = nn.functional.one_hot(torch.tensor([0, 1, 0, 2, 0, 3]), 4).float()
    embedding, rnn, linear = nn.Embedding(4, 2), nn.RNN(4, 2), nn.Linear(2, 4)
    models = [nn.Sequential(embedding, nn.Tanh(), nn.Linear(2, 4)), rnn, linear]
    for optimizer in (torch.optim.SGD, torch.optim.Adam):
        parameters = [p for model in models for p in model.parameters()]
        step = optimizer(parameters, lr=0.1)
        hidden, _ = rnn(text)
        logits = linear(hidden) + models[0](text.argmax(dim=1))
        loss = nn.CrossEntropyLoss()(logits, text) + nn.MSELoss()(logits.softmax(dim=1), text) \
            + nn.BCELoss()(torch.sigmoid(logits), text) + (logits @ logits.T).mean()
        if backward:
            loss.backward()
            step.step()
            step.zero_grad()
        loss.item()
        with torch.no_grad():
            logits.tolist()


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _open_fds() -> set[int]:
    listed = [int(name) for name in os.listdir("/proc/self/fd")]
    return {fd for fd in listed if _is_open(fd)}  # not the listing's own, closed by now


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def receive(channel: socket.socket) -> tuple[dict | None, list[int]]:
    """One request and the descriptors sent with it; (None, []) when the grader is gone."""
    fds = array.array("i")
    message, ancillary, _, _ = channel.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(16 * fds.itemsize))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    return (json.loads(message) if message else None), list(fds)


def reply(channel: socket.socket, answer: dict, fds: list[int] = ()) -> None:
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    channel.sendmsg([json.dumps(answer).encode()], ancillary)


class Zygote:
    """The fork loop, with the descriptors every child must close."""

    def __init__(self, channel: socket.socket, set_by_imports: dict[str, str]):
        self.channel = channel
        self.set_by_imports = set_by_imports
        self.pid = os.getpid()
        self.own_pid_namespace = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        self.last_capability = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
        self.expected_fds = {0, 1, 2, channel.fileno(), self.own_pid_namespace}

    def check_forkable(self, received: list[int] = ()) -> None:
        """Refuse to fork a state children would inherit wrongly: threads or stray files."""
        if _threads() != 1:
            raise RuntimeError(f"the kernel parent runs {_threads()} threads; forked kernels could hang")
        stray = _open_fds() - self.expected_fds - set(received)
        if stray:
            targets = sorted(os.readlink(f"/proc/self/fd/{fd}") for fd in stray if os.path.exists(f"/proc/self/fd/{fd}"))
            raise RuntimeError(f"the kernel parent holds open files a kernel would inherit: {targets}")

    def serve(self) -> None:
        while True:
            request, fds = receive(self.channel)
            if request is None:
                return
            try:
                pid, pidfd = self.fork(request, fds)
            except Exception as exc:  # the grader reports it as a kernel that could not start
                reply(self.channel, {"error": f"{type(exc).__name__}: {exc}"})
                continue
            finally:
                for fd in fds:
                    os.close(fd)
            reply(self.channel, {"pid": pid}, [pidfd])
            os.close(pidfd)

    def fork(self, request: dict, fds: list[int]) -> tuple[int, int]:
        """Fork one kernel; in a sandbox's pid namespace when the request names one."""
        self.check_forkable(fds)
        target = forked.SandboxHandles.open(request["sandbox"]["pid"]) if request.get("sandbox") else None
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            if target:
                forked.setns(target.namespaces["pid"], CLONE_NEWPID)  # for children only
            pid = os.fork()
            if pid == 0:
                code = 70
                try:
                    channel_fd = self.channel.detach()  # closed by the child, never by a stray __del__
                    forked.become_kernel(request, fds[0], target, self.last_capability, self.set_by_imports, parent=self.pid,
                                         close=[self.own_pid_namespace, channel_fd])
                    code = 0
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else 1
                except BaseException as exc:  # noqa: BLE001 (a child must never return into the loop)
                    os.write(2, f"grader: the forked kernel failed to start: {type(exc).__name__}: {exc}\n".encode())
                finally:
                    os._exit(code)
        finally:
            if target:
                forked.setns(self.own_pid_namespace, CLONE_NEWPID)
                target.close()
        try:
            return pid, os.pidfd_open(pid)
        except ProcessLookupError:
            raise RuntimeError("the kernel exited as soon as it was forked") from None


def main() -> None:
    channel = socket.socket(fileno=int(sys.argv[1]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the grader's to handle; it stops us
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel; pidfds say when
    forked.die_with_parent(int(os.environ.pop("GRADER_PID")))
    try:
        zygote = Zygote(channel, warm_up())
        zygote.check_forkable()
    except Exception as exc:  # reported to the grader, which then starts kernels as fresh processes
        reply(channel, {"error": f"{type(exc).__name__}: {exc}"})
        return
    reply(channel, {"ready": True})
    zygote.serve()


if __name__ == "__main__":
    main()
