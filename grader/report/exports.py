"""Grades in the shapes other systems import: an LMS's CSV and Gradescope's results.json."""

from __future__ import annotations

from grader.config import PUBLIC_VARIANT
from grader.grade import GradeReport
from grader.report.i18n import Text
from grader.report.lmsids import student_key

LMS_COLUMNS = ["student_id", "score"]
# Gradescope shows a hidden variant's result, and the total that includes it, once grades
# are published; its output never holds expected values (the check's student-safe `feedback`).
HIDDEN_VISIBILITY = "after_published"


def final_score(report: GradeReport) -> float | None:
    """The score an LMS may record, or None while a TA must still look (a grader-error, an
    answer not graded yet): a number that looks final but is not is never exported."""
    if report.status == "grader-error" or any(c.status == "pending" for c in report.manual):
        return None
    return report.score


def lms_scores(reports: list[GradeReport], roster: dict[str, str] | None = None) -> dict[str, float | None]:
    """Per LMS student id (see `lmsids`): the highest score over their files, None if any is not final."""
    scores: dict[str, list[float | None]] = {}
    for report in reports:
        scores.setdefault(student_key(report.student, roster), []).append(final_score(report))
    return {student: None if None in found else max(found) for student, found in sorted(scores.items())}


def lms_csv(reports: list[GradeReport], roster: dict[str, str] | None = None) -> list[list[str]]:
    """One row per student, the score blank where it is not final yet."""
    return [LMS_COLUMNS] + [[student, "" if score is None else f"{score:g}"]
                            for student, score in lms_scores(reports, roster).items()]


def gradescope_results(report: GradeReport, text: Text) -> dict:
    """The submission in Gradescope's results.json schema; every text in it is student-safe.

    One policy for hidden points: a check on a hidden variant is shown once grades are
    published, and so is the top-level score (it includes those points), while the output
    shown with it counts only public checks. Public checks are visible at once.
    """
    tests = []
    for number, c in enumerate(report.checks + report.manual, start=1):
        hidden = c.variant != PUBLIC_VARIANT
        test = {
            "name": c.describe(text.lang) + (f" {text('hidden_data')}" if hidden else ""),
            "number": str(number),
            "max_score": c.max_points,
            "output": text("manual_pending") if c.status == "pending" else "" if c.status == "pass" else c.feedback_in(text.lang),
            "output_format": "text",
            "tags": [c.name, c.variant],
            "visibility": HIDDEN_VISIBILITY if hidden else "visible",
            "extra_data": {"check": c.name, "variant": c.variant, "status": c.status},
        }
        if c.status != "pending":  # a TA has not graded it: no score yet, rather than a 0
            test["score"] = c.points
            test["status"] = "passed" if c.status == "pass" else "failed"
        tests.append(test)
    public = [c for c in report.checks + report.manual if c.variant == PUBLIC_VARIANT]
    has_hidden = len(public) < len(report.checks + report.manual)
    score = text("public_score" if has_hidden else "score", score=f"{sum(c.points for c in public):g}",
                 max_score=f"{sum(c.max_points for c in public):g}")
    lines = [f"{score} · {text('status')}: {text('status_' + report.status)}"]
    if has_hidden:
        lines.append(text("hidden_after_publishing"))
    if report.status == "invalid":
        lines.append(text("invalid", reason=report.reason_in(text.lang)))
    lines += [f"- {text('note', note=note)}" for note in report.notes_in(text.lang)]
    return {
        "score": report.score,
        "execution_time": round(report.seconds),
        "output": "\n\n".join(lines),
        "output_format": "md",
        "visibility": HIDDEN_VISIBILITY if has_hidden else "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {"student": report.student, "status": report.status},
    }


def gradescope_failure(message: str) -> dict:
    """results.json when nothing could be graded (no notebook, a grader fault): 0, and why."""
    return {"score": 0.0, "output": message, "output_format": "md", "visibility": "visible",
            "stdout_visibility": "hidden", "tests": [], "extra_data": {"status": "not graded"}}
