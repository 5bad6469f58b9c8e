"""The student's notebook returned with the feedback written into it."""

import nbformat
from nbformat.v4 import new_output

from grader.check.checks import CheckResult
from grader.config import load_assignment
from grader.grade import GradeReport
from grader.report.i18n import Text
from grader.report.notebook_feedback import FEEDBACK_TAG, feedback_notebook
from grader.report.summary import RunSettings
from grader.report.write import write_reports

from conftest import ROOT
from notebooks import make_submission

POLY_LR = load_assignment(ROOT, "poly_lr")
TRACEBACK = ("\x1b[0;31m---------------------------------------------------------------------------\x1b[0m\n"
             "\x1b[0;31mNameError\x1b[0m                                 Traceback (most recent call last)\n"
             "Cell \x1b[0;32mIn[6], line 4\x1b[0m\n      2 for epoc in range(1000):\n----> 4     yhat = nett(X)\n\n"
             "\x1b[0;31mNameError\x1b[0m: name 'nett' is not defined")


def submission(tmp_path, deleted_locked_cell=False):
    """A poly_lr submission with a typo in the training cell, saved with the student's own output."""
    nb = make_submission("poly_lr", {"training": "for epoc in range(1000):\n    yhat = nett(X)",
                                     "why": "학습률이 너무 커서 발산"})
    plot = next(c for c in nb.cells if c.get("id") == "plot-data")
    plot.outputs = [new_output("stream", name="stdout", text="the student's own output\n")]
    if deleted_locked_cell:
        nb.cells = [c for c in nb.cells if c.get("id") != "imports"]
    path = tmp_path / "kim.ipynb"
    nbformat.write(nb, path)
    return path


def report(path, graded_why=True):
    error = {"cell_index": 8, "kind": "error", "ename": "NameError", "evalue": "name 'nett' is not defined",
             "traceback": TRACEBACK, "first_line": "for epoc in range(1000):", "text": ""}
    checks = [CheckResult("diverges", "public", "the loss diverges", 0.0, 3.0, "fail",
                          "first inf at epoch None, expected 34", "the loss never became inf: did training run?"),
              CheckResult("diverges", "hidden", "the loss diverges", 0.0, 3.0, "fail",
                          "first inf at epoch None, expected 42", "the loss differs in kind from the expected")]
    manual = [CheckResult("why", "public", "Why?", 2.0, 2.0, "pass", "", "graded by a TA: 좋아요") if graded_why
              else CheckResult("why", "public", "Why?", 0.0, 2.0, "pending", "", "")]
    return GradeReport("kim", str(path), "error", checks=checks, manual=manual, problems=[error])


def feedback_cells(nb):
    return [(i, c.source) for i, c in enumerate(nb.cells) if FEEDBACK_TAG in c.metadata.get("tags", [])]


def test_each_result_follows_the_cell_it_concerns_in_the_page_language(tmp_path):
    nb = nbformat.reads(feedback_notebook(report(submission(tmp_path)), POLY_LR, Text("ko")), as_version=4)
    nbformat.validate(nb)
    cells = feedback_cells(nb)
    assert [i for i, _ in cells] == [0, 10, 15], "top; after the training cell; after the answer `why`"
    top, error, why = (source for _, source in cells)
    assert "kim 피드백" in top and "점수: 2 / 8" in top and "📝 채점 피드백" in top
    assert nb.cells[9].get("id") == "training" and nb.cells[14].get("id") == "why"
    assert "NameError" in error and "yhat = nett(X)" in error and "\x1b" not in error
    assert "the loss never became inf: did training run?" in error and "(숨겨진 데이터)" in error, "checks too"
    assert "expected 34" not in nb_text(nb) and "expected 42" not in nb_text(nb), "TA messages stay with the TA"
    assert "좋아요" in why and "2 / 2" in why
    plot = next(c for c in nb.cells if c.get("id") == "plot-data")
    assert plot.outputs[0]["text"] == "the student's own output\n", "the student's saved outputs are kept"


def test_a_restored_locked_cell_keeps_the_positions_right(tmp_path):
    path = submission(tmp_path, deleted_locked_cell=True)
    nb = nbformat.reads(feedback_notebook(report(path, graded_why=False), POLY_LR, Text("en")), as_version=4)
    assert [c.get("id") for c in nb.cells if c.get("id") == "imports"] == ["imports"], "as graded: put back"
    index = [i for i, _ in feedback_cells(nb)]
    assert nb.cells[index[1] - 1].get("id") == "training"
    assert "not graded yet: a TA grades this answer by hand" in nb.cells[index[2]].source


def test_written_next_to_the_html_page_and_not_for_a_file_that_is_no_notebook(tmp_path):
    broken = tmp_path / "lee.ipynb"
    broken.write_text("{not json")
    reports = [report(submission(tmp_path)), GradeReport("lee", str(broken), "invalid", reason="not JSON")]
    settings = RunSettings("2026-11-30T10:00:00+09:00", "0.1.0", "2.13.0+cpu", "cpu", True, 2, "ko")
    write_reports(tmp_path / "grades", POLY_LR, reports, settings, [1.0])
    feedback = tmp_path / "grades" / "poly_lr" / "feedback"
    assert sorted(p.name for p in feedback.glob("*.ipynb")) == ["kim.ipynb"]
    assert (feedback / "kim.html").is_file()


def nb_text(nb):
    return "\n".join(c.source for c in nb.cells)
