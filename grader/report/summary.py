"""The TA's page for one assignment: scores, pass rates, common failures, trouble, settings.

Unlike student feedback it may quote a check's full `message`: it is for course staff. Like
the feedback it is in the run's language; statuses are named in English as well, as the
gradebook writes them.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass

from grader.config import Assignment
from grader.report.document import Block, Bullets, Heading, Image, Link, Meter, Paragraph, Table
from grader.grade import GradeReport
from grader.report.feedback import cause_text, problem_text
from grader.report.i18n import Text
from grader.report.plots import histogram_svg
from grader.report.suspicious import suspicious_groups

# A number not inside a name (alpha0 stays alpha0) and not a learning rate (lr 0.01 says
# the mistake); inf and nan are words, not numbers, and stay too.
NUMBER = re.compile(r"(?<![\w.])(?<!lr )(?<!lr=)[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?")
MOST_COMMON = 10
REASON_CHARS = 300


@dataclass(frozen=True)
class RunSettings:
    """How a grading run was done, as the summary page reports it."""

    graded_at: str
    grader: str
    torch: str
    device: str
    sandbox: bool
    workers: int
    lang: str


def reason_pattern(message: str) -> str:
    """A message with its numbers replaced by #, so the same mistake groups across students
    (and a value does not point at one); learning rates, inf and nan stay."""
    text = NUMBER.sub("#", " ".join(message.split()))
    return text if len(text) <= REASON_CHARS else text[:REASON_CHARS] + "…"


def cause_groups(reports: list[GradeReport], lang: str) -> list[tuple[str, list[str]]]:
    """(diagnosed cause, students), most students first."""
    groups: dict[str, list[str]] = {}
    for report in reports:
        for diagnosis in report.diagnoses:
            groups.setdefault(cause_text(diagnosis, lang), []).append(report.student)
    return sorted(((cause, sorted(set(students))) for cause, students in groups.items()),
                  key=lambda item: (-len(item[1]), item[0]))


def failure_groups(reports: list[GradeReport], text: Text) -> list[tuple[str, str, list[str]]]:
    """(what failed, reason pattern, students) for the most common reasons, most students first;
    students whose mistake was diagnosed are counted under their cause instead."""
    groups: dict[tuple[str, str], list[str]] = {}
    for report in reports:
        if report.status == "invalid" or report.diagnoses:  # listed with the trouble, or under a cause
            continue
        for c in report.checks:
            if c.status not in ("pass", "not-judged"):
                groups.setdefault((c.label, reason_pattern(c.message_in(text.lang))), []).append(report.student)
        for problem in report.problems:
            groups.setdefault(("run", reason_pattern(problem_text(problem, text))), []).append(report.student)
    ranked = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    return [(label, reason, sorted(set(students))) for (label, reason), students in ranked[:MOST_COMMON]]


def _failure_blocks(reports: list[GradeReport], text: Text) -> list[Block]:
    """Diagnosed causes first, then the undiagnosed rest by check, then what to review."""
    blocks: list[Block] = []
    causes = cause_groups(reports, text.lang)
    if causes:
        blocks += [Heading(text("causes")),
                   Table([text("cause"), text("count"), text("students")],
                         [[cause, str(len(students)), ", ".join(students)] for cause, students in causes])]
    groups = failure_groups(reports, text)
    blocks.append(Heading(text("undiagnosed") if causes else text("failures")))
    if groups:
        blocks.append(Table([text("check"), text("reason"), text("count"), text("students")],
                            [[f"`{label}`", reason, str(len(students)), ", ".join(students)]
                             for label, reason, students in groups]))
    else:
        blocks.append(Paragraph(text("no_failures")))
    review = suspicious_groups(reports, text)
    if review:
        blocks += [Heading(text("suspicious")),
                   Table([text("reason_plain"), text("students")], [[why, ", ".join(s)] for why, s in review])]
    return blocks


def status_label(status: str, text: Text) -> str:
    """`error (셀에서 오류가 남)`: the gradebook's word, then what it means in the page's language."""
    return f"{status} ({text('status_' + status)})"


def summary_page(assignment: Assignment, reports: list[GradeReport], settings: RunSettings,
                 names: dict[str, str], text: Text) -> tuple[str, list[Block]]:
    """The title and blocks of the TA's summary; `names` maps a file to its feedback file stem."""
    title = text("summary_title", title=assignment.title_in(text.lang))
    scores = [r.score for r in reports]
    max_score = max((r.max_score for r in reports), default=0.0)
    blocks: list[Block] = [Paragraph(text("summary_counts", count=len(reports),
                                          mean=statistics.fmean(scores) if scores else 0.0, max_score=max_score,
                                          median=statistics.median(scores) if scores else 0.0))]
    blocks += _failure_blocks(reports, text)
    if reports:
        blocks += [Heading(text("histogram")), Image(histogram_svg(scores, max_score, text), text("histogram"),
                                                      "histogram")]
    statuses = Counter(r.status for r in reports)
    blocks += [Heading(text("statuses")),
               Table([text("status"), text("count")],
                     [[status_label(status, text), str(n)] for status, n in statuses.most_common()])]

    labels: dict[str, list] = {}
    for report in reports:
        for c in report.checks:
            labels.setdefault(c.label, []).append(c)
    rows = []
    for label, results in labels.items():
        passed = sum(c.status == "pass" for c in results)
        rows.append([f"`{label}`", results[0].describe(text.lang), Meter(passed / len(results), f"{passed}/{len(results)}"),
                     f"{statistics.fmean(c.points for c in results):.2f}/{results[0].max_points:g}"])
    blocks += [Heading(text("pass_rate")), Table([text("check"), "", text("passed"), text("mean_points")], rows)]

    trouble = [r for r in sorted(reports, key=lambda r: r.student) if r.status != "ok"]
    blocks.append(Heading(text("trouble")))
    if trouble:
        blocks.append(Table([text("student"), text("status"), text("reason_plain")],
                            [[Link(r.student, f"feedback/{names[r.file]}.html"), status_label(r.status, text),
                              r.reason_in(text.lang)] for r in trouble],
                            ["fail"] * len(trouble)))
    else:
        blocks.append(Paragraph(text("no_trouble")))
    notes = []
    pending = sum(c.status == "pending" for r in reports for c in r.manual)
    if pending:
        notes.append(text("manual_waiting", count=pending, review="`review.md`", grades="`manual_grades.csv`"))
    students = Counter(r.student for r in reports)
    duplicates = sorted(s for s, n in students.items() if n > 1)
    if duplicates:
        notes.append(text("duplicates", students=", ".join(duplicates)))
    if notes:
        blocks.append(Bullets(notes))

    reused = sum(r.cached for r in reports)
    blocks += [Heading(text("settings")),
               Table([text("setting"), text("value")], [
                   [text("setting_graded_at"), settings.graded_at],
                   [text("setting_grader"), settings.grader],
                   [text("setting_torch"), settings.torch],
                   [text("setting_device"), settings.device],
                   [text("setting_sandbox"), text("on" if settings.sandbox else "off")],
                   [text("setting_workers"), str(settings.workers)],
                   [text("setting_language"), settings.lang],
                   [text("setting_reused"), f"{reused} / {len(reports)}"],
               ])]
    blocks += [Heading(text("files")),
               Paragraph(text("files_list", gradebook="`gradebook.csv`", lms="`lms.csv`",
                              gradescope="`gradescope/<student>/results.json`", feedback="`feedback/`")),
               Table([text("feedback_link"), text("points"), text("status")],
                     [[Link(r.student, f"feedback/{names[r.file]}.html"), f"{r.score:g}/{r.max_score:g}",
                       status_label(r.status, text)]
                      for r in sorted(reports, key=lambda r: (r.student, r.file))])]
    return title, blocks
