"""Grades in the shapes other systems import: an LMS's CSV and Gradescope's results.json."""

from __future__ import annotations

import csv
import io

from grader.config import PUBLIC_VARIANT
from grader.grade import GradeReport
from grader.report.i18n import Text

LMS_COLUMNS = ["student_id", "score"]
# Gradescope shows a hidden variant's result once grades are published; its output never
# holds expected values (it is the check's student-safe `feedback`).
HIDDEN_VISIBILITY = "after_published"


def lms_csv(reports: list[GradeReport]) -> str:
    """One row per student: the highest score over their files, blank where a TA must look first.

    A file the grader could not grade (grader-error) never becomes a number in the LMS.
    """
    scores: dict[str, list[float | None]] = {}
    for report in reports:
        scores.setdefault(report.student, []).append(None if report.status == "grader-error" else report.score)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(LMS_COLUMNS)
    for student, found in sorted(scores.items()):
        writer.writerow([student, "" if None in found else f"{max(found):g}"])
    return buffer.getvalue()


def gradescope_results(report: GradeReport, text: Text) -> dict:
    """The submission in Gradescope's results.json schema; every text in it is student-safe."""
    tests = []
    for number, c in enumerate(report.checks + report.manual, start=1):
        hidden = c.variant != PUBLIC_VARIANT
        test = {
            "name": c.description + (f" {text('hidden_data')}" if hidden else ""),
            "number": str(number),
            "max_score": c.max_points,
            "output": text("manual_pending") if c.status == "pending" else "" if c.status == "pass" else c.feedback,
            "output_format": "text",
            "tags": [c.name, c.variant],
            "visibility": HIDDEN_VISIBILITY if hidden else "visible",
            "extra_data": {"check": c.name, "variant": c.variant, "status": c.status},
        }
        if c.status != "pending":  # a TA has not graded it: no score yet, rather than a 0
            test["score"] = c.points
            test["status"] = "passed" if c.status == "pass" else "failed"
        tests.append(test)
    lines = [text("score", score=f"{report.score:g}", max_score=f"{report.max_score:g}")
             + f" · {text('status')}: {text('status_' + report.status)}"]
    if report.status == "invalid":
        lines.append(text("invalid", reason=report.reason))
    lines += [f"- {text('note', note=note)}" for note in report.notes]
    return {
        "score": report.score,
        "execution_time": round(report.seconds),
        "output": "\n\n".join(lines),
        "output_format": "md",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {"student": report.student, "status": report.status},
    }
