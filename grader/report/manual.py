"""Free-text answers: collected for a TA, graded in a CSV the TA edits, merged back.

The TA's file `manual_grades.csv` is never overwritten with less than it had: a re-run
keeps every entry and only adds rows for new submissions, so points typed in survive and
reach the gradebook on the next run without any notebook being run again.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from grader.check.checks import CheckResult
from grader.config import PUBLIC_VARIANT, ManualQuestion
from grader.fsutil import write_atomic

MANUAL_FILE, REVIEW_FILE = "manual_grades.csv", "review.md"
COLUMNS = ["student", "question", "points", "max_points", "comment", "hint"]


def answer_hint(text: str | None, words: tuple[str, ...]) -> str:
    """An automatic hint for the TA, never a score: which expected words the answer uses."""
    if text is None:
        return "no answer (the answer cell is missing)"
    if not text.strip():
        return "empty answer"
    lowered = text.lower()
    found = [w for w in words if w.lower() in lowered]
    return f"mentions: {', '.join(found)}" if found else "mentions none of the expected words"


def read_manual_grades(path: Path) -> dict[tuple[str, str], dict]:
    """The TA's entries by (student, question); rows that can't be used are reported and skipped."""
    if not path.is_file():
        return {}
    entries = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            key = (row.get("student", ""), row.get("question", ""))
            entries[key] = {"points": (row.get("points") or "").strip(), "comment": row.get("comment") or "",
                            "line": line}
    return entries


def _parse_points(entry: dict, question: ManualQuestion, path: Path) -> float | None:
    text = entry["points"]
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= question.points:
        print(f"grader: {path}:{entry['line']}: points {text!r} is not a number from 0 to {question.points:g}; "
              "left ungraded", file=sys.stderr)
        return None
    return value


def merge_manual(reports, questions: tuple[ManualQuestion, ...], path: Path) -> None:
    """Set each report's manual results from the TA's file (pending where no points yet)."""
    entries = read_manual_grades(path)
    for report in reports:
        report.manual = []
        for question in questions:
            entry = entries.get((report.student, question.name), {"points": "", "comment": "", "line": 0})
            points = _parse_points(entry, question, path)
            comment = entry["comment"].strip()
            if points is None:
                status, shown = "pending", "not graded yet: a TA grades this answer by hand"
            else:
                status = "pass" if points == question.points else "partial" if points else "fail"
                shown = f"graded by a TA{': ' + comment if comment else ''}"
            report.manual.append(CheckResult(question.name, PUBLIC_VARIANT, question.prompt or question.name,
                                             points or 0.0, question.points, status, shown, shown))


def write_manual_files(folder: Path, reports, questions: tuple[ManualQuestion, ...], title: str) -> None:
    """Refresh the TA's CSV (keeping every existing entry) and the review file."""
    if not questions:
        return
    path = folder / MANUAL_FILE
    entries = read_manual_grades(path)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    current = set()
    for report in sorted(reports, key=lambda r: r.student):
        for question in questions:
            current.add((report.student, question.name))
            entry = entries.get((report.student, question.name), {"points": "", "comment": ""})
            hint = answer_hint(report.answers.get(question.name), question.hint_words)
            writer.writerow([report.student, question.name, entry["points"], f"{question.points:g}",
                             entry["comment"], hint])
    for (student, name), entry in sorted(entries.items()):
        if (student, name) not in current:  # a submission no longer in this run: keep the TA's work
            writer.writerow([student, name, entry["points"], "", entry["comment"], "(not in this run)"])
    write_atomic(path, buffer.getvalue())
    write_atomic(folder / REVIEW_FILE, review_markdown(reports, questions, title))


def review_markdown(reports, questions: tuple[ManualQuestion, ...], title: str) -> str:
    out = [f"# {title}: answers for TA review", "",
           f"Enter points (and an optional comment for the student) in `{MANUAL_FILE}`, then run the same "
           "grading command again: the points reach the gradebook without any notebook being re-run.", ""]
    for question in questions:
        out += [f"## {question.name} ({question.points:g} points)", ""]
        if question.prompt:
            out += [f"*{question.prompt}*", ""]
        for report in sorted(reports, key=lambda r: r.student):
            text = report.answers.get(question.name)
            out += [f"### {report.student}", "", f"Hint: {answer_hint(text, question.hint_words)}", ""]
            if text and text.strip():
                out += ["> " + line for line in text.strip().splitlines()] + [""]
    return "\n".join(out)
