"""Grading on an existing Dask distributed cluster: one task per submission.

Each task runs `python -m grader grade-one` as a subprocess on the worker, feeding the
notebook's bytes on stdin and getting one JSON report back, so a crashing submission
cannot take the worker down and workers need no shared filesystem with the client, only
the same course folder and environment.

Each `grade-one` subprocess starts its own kernel parent (grader/run/forkserver.py), so
a task pays the parent's imports (~3 CPU-s) once for its two runs; one parent per
worker, kept across tasks, is not built.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from grader.grade import AssignmentGrader, GradeReport

TASK_TIMEOUT_MARGIN = 120.0


def run_grade_task(course: str, assignment: str, filename: str, data: bytes, device: str,
                   cache_dir: str, timeout: float, sandbox: bool) -> str:
    """Runs on a Dask worker: grade one notebook in a subprocess, return its report as JSON."""
    command = [sys.executable, "-m", "grader", "grade-one", assignment, filename,
               "--course", course, "--device", device, "--cache-dir", cache_dir]
    if not sandbox:
        command.append("--no-sandbox")
    try:
        done = subprocess.run(command, input=data, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return json.dumps({"grader_error": f"the worker's grading process ran past {timeout:.0f} s"})
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        return json.dumps({"grader_error": f"grading on the worker failed (exit {done.returncode}): {tail[0]}"})
    return done.stdout.decode()


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
