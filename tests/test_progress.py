"""Progress: a redrawn bar on a terminal, plain lines elsewhere; the summary table."""

import io

from grader.check.checks import CheckResult
from grader.grade import GradeReport
from grader.report.progress import AssignmentSummary, Progress, summary_table


class Terminal(io.StringIO):
    def isatty(self):
        return True


def report(student, status, points, cached=False):
    check = CheckResult("c", "public", "c", points, 2.0, "pass" if points == 2 else "fail")
    return GradeReport(student, f"{student}.ipynb", status, checks=[check], seconds=1.5, cached=cached)


def test_plain_lines_when_not_on_a_terminal():
    stream = io.StringIO()
    progress = Progress("regression_ab", 2, stream)
    progress.update(report("alice", "ok", 2))
    progress.update(report("bob", "timeout", 0, cached=True))
    assert stream.getvalue().splitlines() == ["[1/2] alice: 2/2 ok (1.5 s)",
                                              "[2/2] bob: 0/2 timeout (unchanged, reused)"]


def test_one_redrawn_line_with_failures_and_eta_on_a_terminal():
    stream = Terminal()
    progress = Progress("abcde", 4, stream)
    progress.update(report("alice", "error", 0))
    progress.finish()
    text = stream.getvalue()
    assert text.startswith("\rabcde [######------------------] 1/4, 1 failed, ETA ")
    assert text.endswith("\n") and text.count("\n") == 1


def test_summary_table_has_a_row_per_assignment():
    reports = [report("alice", "ok", 2), report("bob", "invalid", 0), report("carol", "ok", 1)]
    row = AssignmentSummary.of("regression_ab", reports, 12.34, "grades/regression_ab/gradebook.csv")
    assert row.line() == "regression_ab: 3 graded (2 ok, 1 invalid); mean 1.00/2; gradebook grades/regression_ab/gradebook.csv"
    header, line = summary_table([row]).splitlines()
    assert header.split() == ["assignment", "graded", "ok", "error", "timeout", "invalid", "grader-error",
                              "mean", "score", "wall"]
    assert line.split() == ["regression_ab", "3", "2", "0", "0", "1", "0", "1.00", "/", "2", "12.3", "s"]


def test_the_line_counts_ta_graded_points_in_the_maximum_as_the_page_does():
    stream = io.StringIO()
    progress = Progress("poly_lr", 1, stream, manual_points=2)
    progress.update(report("alice", "ok", 2))
    assert stream.getvalue() == "[1/1] alice: 2/4 ok (1.5 s, 2 of them for TA-graded answers, not counted yet)\n"
