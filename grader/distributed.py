"""Grading on an existing Dask distributed cluster: one task per submission.

A task hands the notebook's bytes to a grading process on its worker (`python -m grader
grade-worker`) and gets one JSON report back. That process outlives the task: it keeps its
kernel parent (grader/run/forkserver.py, ~3 CPU-s of imports) and its prepared
assignments from one task to the next, so a worker pays them once, not per submission.
It is still a process apart, so a crash costs one task and the next task starts a new
one; workers need no shared filesystem with the client, only the same course folder and
environment. A process is replaced when the grader's or torch's files change, and ends
with its worker: when its stdin closes, or at once when it sees the worker gone.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from grader.check.reference import grader_files
from grader.grade import AssignmentGrader, GradeReport

TASK_TIMEOUT_MARGIN = 120.0
STDERR_TAIL = 2000


def read_request(stream: BinaryIO) -> tuple[dict, bytes] | None:
    """One task as the grading process reads it: a JSON line, then `bytes` bytes."""
    line = stream.readline()
    if not line:
        return None
    header = json.loads(line)
    return header, stream.read(header["bytes"])


async def stop_when_orphaned(parent: int) -> None:
    """End the grading process, cleaning up as after Ctrl-C, once its worker is gone (it is
    then re-parented): a task in progress would otherwise run on to its end unseen."""
    while os.getppid() == parent:
        await asyncio.sleep(1)
    os.kill(os.getpid(), signal.SIGTERM)


def _environment_stamp(course: str) -> tuple:
    """What a grading process has loaded and must be restarted for when it changes: the
    grader's code, torch, and the course's assignments and references."""
    files = sorted(grader_files().values())
    files += sorted(p for folder in ("assignments", "reference") for p in (Path(course) / folder).rglob("*")
                    if p.is_file())
    torch = importlib.util.find_spec("torch")
    if torch and torch.origin:
        files.append(Path(torch.origin))
    return tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)


class GradingProcess:
    """One `grader grade-worker` process, used by one task at a time."""

    def __init__(self, command: list[str]):
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                        bufsize=0, start_new_session=True)
        self.pending = b""

    def grade(self, header: dict, data: bytes, timeout: float) -> dict:
        """The report for one notebook, or `grader_error` saying why there is none (the
        process is then stopped: whatever it was doing is not trusted for the next task)."""
        deadline = time.monotonic() + timeout
        try:
            self._send(json.dumps(header | {"bytes": len(data)}).encode() + b"\n" + data, deadline)
            while b"\n" not in self.pending:
                self.pending += self._receive(deadline)
            line, self.pending = self.pending.split(b"\n", 1)
            return json.loads(line)
        except TimeoutError:
            self.stop()
            return {"grader_error": f"the worker's grading process ran past {timeout:g} s"}
        except (OSError, EOFError, ValueError):
            said = self.last_words()
            self.stop()
            return {"grader_error": f"grading on the worker failed (exit {self.process.returncode}): {said}"}
        except BaseException:
            self.stop()
            raise

    def _wait(self, fd: int, event: int, deadline: float) -> None:
        poller = select.poll()  # not select(): a busy worker's descriptors can be numbered past 1024
        poller.register(fd, event)
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(remaining * 1000):
            raise TimeoutError

    def _send(self, data: bytes, deadline: float) -> None:
        fd = self.process.stdin.fileno()
        view = memoryview(data)
        while view:
            self._wait(fd, select.POLLOUT, deadline)
            view = view[os.write(fd, view[:1 << 16]):]

    def _receive(self, deadline: float) -> bytes:
        fd = self.process.stdout.fileno()
        self._wait(fd, select.POLLIN, deadline)
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            raise EOFError
        return chunk

    def alive(self) -> bool:
        return self.process.poll() is None

    def last_words(self) -> str:
        self.log.seek(0, os.SEEK_END)
        self.log.seek(max(0, self.log.tell() - STDERR_TAIL))
        lines = self.log.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "no message"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # its kernel parent dies with it
        self.process.wait()
        self.process.stdin.close()
        self.process.stdout.close()
        self.log.close()


class Pool:
    """This worker's idle grading processes, by what they were started for."""

    def __init__(self):
        self.lock = threading.Lock()
        self.idle: dict[tuple, list[GradingProcess]] = {}
        self.started = 0

    def take(self, key: tuple, command: list[str]) -> GradingProcess:
        with self.lock:
            for other in [k for k in self.idle if k != key]:  # started for another setting or older code
                for process in self.idle.pop(other):
                    process.stop()
            while self.idle.get(key):
                process = self.idle[key].pop()
                if process.alive():
                    return process
                process.stop()
            self.started += 1
        return GradingProcess(command)

    def give_back(self, key: tuple, process: GradingProcess) -> None:
        with self.lock:
            self.idle.setdefault(key, []).append(process)

    def stop_all(self) -> None:
        with self.lock:
            for processes in self.idle.values():
                for process in processes:
                    process.stop()
            self.idle.clear()


POOL = Pool()
atexit.register(POOL.stop_all)


def run_grade_task(course: str, assignment: str, filename: str, data: bytes, device: str,
                   cache_dir: str, timeout: float, sandbox: bool) -> str:
    """Runs on a Dask worker: grade one notebook in this worker's grading process."""
    command = [sys.executable, "-m", "grader", "grade-worker", "--course", course, "--device", device,
               "--cache-dir", cache_dir, "--workers", "1", *([] if sandbox else ["--no-sandbox"])]
    key = (*command, _environment_stamp(course))
    process = POOL.take(key, command)
    answer = process.grade({"assignment": assignment, "filename": filename}, data, timeout)
    if process.alive():
        POOL.give_back(key, process)
    return json.dumps(answer)


def remote_grader(client, grader: AssignmentGrader, course: Path):
    """A `remote` for `AssignmentGrader.grade_all` that sends each notebook to the cluster."""
    settings = grader.assignment.execution
    timeout = len(grader.assignment.variants) * (settings.notebook_timeout + settings.startup_timeout) \
        + TASK_TIMEOUT_MARGIN

    async def grade(report: GradeReport, data: bytes) -> GradeReport:
        future = client.submit(run_grade_task, str(course.resolve()), grader.assignment.name,
                               Path(report.file).name, data, grader.options.device,
                               str(grader.options.cache_dir), timeout, grader.options.sandbox, pure=False)
        answer = json.loads(await future)
        if "grader_error" in answer:
            raise RuntimeError(answer["grader_error"])
        return replace(GradeReport.from_json(answer), student=report.student, file=report.file)

    return grade
