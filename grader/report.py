"""Gradebook and feedback files, written atomically.

The gradebook and the per-submission JSON are for TAs (full detail, hidden values
included); the Markdown feedback is what a student may read.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from grader.config import Assignment
from grader.fsutil import write_atomic
from grader.grade import GradeReport

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
FEEDBACK_TRACEBACK_LINES = 25


def _points(x: float) -> str:
    return f"{x:g}"


def gradebook_csv(reports: list[GradeReport]) -> str:
    labels = []
    for report in reports:
        labels += [c.label for c in report.checks + report.manual if c.label not in labels]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", "file", "score", "max_score", "status", "reason", *labels])
    for r in sorted(reports, key=lambda r: (r.student, r.file)):
        by_label = {c.label: "" if c.status == "pending" else _points(c.points) for c in r.checks + r.manual}
        writer.writerow([r.student, r.file, _points(r.score), _points(r.max_score), r.status, r.reason,
                         *(by_label.get(label, "") for label in labels)])
    return buffer.getvalue()


def _trim_traceback(text: str) -> str:
    """The student's part of an IPython traceback, colour codes removed."""
    lines = ANSI.sub("", text).splitlines()
    return "\n".join(lines[-FEEDBACK_TRACEBACK_LINES:])


def _training_lines(report: GradeReport) -> list[str]:
    """What the notebook's training actually did, as the grader saw it run."""
    training = report.training
    if not training and not report.modules:
        return []
    out = ["## What your notebook did", ""]
    for name, layers in report.modules.items():
        out.append(f"- `{name}`: " + " → ".join(f"`{layer}`" for layer in layers))
    for o in training.get("optimizers", []):
        out.append(f"- optimizer `{o['class']}` with lr {o['lr']:g} over {o['parameters']} parameter values: "
                   f"{o['steps']} step(s)" if isinstance(o.get("lr"), (int, float)) else
                   f"- optimizer `{o['class']}`: {o['steps']} step(s)")
    losses = training.get("losses", [])
    if training:
        out.append(f"- `backward()` was called {training['backward_calls']} time(s); "
                   f"that is {training['epochs']} epoch(s) of full-batch training")
    if losses:
        out.append(f"- loss: first {losses[0]:.6g}, last {losses[-1]:.6g}")
    if training.get("first_nonfinite_epoch"):
        nan = training.get("first_nan_epoch")
        out.append(f"- the loss first became infinite or nan at epoch {training['first_nonfinite_epoch']}"
                   + (f", nan at epoch {nan}" if nan else ""))
    return out + [""]


def feedback_markdown(report: GradeReport, assignment: Assignment) -> str:
    title = assignment.title or assignment.name
    out = [f"# {title}: feedback for {report.student}", "",
           f"**Score: {_points(report.score)} / {_points(report.max_score)}** (status: {report.status})", ""]
    if report.status == "invalid":
        out += [f"Your file could not be graded: {report.reason}.", ""]
    for note in report.notes:
        out.append(f"- Note: {note}")
    if report.notes:
        out.append("")
    if report.problems:
        out += ["## Problems while running your notebook", ""]
        for problem in report.problems:
            out.append(f"- {problem['text']}")
            if problem.get("traceback"):
                out += ["", "```", _trim_traceback(problem["traceback"]), "```", ""]
        out.append("")
    out += _training_lines(report)
    out += ["## Checks", "", "| | check | points |", "|---|---|---|"]
    for c in report.checks + report.manual:
        mark = {"pass": "✓", "partial": "◐", "pending": "…"}.get(c.status, "✗")
        hidden = " (hidden data)" if c.variant != "public" else ""
        out.append(f"| {mark} | {c.description}{hidden} | {_points(c.points)} / {_points(c.max_points)} |")
    failed = [c for c in report.checks + report.manual if c.status != "pass"]
    if failed:
        out += ["", "## What to look at", ""]
        for c in failed:
            hidden = " (hidden data)" if c.variant != "public" else ""
            out.append(f"- **{c.description}{hidden}**: {c.feedback}")
    out += ["", "Checks marked *hidden data* ran your notebook again with a different seed, "
            "so other data and other initial weights; the expected values are not shown.", ""]
    return "\n".join(out)


def output_names(reports: list[GradeReport]) -> dict[str, str]:
    """File name stem per submission: the student id, plus the extension where ids collide."""
    counts: dict[str, int] = {}
    for r in reports:
        counts[r.student] = counts.get(r.student, 0) + 1
    return {r.file: r.student if counts[r.student] == 1 else f"{r.student}{Path(r.file).suffix or '.noext'}"
            for r in reports}


def write_reports(out_dir: Path, assignment: Assignment, reports: list[GradeReport]) -> None:
    folder = out_dir / assignment.name
    names = output_names(reports)
    for report in reports:
        name = names[report.file]
        write_atomic(folder / "feedback" / f"{name}.md", feedback_markdown(report, assignment))
        write_atomic(folder / "results" / f"{name}.json", json.dumps(report.to_json(), indent=1) + "\n")
    write_atomic(folder / "gradebook.csv", gradebook_csv(reports))
