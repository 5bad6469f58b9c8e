"""Student ids from the file names LMSs give downloaded submissions, or from a roster.

The rule (applied to the submission's student id: its path under the graded folder, without
extension, `/` written `__`):
- Canvas `lastfirst_12345_67890_hw1.ipynb` and `lastfirst_LATE_12345_67890_hw1.ipynb`:
  the Canvas user id `12345` (the `ID` column of Canvas's gradebook export);
- Moodle `Kim Minsu_123456_assignsubmission_file_hw1.ipynb` (or a folder of that name):
  the participant number `123456` (the `Identifier` column of Moodle's grading worksheet);
- Gradescope's "Export Submissions" `submission_12345678/hw1.ipynb`: the submission id
  `submission_12345678`, which the export's own `submission_metadata.yml`, given as the
  roster, maps to the student's SID;
- any other name: the student id unchanged.
A roster CSV (`submission,student_id`) overrides the rule: its `submission` column holds
what the rule gives or the file's student id.
"""

from __future__ import annotations

import re
from pathlib import Path

from grader.errors import UsageError
from grader.report.csvfile import read_csv_dicts

LMS_NAMES = (
    re.compile(r"(?:.*__)?[^_]+_(?:LATE_)?(?P<id>\d+)_\d+_.+"),          # Canvas
    re.compile(r".+?_(?P<id>\d+)_assignsubmission_[a-z]+_.*"),          # Moodle
    re.compile(r"(?:.*__)?(?P<id>submission_\d+)(?:__.*)?"),             # Gradescope export
)
ROSTER_COLUMNS = ("submission", "student_id")


def lms_id(student: str) -> str:
    """The id the LMS knows the student by, per the rule above."""
    for pattern in LMS_NAMES:
        match = pattern.fullmatch(student)
        if match:
            return match["id"]
    return student


def gradescope_roster(path: Path) -> dict[str, str]:
    """`submission_<id>` → the first submitter's SID (else e-mail) from the
    `submission_metadata.yml` of Gradescope's "Export Submissions" (read without a YAML
    library: its layout is fixed, `submission_<id>:` then `:submitters:` items)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    roster: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        top = re.fullmatch(r"(submission_\d+):\s*", line)
        field = re.fullmatch(r"\s*-?\s*:(sid|email):\s*['\"]?(.*?)['\"]?\s*", line)
        if top:
            current = top[1]
        elif field and current and field[2] and (field[1] == "sid" or current not in roster):
            roster[current] = field[2]
            current = current if field[1] == "email" else None  # the first submitter's SID wins
    if not roster:
        raise UsageError(f"{path} has no submission_<id> entries with a :sid: or :email: (Gradescope's "
                         "submission_metadata.yml from Export Submissions)")
    return roster


def read_roster(path: Path) -> dict[str, str]:
    """`submission` → `student_id` from the TA's roster CSV, or Gradescope's submission_metadata.yml."""
    if path.suffix in (".yml", ".yaml"):
        return gradescope_roster(path)
    header, rows = read_csv_dicts(path)
    missing = [c for c in ROSTER_COLUMNS if c not in header]
    if missing:
        raise UsageError(f"{path} needs the columns {', '.join(ROSTER_COLUMNS)} (missing: {', '.join(missing)})")
    return {row["submission"].strip(): row["student_id"].strip() for row in rows if row["submission"].strip()}


def student_key(student: str, roster: dict[str, str] | None = None) -> str:
    """The id to report a submission under: the roster's entry, else the rule's."""
    roster = roster or {}
    ruled = lms_id(student)
    return roster.get(ruled) or roster.get(student) or ruled
