"""Everything a grading run writes for one assignment, atomically.

For TAs (full detail, hidden values included): `gradebook.csv`, `results/<student>.json`
and `summary.html`. For students: `feedback/<student>.html` and `.md` (with its SVG figures),
their notebook with the feedback in it (`feedback/<student>.ipynb`), and the Gradescope
`gradescope/<student>/results.json`. For the LMS: `lms.csv`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from pathlib import Path

from grader.config import Assignment
from grader.report.csvfile import write_csv
from grader.report.document import Block, Image, to_html, to_markdown
from grader.report.exports import gradescope_results, lms_csv
from grader.report.feedback import feedback_page, points
from grader.fsutil import safe_name, write_atomic
from grader.grade import GradeReport
from grader.report.i18n import Text
from grader.report.notebook_feedback import feedback_notebook
from grader.report.summary import RunSettings, summary_page
from grader.said import say


def gradebook_csv(reports: list[GradeReport]) -> list[list[str]]:
    labels = []
    for report in reports:
        labels += [c.label for c in report.checks + report.manual if c.label not in labels]
    rows = [["student", "file", "score", "max_score", "status", "reason", *labels]]
    for r in sorted(reports, key=lambda r: (r.student, r.file)):
        by_label = {c.label: "" if c.status == "pending" else points(c.points) for c in r.checks + r.manual}
        rows.append([r.student, r.file, points(r.score), points(r.max_score), r.status, r.reason,
                     *(by_label.get(label, "") for label in labels)])
    return rows


def output_names(reports: list[GradeReport]) -> dict[str, str]:
    """A distinct, safe file name stem per submission: the student id, plus the file's
    extension where one student has several files, plus a hash of the file's path where
    names still collide (`bob.ipynb.ipynb` next to `bob.ipynb` and `bob.json`); each file
    renamed so is told in a note."""
    counts = Counter(r.student for r in reports)
    names: dict[str, str] = {}
    taken: set[str] = set()
    for r in sorted(reports, key=lambda r: r.file):
        wanted = safe_name(r.student if counts[r.student] == 1 else f"{r.student}{Path(r.file).suffix or '.noext'}")
        name = wanted
        if name.casefold() in taken:  # also on case-insensitive file systems
            name = safe_name(f"{wanted}~{hashlib.sha256(r.file.encode('utf-8', 'replace')).hexdigest()[:8]}")
            r.note(say(f"another file's outputs would have the same name, so this file's are named `{name}`",
                       f"다른 파일의 결과와 이름이 겹쳐서 이 파일의 결과는 다른 이름으로 저장했습니다: `{name}`"))
        taken.add(name.casefold())
        names[r.file] = name
    return names


def strict_json(value, **options) -> str:
    """JSON that strict parsers accept: nan and ±inf become the strings "NaN", "Infinity",
    "-Infinity" instead of bare NaN/Infinity."""
    return json.dumps(_finite(value), allow_nan=False, **options)


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_page(folder: Path, stem: str, title: str, blocks: list[Block], lang: str, markdown: bool) -> None:
    """`stem.html` (self-contained) and, if asked, `stem.md` with its images as `stem.<name>.svg`."""
    write_atomic(folder / f"{stem}.html", to_html(title, blocks, lang))
    if markdown:
        def image_path(image: Image) -> str:
            write_atomic(folder / f"{stem}.{image.name}.svg", image.svg)
            return f"{stem}.{image.name}.svg"

        write_atomic(folder / f"{stem}.md", to_markdown(title, blocks, image_path))


def write_student(folder: Path, name: str, report: GradeReport, assignment: Assignment,
                  reference_losses: list[float], settings: RunSettings) -> None:
    """One submission's feedback page and notebook, results file and Gradescope results."""
    text = Text(settings.lang)
    title, blocks = feedback_page(report, assignment, reference_losses, text)
    write_page(folder / "feedback", name, title, blocks, settings.lang, markdown=True)
    notebook = feedback_notebook(report, assignment, text)
    if notebook is not None:
        write_atomic(folder / "feedback" / f"{name}.ipynb", notebook)
    write_atomic(folder / "results" / f"{name}.json", strict_json(report.to_json(), indent=1) + "\n")
    write_atomic(folder / "gradescope" / name / "results.json",
                 strict_json(gradescope_results(report, text), indent=1, ensure_ascii=False) + "\n")


def mark_unwritable(report: GradeReport, exc: Exception) -> GradeReport:
    """Make a report whose outputs failed to write a grader-error row (its points kept for the
    TA), and return the bare report to write in their place: nothing of the detail that failed."""
    error = f"{type(exc).__name__}: {exc}".encode("utf-8", errors="backslashreplace").decode("utf-8")
    reason = say(f"the grader could not write this submission's feedback ({error}); a TA must review it",
                 f"채점기가 이 제출물의 피드백을 쓰지 못했습니다 ({error}). 조교가 확인해야 합니다")
    report.status = "grader-error"
    report.set_reason(reason)
    bare = GradeReport(report.student, report.file, "grader-error", content_hash=report.content_hash)
    bare.set_reason(reason)
    return bare


def write_reports(out_dir: Path, assignment: Assignment, reports: list[GradeReport], settings: RunSettings,
                  reference_losses: list[float]) -> list[GradeReport]:
    """All outputs; `reference_losses` is the PUBLIC reference curve drawn under each student's.

    A submission whose own outputs fail becomes a grader-error row (returned, so its cached
    grade can be dropped) and the batch goes on: gradebook, LMS file and summary are always written.
    """
    folder = out_dir / assignment.name
    names = output_names(reports)
    failed = []
    for report in reports:
        try:
            write_student(folder, names[report.file], report, assignment, reference_losses, settings)
        except Exception as exc:  # whatever a student's file holds, it never costs the class its gradebook
            failed.append(report)
            bare = mark_unwritable(report, exc)
            try:
                write_student(folder, names[report.file], bare, assignment, reference_losses, settings)
            except Exception:  # the gradebook row already says a TA must look
                pass
    write_csv(folder / "gradebook.csv", gradebook_csv(reports))
    write_csv(folder / "lms.csv", lms_csv(reports))
    title, blocks = summary_page(assignment, reports, settings, names, Text(settings.lang))
    write_page(folder, "summary", title, blocks, settings.lang, markdown=False)
    return failed
