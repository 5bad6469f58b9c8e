"""Scores written into the gradebook CSV a TA exported from Canvas, ready to import back.

Canvas's export has the columns `Student, ID, SIS User ID, SIS Login ID, Section` (some
instances add more), one column per assignment (`HW1 (12345)`), then totals; below the
header, rows without an `ID` (`Points Possible`, `Manual Posting`) describe the columns.
Every row and column is kept as it was; only the chosen assignment column changes, for
students whose score is final. A student is matched when one of `ID`, `SIS User ID` or
`SIS Login ID` equals their LMS id (`lmsids`). Nobody is dropped silently: graded
students Canvas does not list, and Canvas students left unchanged, are both reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from grader.errors import UsageError
from grader.report.csvfile import read_csv

ID_COLUMNS = ("ID", "SIS User ID", "SIS Login ID")
REQUIRED_COLUMNS = ("Student", "ID")
CANVAS_ID_SUFFIX = re.compile(r"\s*\(\d+\)$")


@dataclass
class CanvasFill:
    """The filled gradebook and who could not be filled."""

    rows: list[list[str]]
    filled: int = 0
    unknown: list[str] = field(default_factory=list)  # graded, but not in Canvas's gradebook
    not_final: list[str] = field(default_factory=list)  # in both, but a TA must look first
    ungraded: list[str] = field(default_factory=list)  # in Canvas, with no graded file


def assignment_column(header: list[str], wanted: str, path: Path) -> int:
    """The column named `wanted`, exactly or without Canvas's ` (12345)` id."""
    if wanted in header:
        return header.index(wanted)
    matches = [i for i, name in enumerate(header) if CANVAS_ID_SUFFIX.sub("", name) == wanted]
    if len(matches) == 1:
        return matches[0]
    assignments = [name for name in header if CANVAS_ID_SUFFIX.search(name)]
    raise UsageError(f"{path} has no assignment column {wanted!r}; its assignment columns: "
                     f"{', '.join(assignments) or 'none'} (create the assignment in Canvas and export again)")


def fill_canvas(path: Path, column: str, scores: dict[str, float | None]) -> CanvasFill:
    """Canvas's exported gradebook with `scores` (LMS id → score, None if not final) filled in."""
    rows = read_csv(path)
    if not rows or any(name not in rows[0] for name in REQUIRED_COLUMNS):
        raise UsageError(f"{path} is not a Canvas gradebook export (its first row must name the columns "
                         f"{', '.join(REQUIRED_COLUMNS)}, ...): in Canvas, Grades > Export > Export Entire Gradebook")
    header = rows[0]
    target = assignment_column(header, column, path)
    ids = [header.index(name) for name in ID_COLUMNS if name in header]
    student = header.index("Student")
    result = CanvasFill([header])
    matched = set()
    for row in rows[1:]:
        row = row + [""] * (len(header) - len(row))
        found = [row[i].strip() for i in ids if row[i].strip() in scores]
        if not row[header.index("ID")].strip():  # Points Possible, Manual Posting: kept as they are
            pass
        elif not found:
            result.ungraded.append(row[student].strip())
        else:
            matched.add(found[0])
            score = scores[found[0]]
            if score is None:
                result.not_final.append(row[student].strip())
            else:
                row[target] = f"{score:g}"
                result.filled += 1
        result.rows.append(row)
    result.unknown = sorted(set(scores) - matched)
    return result
