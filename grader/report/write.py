"""Everything a grading run writes for one assignment, atomically.

For TAs (full detail, hidden values included): `gradebook.csv`, `results/<student>.json`
and `summary.html`. For students: `feedback/<student>.html` and `.md` (with its PNGs),
their notebook with the feedback in it (`feedback/<student>.ipynb`), and the Gradescope
`gradescope/<student>/results.json`. For the LMS: `lms.csv`.
"""

from __future__ import annotations

import json
from pathlib import Path

from grader.config import Assignment
from grader.report.csvfile import write_csv
from grader.report.document import Block, Image, to_html, to_markdown
from grader.report.exports import gradescope_results, lms_csv
from grader.report.feedback import feedback_page, points
from grader.fsutil import write_atomic, write_bytes_atomic
from grader.grade import GradeReport
from grader.report.i18n import Text
from grader.report.notebook_feedback import feedback_notebook
from grader.report.summary import RunSettings, summary_page


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
    """File name stem per submission: the student id, plus the extension where ids collide."""
    counts: dict[str, int] = {}
    for r in reports:
        counts[r.student] = counts.get(r.student, 0) + 1
    return {r.file: r.student if counts[r.student] == 1 else f"{r.student}{Path(r.file).suffix or '.noext'}"
            for r in reports}


def write_page(folder: Path, stem: str, title: str, blocks: list[Block], lang: str, markdown: bool) -> None:
    """`stem.html` (self-contained) and, if asked, `stem.md` with its images as `stem.<name>.png`."""
    write_atomic(folder / f"{stem}.html", to_html(title, blocks, lang))
    if markdown:
        def image_path(image: Image) -> str:
            write_bytes_atomic(folder / f"{stem}.{image.name}.png", image.png)
            return f"{stem}.{image.name}.png"

        write_atomic(folder / f"{stem}.md", to_markdown(title, blocks, image_path))


def write_reports(out_dir: Path, assignment: Assignment, reports: list[GradeReport], settings: RunSettings,
                  reference_losses: list[float]) -> None:
    """All outputs; `reference_losses` is the PUBLIC reference curve drawn under each student's."""
    folder = out_dir / assignment.name
    names = output_names(reports)
    text = Text(settings.lang)
    for report in reports:
        name = names[report.file]
        title, blocks = feedback_page(report, assignment, reference_losses, text)
        write_page(folder / "feedback", name, title, blocks, settings.lang, markdown=True)
        notebook = feedback_notebook(report, assignment, text)
        if notebook is not None:
            write_atomic(folder / "feedback" / f"{name}.ipynb", notebook)
        write_atomic(folder / "results" / f"{name}.json", json.dumps(report.to_json(), indent=1) + "\n")
        write_atomic(folder / "gradescope" / name / "results.json",
                     json.dumps(gradescope_results(report, text), indent=1, ensure_ascii=False) + "\n")
    write_csv(folder / "gradebook.csv", gradebook_csv(reports))
    write_csv(folder / "lms.csv", lms_csv(reports))
    title, blocks = summary_page(assignment, reports, settings, names, text)
    write_page(folder, "summary", title, blocks, settings.lang, markdown=False)
