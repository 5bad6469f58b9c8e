"""Free-text answers: collected for a TA, graded in a CSV the TA edits, merged back.

The TA's file `manual_grades.csv` is never overwritten with less than it had: a re-run
keeps every entry (and any column the TA added) and only adds rows for new submissions,
so points typed in survive and reach the gradebook on the next run without any notebook
being run again. It is read and written by `csvfile` (Excel's encodings, formula cells
neutralised). In `review.md` every answer is shown as literal text, never rendered, and
its hint is computed on the text a reader of the notebook actually sees.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from grader.check.checks import CheckResult
from grader.config import PUBLIC_VARIANT, ManualQuestion
from grader.fsutil import write_atomic
from grader.report.csvfile import read_csv_dicts, write_csv
from grader.said import say

MANUAL_FILE, REVIEW_FILE = "manual_grades.csv", "review.md"
COLUMNS = ["student", "question", "points", "max_points", "comment", "hint"]
# What a rendered markdown cell does not show: comments, hidden elements, reference-style
# link definitions (`[//]: # (text)`); the remaining tags are dropped, their text kept.
INVISIBLE = re.compile(
    r"<!--.*?(?:-->|\Z)"
    r"|<(script|style|template|noscript|textarea)\b.*?(?:</\1\s*>|\Z)"
    r"|<(\w+)\b[^>]*(?:\bhidden\b|display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0)[^>]*>.*?(?:</\2\s*>|\Z)"
    r"|^ {0,3}\[[^\]\n]+\]:[^\n]*$"
    r"|</?[A-Za-z][^>]*>",
    re.DOTALL | re.IGNORECASE | re.MULTILINE)
MARKDOWN_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def visible_text(answer: str) -> str:
    """The answer as a rendered markdown cell shows it (what hints are computed on)."""
    return INVISIBLE.sub("", answer)


def markdown_literal(text: str) -> str:
    """One line of inline text that Markdown shows as is (file-name ids in headings)."""
    return MARKDOWN_PUNCTUATION.sub(r"\\\1", " ".join(text.splitlines()))


def fenced(text: str) -> list[str]:
    """Lines of a code block holding `text` literally: its fence is longer than any run of
    backticks inside, so nothing in it can close the block, open HTML or make a heading."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence, *text.splitlines(), fence]


def answer_hint(text: str | None, words: tuple[str, ...]) -> str:
    """An automatic hint for the TA, never a score: which expected words the answer uses."""
    if text is None:
        return "no answer (the answer cell is missing)"
    visible = visible_text(text)
    if not visible.strip():
        return "empty answer" if not text.strip() else "empty answer (only hidden text: comments or tags)"
    lowered = visible.lower()
    found = [w for w in words if w.lower() in lowered]
    return f"mentions: {', '.join(found)}" if found else "mentions none of the expected words"


@dataclass
class TaFile:
    """What the TA's file holds: each row by (student, question), and the columns the TA added."""

    path: Path | None = None  # None: no file (nothing graded by a TA yet)
    rows: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    lines: dict[tuple[str, str], int] = field(default_factory=dict)
    added_columns: list[str] = field(default_factory=list)

    def points(self, key: tuple[str, str]) -> str:
        return self.rows.get(key, {}).get("points", "").strip()

    def comment(self, key: tuple[str, str]) -> str:
        return self.rows.get(key, {}).get("comment", "")


def read_manual_grades(path: Path) -> TaFile:
    """The TA's entries; an unreadable encoding stops the run here, before any notebook runs."""
    if not path.is_file():
        return TaFile(path)
    header, records = read_csv_dicts(path)
    ta_file = TaFile(path, added_columns=[c for c in header if c and c not in COLUMNS])
    for line, row in enumerate(records, start=2):
        key = (row.get("student", ""), row.get("question", ""))
        ta_file.rows[key], ta_file.lines[key] = row, line
    return ta_file


def _parse_points(ta_file: TaFile, key: tuple[str, str], question: ManualQuestion) -> float | None:
    text = ta_file.points(key)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= question.points:
        print(f"grader: {ta_file.path}:{ta_file.lines[key]}: points {text!r} is not a number from 0 to {question.points:g}; "
              "left ungraded", file=sys.stderr)
        return None
    return value


def merge_manual(reports, questions: tuple[ManualQuestion, ...], ta_file: TaFile) -> None:
    """Set each report's manual results from the TA's file (pending where no points yet)."""
    for report in reports:
        report.manual = []
        for question in questions:
            key = (report.student, question.name)
            points = _parse_points(ta_file, key, question)
            comment = ta_file.comment(key).strip()
            if points is None:
                status, shown = "pending", say("not graded yet: a TA grades this answer by hand",
                                               "아직 채점 전: 조교가 직접 채점합니다")
            else:
                status = "pass" if points == question.points else "partial" if points else "fail"
                shown = say(f"graded by a TA{': ' + comment if comment else ''}",
                            f"조교가 채점함{': ' + comment if comment else ''}")
            result = CheckResult(question.name, PUBLIC_VARIANT, question.prompt or question.name, points or 0.0,
                                 question.points, status, description_ko=question.prompt_ko)
            result.tell(shown)
            report.manual.append(result)


def write_manual_files(folder: Path, reports, questions: tuple[ManualQuestion, ...], title: str,
                       ta_file: TaFile) -> None:
    """Refresh the TA's CSV (keeping every existing entry and added column) and the review file."""
    if not questions:
        return
    added = ta_file.added_columns
    rows = [COLUMNS + added]
    current = set()
    for report in sorted(reports, key=lambda r: r.student):
        for question in questions:
            key = (report.student, question.name)
            current.add(key)
            hint = answer_hint(report.answers.get(question.name), question.hint_words)
            rows.append([report.student, question.name, ta_file.points(key), f"{question.points:g}",
                         ta_file.comment(key), hint] + [ta_file.rows.get(key, {}).get(c, "") for c in added])
    for key, row in sorted(ta_file.rows.items()):
        if key not in current:  # a submission no longer in this run: keep the TA's work
            rows.append([*key, row.get("points", ""), row.get("max_points", ""), row.get("comment", ""),
                         "(not in this run)"] + [row.get(c, "") for c in added])
    write_csv(folder / MANUAL_FILE, rows)
    write_atomic(folder / REVIEW_FILE, review_markdown(reports, questions, title))


def review_markdown(reports, questions: tuple[ManualQuestion, ...], title: str) -> str:
    out = [f"# {title}: answers for TA review", "",
           f"Enter points (and an optional comment for the student) in `{MANUAL_FILE}`, then run the same "
           "grading command again: the points reach the gradebook without any notebook being re-run. "
           "Answers are shown as the notebook displays them, as plain text; hidden parts (HTML comments, "
           "hidden elements, tags) are left out and counted, and hints ignore them.", ""]
    for question in questions:
        out += [f"## {question.name} ({question.points:g} points)", ""]
        if question.prompt:
            out += [f"*{question.prompt}*", ""]
        for report in sorted(reports, key=lambda r: r.student):
            text = report.answers.get(question.name)
            out += [f"### {markdown_literal(report.student)}", "",
                    f"Hint: {answer_hint(text, question.hint_words)}", ""]
            if text and text.strip():
                shown = visible_text(text).strip()
                out += fenced(shown) + [""]
                hidden = len(text.strip()) - len(shown)
                if hidden > 0:
                    out += [f"*{hidden} hidden character(s) left out (HTML comments, hidden elements, tags)*", ""]
    return "\n".join(out) + "\n"
