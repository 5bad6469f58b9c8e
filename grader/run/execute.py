"""Running one notebook in a fresh Jupyter kernel, bounded in time and output.

The engine knows nothing about checks or references: it runs the grader's preamble, the
notebook's cells and the capture code, and reports what happened as data.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty

import numpy as np
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode

from grader.check.captured import Captured, load_captured
from grader.config import ExecutionSettings
from grader.errors import CaptureError
from grader.fsutil import remove_tree
from grader.run.channels import CUT_MARK, REFUSED_MESSAGE_BYTES, MessageRefused, kernel_context
from grader.run.forkserver import KernelProvisioner
from grader.run.gpu import device_environment
from grader.run.kernel import kernel_code
from grader.run.notebook import first_line
from grader.run.sandbox import KernelSandbox, Unsandboxed, make_run_dir, open_sandbox
from grader.said import Said, say

TRACEBACK_CHARS = 4000
SUBMISSION_COPY = "submission.ipynb"
EVALUE_CHARS = 500
LOG_TAIL_CHARS = 500
CAPPED_CLIENT = "grader.run.channels.CappedKernelClient"


@dataclass(frozen=True)
class RunOptions:
    """What the caller decides about a run, beyond the assignment's own settings."""

    capture: tuple[str, ...]
    device: str = "cpu"
    public_dir: Path | None = None
    cache_dir: Path | None = None
    grader_code_timeout: float = 60.0
    sandbox: bool = True
    seed_map: dict[str, int] = field(default_factory=dict)  # a hidden variant's seeds, public -> hidden
    # A replay: training starts from these values (the first optimizer's parameters, in order).
    initial_parameters: tuple[np.ndarray, ...] | None = None


@dataclass
class CellProblem:
    """A cell that raised, timed out, or took the kernel down with it."""

    cell_index: int
    kind: str  # "error", "timeout" or "dead-kernel"
    ename: str
    evalue: str
    traceback: str
    first_line: str

    def describe(self) -> Said:
        where = f"cell {self.cell_index + 1} (`{self.first_line}`)"
        where_ko = f"{self.cell_index + 1}번째 셀(`{self.first_line}`)"
        if self.kind == "timeout":
            return say(f"{where} did not finish in time and was interrupted",
                       f"{where_ko}이 제한 시간 안에 끝나지 않아 중단되었습니다")
        if self.kind == "dead-kernel":
            return say(f"the kernel died while running {where} (a crash, os._exit, or running out of memory or "
                       "CPU time)",
                       f"{where_ko}을 실행하는 중에 커널이 죽었습니다 (충돌, os._exit, 메모리나 CPU 시간 부족)")
        error = f"`{self.ename}: {self.evalue}`"
        return say(f"{where} raised {error}", f"{where_ko}에서 오류가 났습니다: {error}")


@dataclass
class ExecutionResult:
    """Everything a run produced, as data."""

    status: str  # "ok", "error", "timeout", or "grader-error" when the kernel could not be prepared
    problems: list[CellProblem] = field(default_factory=list)
    captured: Captured | None = None
    capture_error: str = ""
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    notebook: NotebookNode | None = None


class GraderKernelManager(AsyncKernelManager):
    """A kernel manager whose command line the grader decides, not a kernelspec on disk;
    its kernels are forked from a pre-imported parent where possible (grader/run/forkserver.py)."""

    sandbox: KernelSandbox | Unsandboxed  # set before the kernel starts
    # Interrupts go as messages: a SIGINT would reach the sandbox's bwrap and end it.
    spec = KernelSpec(display_name="grader", language="python", interrupt_mode="message")

    @property
    def kernel_spec(self) -> KernelSpec:
        return self.spec

    def _context_default(self):
        self._created_context = True
        return kernel_context()  # its control socket refuses oversized messages too

    def kernel_argv(self) -> list[str]:
        """The kernel's own command line, as a fresh process runs it (and a forked one shows it)."""
        return [sys.executable, "-m", "ipykernel_launcher", "-f", self.connection_file,
                "--HistoryManager.enabled=False"]

    def format_kernel_cmd(self, extra_arguments=None):
        return self.sandbox.command([*self.kernel_argv(), *(extra_arguments or [])], self.connection_file)

    async def _async_pre_start_kernel(self, **kw):
        if self.provisioner is None:
            self.kernel_id = self.kernel_id or str(uuid.uuid4())
            self.provisioner = KernelProvisioner(kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self)
        return await super()._async_pre_start_kernel(**kw)


class BoundedClient(NotebookClient):
    """nbclient's client, keeping at most `max_output_chars` of output per cell, no widget
    state, and each cell's execute reply: a cell's status is what the kernel says it
    executed, not what it displayed (an Output widget can swallow a displayed error)."""

    def __init__(self, *args, max_output_chars: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_output_chars = max_output_chars
        self.output_chars: dict[int, int] = {}
        self.replies: dict[int, dict] = {}  # execute reply content by cell index
        self.cut_notes: list[str] = []  # what was dropped, said once per cell and kind
        self.output_readers: set[asyncio.Task] = set()

    async def _async_poll_output_msg(self, parent_msg_id, cell, cell_index):
        """nbclient's reader of a cell's output messages. When the cell times out nbclient
        leaves it running: it would drop the next cells' messages and, once the channels
        close, fail with an `Empty` nobody retrieves (asyncio prints that on the terminal).
        Kept so that `stop_reading_outputs` can end it."""
        task = asyncio.current_task()
        self.output_readers.add(task)
        try:
            return await super()._async_poll_output_msg(parent_msg_id, cell, cell_index)
        except MessageRefused:  # what followed it is lost, the cell's idle status too: stop waiting
            limit = f"{REFUSED_MESSAGE_BYTES // 2**20} MB"
            self._note_cut(cell_index, say(f"a message over {limit} (output or widget) was refused; the rest of "
                                           "this cell's output is lost",
                                           f"{limit}가 넘는 메시지(출력이나 위젯)는 받지 않았습니다. 이 셀의 나머지 "
                                           "출력은 사라졌습니다"))
        finally:
            self.output_readers.discard(task)

    def stop_reading_outputs(self) -> None:
        for task in self.output_readers:
            task.cancel()

    def output(self, outs, msg, display_id, cell_index):
        cut = msg.get("metadata", {}).get(CUT_MARK)
        if cut:
            self._note_cut(cell_index, say(f"{cut['type']} messages over {cut['limit']:,} bytes were dropped",
                                           f"{cut['limit']:,}바이트가 넘는 {cut['type']} 메시지를 버렸습니다"))
        if msg["msg_type"] == "error":
            _cut_error(msg["content"])
        used = self.output_chars.get(cell_index, 0)
        if used > self.max_output_chars:
            return None
        size = len(json.dumps(msg["content"].get("data") or msg["content"].get("text", "")))
        self.output_chars[cell_index] = used + size
        if used + size > self.max_output_chars:
            notice = f"[output cut: this cell printed more than {self.max_output_chars:,} characters]\n"
            outs.append(NotebookNode(output_type="stream", name="stderr", text=notice))
            self._note_cut(cell_index, say(f"output beyond {self.max_output_chars:,} characters was cut",
                                           f"{self.max_output_chars:,}자를 넘는 출력은 잘랐습니다"))
            return None
        return super().output(outs, msg, display_id, cell_index)

    def handle_comm_msg(self, outs, msg, cell_index):
        """Widget messages are not kept: nothing of a widget is graded, its state can be
        any size, and an Output widget would redirect the cell's outputs into itself."""

    async def _check_raise_for_error(self, cell, cell_index, exec_reply):
        if exec_reply is not None:
            self.replies[cell_index] = _cut_error(exec_reply["content"])
        return await super()._check_raise_for_error(cell, cell_index, exec_reply)

    def _note_cut(self, cell_index: int, what: Said) -> None:
        note = say(f"cell {cell_index + 1}: {what}", f"{cell_index + 1}번째 셀: {what.ko}")
        if note not in self.cut_notes:
            self.cut_notes.append(note)


def _cut_error(content: dict) -> dict:
    """An error's name, message and traceback cut to size, in place."""
    content["ename"] = str(content.get("ename", ""))[:EVALUE_CHARS]
    content["evalue"] = str(content.get("evalue", ""))[:EVALUE_CHARS]
    content["traceback"] = [_shorten_traceback(list(map(str, content.get("traceback") or [])), TRACEBACK_CHARS)]
    return content


def kernel_environment(run_dir: Path, workdir: Path, device: str, cache_dir: Path | None) -> dict[str, str]:
    """A small, explicit environment: nothing of the TA's own variables leaks in."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str((cache_dir / "matplotlib") if cache_dir else run_dir / "matplotlib"),
        "IPYTHONDIR": str(run_dir / "ipython"),
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONWARNINGS": "ignore::UserWarning:matplotlib",
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
    }
    return env | device_environment(device)


def mentions_cuda(nb: NotebookNode) -> bool:
    return any(c.cell_type == "code" and "cuda" in c.source for c in nb.cells)


class KernelCodeError(Exception):
    """The grader's own code failed inside the kernel (often because student code broke it)."""


async def run_grader_code(client: NotebookClient, code: str, timeout: float) -> None:
    """Run plumbing code silently: no history, no output, no pre/post-run-cell hooks."""
    msg_id = client.kc.execute(code, silent=True, store_history=False, allow_stdin=False, stop_on_error=False)
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise KernelCodeError(f"no reply within {timeout:.0f} s")
        try:
            reply = await client.kc.get_shell_msg(timeout=min(remaining, 1.0))
        except Empty:
            if not await client.kc.is_alive():
                raise KernelCodeError("the kernel is no longer running") from None
            continue
        if reply["parent_header"].get("msg_id") == msg_id:
            content = reply["content"]
            if content.get("status") != "ok":
                raise KernelCodeError(f"{content.get('ename')}: {content.get('evalue')}"[:EVALUE_CHARS])
            return


def _shorten_traceback(parts: list[str], limit: int) -> str:
    """At most `limit` characters, dropping whole frames from the middle (usually library
    code): the first frames are the student's cells and the last one says what failed."""
    parts = list(parts)
    while len("\n".join(parts)) > limit and len(parts) > 4:
        del parts[len(parts) // 2]
    return "\n".join(parts)[-limit:]


def _error_of(reply: dict | None, cell: NotebookNode, index: int) -> CellProblem | None:
    """The cell's error, from its execute reply (already cut to size by BoundedClient)."""
    if reply is None or reply.get("status") != "error":
        return None
    return CellProblem(index, "error", reply["ename"], reply["evalue"], "\n".join(reply["traceback"]),
                       first_line(cell.source))


@dataclass
class StartedKernel:
    """A kernel started in its own run folder and sandbox, given no notebook yet: it can be
    started while another run finishes (grader/run/runs.py)."""

    run_dir: Path
    km: GraderKernelManager
    client: BoundedClient
    sandbox: KernelSandbox | Unsandboxed | None = None
    error: str = ""  # why it could not be started: the run given it is the grader's failure
    start_seconds: float = 0.0  # spent starting it: part of the run's time limit, as for any run

    async def close(self) -> list[str]:
        """Stop the kernel, close its sandbox, remove its folder: every step, even when Ctrl-C
        cancels this task again while an earlier step is still awaiting. Returns the
        sandbox's notes on limits the run hit."""
        cancelled, notes = None, []
        try:
            await _stop_kernel(self.km, self.client)
        except asyncio.CancelledError as exc:
            cancelled = exc
        if self.sandbox is not None:
            try:
                notes = await self.sandbox.close()
            except asyncio.CancelledError as exc:
                cancelled = exc
        remove_tree(self.run_dir)
        if cancelled is not None:
            raise cancelled
        return notes


async def start_kernel(settings: ExecutionSettings, options: RunOptions) -> StartedKernel:
    """A fresh kernel in a private temporary folder, ready for `run_notebook`."""
    started = time.monotonic()
    run_dir = make_run_dir(options.sandbox)
    workdir, ipc_dir = run_dir / "work", run_dir / "ipc"
    km = GraderKernelManager(transport="ipc", ip=str(ipc_dir / "kernel"),
                             connection_file=str(ipc_dir / "kernel.json"), client_class=CAPPED_CLIENT)
    client = BoundedClient(NotebookNode(cells=[], metadata={}), km=km, timeout=settings.cell_timeout, allow_errors=True,
                           startup_timeout=settings.startup_timeout, record_timing=False,
                           max_output_chars=settings.max_output_chars, shutdown_kernel="immediate")
    kernel = StartedKernel(run_dir, km, client)
    try:
        for folder in (workdir, run_dir / "capture", ipc_dir):
            folder.mkdir()
        if options.public_dir and options.public_dir.is_dir():
            shutil.copytree(options.public_dir, workdir, dirs_exist_ok=True)
        kernel.sandbox = km.sandbox = open_sandbox(options.sandbox, run_dir, settings, options.device)
        # The kernel's own stdout and stderr go to a file, not the TA's terminal.
        with open(run_dir / "kernel.log", "wb") as log:
            await km.start_kernel(cwd=str(workdir), stdout=log, stderr=log,
                                  env=kernel_environment(run_dir, workdir, options.device, options.cache_dir))
        await client.async_start_new_kernel_client()
    except (DeadKernelError, RuntimeError, TimeoutError, OSError) as exc:
        kernel.error = str(exc) or type(exc).__name__
    except BaseException:
        await kernel.close()
        raise
    kernel.start_seconds = time.monotonic() - started
    return kernel


async def run_notebook(nb: NotebookNode, settings: ExecutionSettings, options: RunOptions,
                       kernel: StartedKernel | None = None) -> ExecutionResult:
    """Run `nb` in a fresh kernel (`kernel`, else one started now), always cleaned up."""
    result = ExecutionResult(status="ok", notebook=nb)
    started = time.monotonic()
    try:
        kernel = kernel or await start_kernel(settings, options)
        started = time.monotonic() - kernel.start_seconds  # a kernel started ahead counts its start, not its wait
        run_dir, client = kernel.run_dir, kernel.client
        client.nb = nb
        _write_private(run_dir / "work" / SUBMISSION_COPY, json.dumps(nb))  # the notebook as it runs
        if kernel.error:
            raise RuntimeError(kernel.error)
        await run_grader_code(client, kernel_code("preamble", "install", {
            "threads": 1, "map_cuda_to_cpu": options.device == "cpu" and mentions_cuda(nb),
            "max_losses": settings.max_trace_losses, "max_snapshot_elements": settings.max_snapshot_elements,
            "seed_map": options.seed_map,
            "initial_parameters": _write_start(options.initial_parameters, run_dir / "capture")}),
            settings.startup_timeout)
        deadline = started + settings.notebook_timeout
        await _run_cells(client, nb, settings, deadline, result)
        if any(p.kind == "dead-kernel" for p in result.problems):
            result.capture_error = say("no values could be read back: the kernel died",
                                       "커널이 죽어서 값을 하나도 읽어 오지 못했습니다")
        else:
            await _capture(client, options, settings, run_dir / "capture", result)
    except (KernelCodeError, DeadKernelError, RuntimeError, TimeoutError, OSError) as exc:
        # Nothing of the student's has run yet: this is the grading side's failure.
        result.status = "grader-error"
        log_tail = _log_tail(kernel.run_dir / "kernel.log") if kernel else ""
        detail = f"{exc}{log_tail}"
        result.capture_error = say(f"the kernel could not be started or prepared: {detail}",
                                   f"커널을 시작하거나 준비하지 못했습니다: {detail}")
    finally:
        if kernel is not None:
            result.notes += await kernel.close()
            result.notes += kernel.client.cut_notes
        result.seconds = time.monotonic() - started
    if asyncio.current_task().cancelling():
        # Ctrl-C or SIGTERM stopped the kernel mid-run (nbclient may report that as a dead
        # kernel): nothing of this run is the student's, so no result is made of it.
        raise asyncio.CancelledError
    if result.captured and "cuda_mapped_to_cpu" in result.captured.events:
        result.notes.append(say("the notebook asks for a CUDA GPU; none was used, so it ran on the CPU",
                                "노트북이 CUDA GPU를 쓰려고 했지만 GPU 없이 CPU에서 실행했습니다"))
    return result


def _write_private(path: Path, text: str) -> None:
    """A file of the kernel's own, as everything in its folder (KernelSandbox made it so)."""
    owner = path.parent.stat()
    path.write_text(text, encoding="utf-8")
    os.chown(path, owner.st_uid, owner.st_gid)
    path.chmod(0o600)


def _write_start(values: tuple[np.ndarray, ...] | None, folder: Path) -> str | None:
    """The replay's starting values as a file the kernel reads with allow_pickle=False."""
    if values is None:
        return None
    path = folder / "start.npz"
    np.savez(path, **{f"p{i}": value for i, value in enumerate(values)})
    return str(path)


def _log_tail(path: Path) -> str:
    try:
        tail = path.read_text(errors="replace")[-LOG_TAIL_CHARS:].strip()
    except FileNotFoundError:
        return ""
    return f" (the kernel's log ends: {tail})" if tail else ""


async def _run_cells(client, nb, settings, deadline, result) -> None:
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            result.status = "timeout"
            result.problems.append(CellProblem(index, "timeout", "", "", "", first_line(cell.source)))
            limit = f"{settings.notebook_timeout:.0f}"
            result.notes.append(say(f"the notebook ran out of its {limit} s; later cells were not run",
                                    f"노트북 전체 제한 시간 {limit}초를 다 써서 뒤의 셀은 실행하지 않았습니다"))
            return
        client.timeout = max(1, int(min(settings.cell_timeout, remaining)))
        try:
            await client.async_execute_cell(cell, index, store_history=True)
        except CellTimeoutError:
            client.stop_reading_outputs()
            result.status = "timeout"
            result.problems.append(CellProblem(index, "timeout", "", "", "", first_line(cell.source)))
            await client.km.interrupt_kernel()
            await asyncio.sleep(0.5)
            continue
        except DeadKernelError:
            result.status = "error"
            result.problems.append(CellProblem(index, "dead-kernel", "", "", "", first_line(cell.source)))
            return
        problem = _error_of(client.replies.get(index), cell, index)
        if problem:
            result.problems.append(problem)
            if result.status == "ok":
                result.status = "error"


async def _capture(client, options, settings, capture_dir, result) -> None:
    code = kernel_code("capture", "capture", {
        "names": list(options.capture), "folder": str(capture_dir), "max_text_chars": 100_000})
    try:
        await run_grader_code(client, code, options.grader_code_timeout)
        captured = load_captured(capture_dir, settings.max_capture_bytes)
        if "cuda" in captured.devices() and not options.device.startswith("cuda"):
            # The kernel had no GPU (no device file, CUDA hidden): the claim is forged.
            raise CaptureError("they say they were computed on a CUDA GPU, but this run had none")
        result.captured = captured
    except (KernelCodeError, CaptureError) as exc:
        result.capture_error = say(f"the values could not be read back from the notebook: {exc}",
                                   f"노트북의 값을 읽어 오지 못했습니다: {exc}")
        if result.status == "ok":
            result.status = "error"


async def _stop_kernel(km: GraderKernelManager, client: NotebookClient) -> None:
    """Kill the kernel's whole process group (no polite shutdown: the capture is read)
    and release every socket and file."""
    try:
        if client.kc is not None:
            client.kc.stop_channels()
        if km.has_kernel:
            pgid = km.provisioner.pgid
            await km.provisioner.kill()
            await km.provisioner.wait()
            if pgid:
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    finally:
        await km.cleanup_resources()
