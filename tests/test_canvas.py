"""`grader export canvas`: a gradebook exported from Canvas, filled and ready to import back.

The input is written in the layout of Canvas's "Export Entire Gradebook" (Canvas guides:
"How do I export grades in the Gradebook?" / "How do I import grades in the Gradebook?"):
UTF-8 with a byte-order mark; Student, ID, SIS User ID, SIS Login ID, Section, one column
per assignment named with its id, then Canvas's own totals; a "Points Possible" row.
"""

import codecs
import csv
import io

import pytest

from grader.check.checks import CheckResult
from grader.cli import main
from grader.config import load_assignment
from grader.grade import GradeReport
from grader.report.summary import RunSettings
from grader.report.write import write_reports

from conftest import ROOT

HEADER = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "HW1 (12345)", "Quiz 1 (12346)",
          "Current Score", "Unposted Current Score", "Final Score"]
CANVAS = [HEADER,
          ["    Points Possible", "", "", "", "", "12.00", "5.00", "(read only)", "(read only)", "(read only)"],
          ["Kim, Alice", "101", "2024001", "alice@uni.ac.kr", "AI 101-01", "", "4.00", "80", "80", "80"],
          ["Lee, Bob", "102", "2024002", "bob@uni.ac.kr", "AI 101-01", "", "5.00", "100", "100", "100"],
          ["Park, Carol", "103", "2024003", "carol@uni.ac.kr", "AI 101-02", "", "", "", "", ""],
          ["Choi, Erin", "105", "2024005", "erin@uni.ac.kr", "AI 101-02", "3.00", "", "", "", ""],
          ["Student, Test", "999", "", "", "AI 101-01", "", "", "", "", ""]]
SETTINGS = RunSettings("2026-11-30T10:00:00+09:00", "0.1.0", "2.13.0+cpu", "cpu", True, 2, "en")


def report(student, points=3.0, pending=False):
    checks = [CheckResult("parameters", "public", "α, β match", points, 3.0, "pass" if points == 3 else "fail")]
    manual = [CheckResult("why", "public", "Why?", 0.0, 2.0, "pending", "", "")] if pending else []
    return GradeReport(student, f"{student}.ipynb", "ok", checks=checks, manual=manual)


@pytest.fixture
def graded(tmp_path):
    """Grades as `grader grade` leaves them, for files downloaded from Canvas and one renamed by hand."""
    reports = [report("kimalice_101_555001_hw1", 1.5), report("kimalice_LATE_101_555002_hw1-1", 3.0),
               report("bob_final"), report("parkcarol_103_555003_hw1", pending=True), report("kimdave_104_555004_hw1")]
    write_reports(tmp_path / "grades", load_assignment(ROOT, "regression_ab"), reports, SETTINGS, [1.0])
    exported = tmp_path / "export.csv"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(CANVAS)
    exported.write_bytes(codecs.BOM_UTF8 + buffer.getvalue().encode())
    (tmp_path / "roster.csv").write_bytes("submission,student_id\nbob_final,2024002\n".encode("cp949"))
    return tmp_path


def export(folder, *extra):
    return main(["export", "canvas", "regression_ab", "--gradebook", str(folder / "export.csv"),
                 "--grades", str(folder / "grades"), *extra])


def test_canvas_export_round_trips_with_scores_filled_and_nobody_dropped(graded, capsys):
    assert export(graded, "--assignment-column", "HW1", "--roster", str(graded / "roster.csv")) == 0
    printed = capsys.readouterr().out
    rows = list(csv.reader(io.StringIO((graded / "grades" / "regression_ab" / "canvas_import.csv")
                                       .read_text(encoding="utf-8-sig"))))
    column = HEADER.index("HW1 (12345)")
    assert [row[column] for row in rows] == ["HW1 (12345)", "12.00", "3", "3", "", "3.00", ""], \
        "alice's best file, bob through the roster; carol's answer is not graded yet; erin kept"
    assert [row[:column] + row[column + 1:] for row in rows] == \
        [row[:column] + row[column + 1:] for row in CANVAS], "every other cell and row as Canvas wrote it"
    assert "2 score(s) filled in" in printed
    assert "graded but not in the Canvas gradebook (check the file names or pass --roster): 104" in printed
    assert "left blank: a TA must look first (grader-error or an answer not graded yet): Park, Carol" in printed
    assert "in Canvas without a graded file (left unchanged): Choi, Erin, Student, Test" in printed


def test_without_the_roster_the_unmatched_file_is_listed(graded, capsys):
    assert export(graded, "--assignment-column", "HW1 (12345)") == 0
    assert "pass --roster): 104, bob_final" in capsys.readouterr().out


@pytest.mark.parametrize("column, message", [
    ("HW2", "has no assignment column 'HW2'; its assignment columns: HW1 (12345), Quiz 1 (12346)"),
])
def test_a_wrong_column_is_one_clear_line(graded, capsys, column, message):
    assert export(graded, "--assignment-column", column) == 2
    assert capsys.readouterr().err.strip() == f"grader: error: {graded / 'export.csv'} {message} " \
        "(create the assignment in Canvas and export again)"


def test_a_file_that_is_not_a_canvas_export_is_refused(graded, capsys):
    (graded / "export.csv").write_text("student_id,score\n101,3\n", encoding="utf-8")
    assert export(graded, "--assignment-column", "HW1") == 2
    assert "is not a Canvas gradebook export" in capsys.readouterr().err


def test_export_lms_maps_file_names_through_the_roster(graded, capsys):
    assert main(["export", "lms", "regression_ab", "--grades", str(graded / "grades"),
                 "--roster", str(graded / "roster.csv")]) == 0
    assert "4 student(s); blank, not final yet: 103" in capsys.readouterr().out
    rows = list(csv.reader(io.StringIO((graded / "grades" / "regression_ab" / "lms_roster.csv")
                                       .read_text(encoding="utf-8-sig"))))
    assert rows == [["student_id", "score"], ["101", "3"], ["103", ""], ["104", "3"], ["2024002", "3"]]


def test_export_before_grading_is_one_clear_line(tmp_path, capsys):
    assert main(["export", "lms", "regression_ab", "--grades", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == \
        f"grader: error: no grades in {tmp_path / 'regression_ab' / 'results'}: run `grader grade regression_ab ...` first"
