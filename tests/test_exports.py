"""Exports (LMS CSV, Gradescope results.json) and the TA's summary page, on synthetic reports."""

import csv
import io
import json
import re

from grader.check.checks import CheckResult
from grader.config import load_assignment
from grader.report.document import to_html
from grader.report.exports import gradescope_results, lms_csv
from grader.report.lmsids import read_roster
from grader.grade import GradeReport
from grader.report.i18n import Text
from grader.report.write import write_reports
from grader.report.summary import RunSettings, failure_groups, reason_pattern, summary_page
from grader.said import say

from conftest import ROOT

EN = Text("en")
SETTINGS = RunSettings("2026-11-22T10:00:00+09:00", "0.1.0", "2.13.0+cpu", "cpu", False, 2, "en")
GRADESCOPE_TOP = {"score", "execution_time", "output", "output_format", "visibility", "stdout_visibility",
                  "extra_data", "tests", "leaderboard"}
GRADESCOPE_TEST = {"score", "max_score", "name", "number", "output", "output_format", "tags", "visibility",
                   "status", "extra_data"}


def result(name, variant, points, max_points, status, message="", feedback=""):
    return CheckResult(name, variant, f"{name} matches", points, max_points, status, message, feedback)


def graded(student, alpha0_got=None, status="ok", file=None, problems=()):
    """A regression_ab-like report; a wrong alpha0 fails publicly and under the hidden variant."""
    checks = [result("parameters", "public", 3, 3, "pass"), result("parameters", "hidden", 3, 3, "pass")]
    if alpha0_got is not None:
        checks = [result("parameters", "public", 0, 3, "fail", f"alpha0: got {alpha0_got}, expected 1.471162",
                         f"alpha0: got {alpha0_got}, expected 1.471162"),
                  result("parameters", "hidden", 0, 3, "fail", f"alpha0: got {alpha0_got}, expected 2.718281",
                         "alpha0: 1 of 1 elements differ from the expected values beyond the tolerance")]
    return GradeReport(student, file or f"{student}.ipynb", status, checks=checks, seconds=4.6,
                       problems=list(problems))


def test_gradescope_marks_hidden_checks_and_keeps_their_values_out():
    report = graded("bob", alpha0_got=1.661)
    report.manual = [CheckResult("why", "public", "Why?", 0.0, 2.0, "pending", "x", "x")]
    data = gradescope_results(report, EN)
    assert set(data) <= GRADESCOPE_TOP and all(set(t) <= GRADESCOPE_TEST for t in data["tests"])
    assert (data["score"], data["execution_time"]) == (0.0, 5)
    public, hidden, manual = data["tests"]
    assert (public["visibility"], public["status"], public["number"]) == ("visible", "failed", "1")
    assert public["output"] == "alpha0: got 1.661, expected 1.471162"
    assert hidden["visibility"] == "after_published" and hidden["name"].endswith("(hidden data)")
    assert "2.718281" not in json.dumps(data), "a hidden expected value reached the student's results"
    assert "score" not in manual and "status" not in manual, "an answer no TA graded yet is not a 0"
    assert manual["output"] == "not graded yet: a TA grades this answer by hand"


def test_lms_csv_one_row_per_student_best_file_and_blank_when_a_ta_must_look():
    reports = [graded("alice"), graded("bob", 1.661, file="bob.ipynb"), graded("bob", file="bob_v2.ipynb"),
               graded("carol", status="grader-error"), graded("dave", 0.5, status="error"), graded("erin")]
    reports[-1].manual = [CheckResult("why", "public", "Why?", 0.0, 2.0, "pending", "x", "x")]
    assert lms_csv(reports) == [["student_id", "score"], ["alice", "6"], ["bob", "6"], ["carol", ""],
                                ["dave", "0"], ["erin", ""]], "erin's answer is not graded yet: no final score"


def test_lms_ids_follow_the_download_names_of_canvas_moodle_and_gradescope():
    reports = [graded("kimminsu_12345_67890_hw1"), graded("kimminsu_LATE_12345_67891_hw1-1", 1.661),
               graded("Lee Jiwoo_880123_assignsubmission_file_hw1"), graded("export__submission_4242__hw1"),
               graded("park_hw1")]
    assert lms_csv(reports) == [["student_id", "score"], ["12345", "6"], ["880123", "6"], ["park_hw1", "6"],
                                ["submission_4242", "6"]]


def test_failures_group_by_reason_across_students():
    reports = [graded("alice"), graded("bob", 1.661), graded("carol", 2.59), graded("dave", 0.5),
               graded("zed", 0.0, status="invalid")]
    groups = failure_groups(reports, EN)
    assert groups[0] == ("parameters", "alpha0: got #, expected #", ["bob", "carol", "dave"])
    assert all("zed" not in students for _, _, students in groups), "an unreadable file ran no check"
    assert reason_pattern("yhat: 1000 of 1000 elements at index (772, 0), rel nan") == \
        "yhat: # of # elements at index (#, #), rel nan"
    assert reason_pattern("it stepped with lr 0.01, not 0.1 (lr=0.1); loss inf at epoch 34") == \
        "it stepped with lr 0.01, not # (lr=0.1); loss inf at epoch #"


def test_summary_page_has_histogram_pass_rates_trouble_and_settings():
    error = {"cell_index": 8, "kind": "error", "ename": "NameError", "evalue": "name 'Y' is not defined",
             "traceback": "", "first_line": "for", "text": "cell 9 ('for') raised NameError: name 'Y' is not defined"}
    reports = [graded("alice"), graded("bob", 1.661), graded("eve", 0.5, status="error", problems=[error])]
    reports[2].reason = error["text"]
    names = {r.file: r.student for r in reports}
    title, blocks = summary_page(load_assignment(ROOT, "regression_ab"), reports, SETTINGS, names, EN)
    page = to_html(title, blocks, "en")
    assert page.count('<svg xmlns=') == 1, "the score histogram"
    assert "3 submission file(s); mean 2.00 / 6, median 0" in page
    assert "1/3 (33%)</td>" in page, "parameters passed by 1 of 3"
    assert 'href="feedback/eve.html">eve</a></td><td>error (a cell raised an error)</td>' in page
    assert "name &#x27;Y&#x27; is not defined" in page
    for setting in ("2.13.0+cpu", "<td>sandbox</td><td>off</td>", "<td>device</td><td>cpu</td>"):
        assert setting in page


def test_the_korean_summary_says_messages_reasons_and_cell_errors_in_korean():
    error = {"cell_index": 8, "kind": "error", "ename": "NameError", "evalue": "name 'Y' is not defined",
             "traceback": "", "first_line": "for", "text": "cell 9 (`for`) raised `NameError: ...`"}
    failing = graded("20231234", status="error", problems=[error])
    failing.checks = [CheckResult("parameters", "public", "p", 0, 3, "fail")]
    failing.checks[0].tell(say("alpha0: got 1.5, expected 1.4", "alpha0: 제출한 값 1.5, 정답 값 1.4"))
    failing.set_reason(say("cell 9 (`for`) raised `NameError`", "9번째 셀(`for`)에서 오류가 났습니다: `NameError`"))
    title, blocks = summary_page(load_assignment(ROOT, "regression_ab"), [failing], SETTINGS,
                                 {failing.file: "20231234"}, Text("ko"))
    page = to_html(title, blocks, "ko")
    assert "alpha0: 제출한 값 #, 정답 값 #" in page and "got" not in page
    assert "#번째 셀(<code>for</code>)에서 오류가 났습니다" in page, "the cell's error, grouped"
    assert "<td>error (셀에서 오류가 남)</td><td>9번째 셀(<code>for</code>)에서 오류가 났습니다" in page
    assert "raised" not in page


def test_csv_cells_from_students_never_reach_a_spreadsheet_as_formulas(tmp_path):
    evil = graded("=HYPERLINK(\"http://x\",\"y\")", status="error")
    evil.reason = "@SUM(1+1)"
    reports = [evil, graded("-2+3"), graded("+1"), graded("bob", 1.661)]
    write_reports(tmp_path, load_assignment(ROOT, "regression_ab"), reports, SETTINGS, [3.0, 2.0, 1.0])
    folder = tmp_path / "regression_ab"
    for name in ("gradebook.csv", "lms.csv"):
        data = (folder / name).read_bytes()
        assert data.startswith(b"\xef\xbb\xbf"), "UTF-8 with a byte-order mark, for Excel"
        cells = [cell for row in csv.reader(io.StringIO(data.decode("utf-8-sig"))) for cell in row]
        formulas = [c for c in cells if c.startswith(("=", "@")) or
                    (c.startswith(("+", "-")) and not re.fullmatch(r"[+-][\d.]+", c))]
        assert not formulas
        assert "'=HYPERLINK(\"http://x\",\"y\")" in cells and "'-2+3" in cells and "+1" in cells
    book = list(csv.DictReader(io.StringIO((folder / "gradebook.csv").read_text(encoding="utf-8-sig"))))
    assert [r["reason"] for r in book if r["status"] == "error"] == ["'@SUM(1+1)"]
    assert [(r["student"], r["score"]) for r in book][-1] == ("bob", "0"), "scores stay numbers"


def test_write_reports_writes_every_output(tmp_path):
    reports = [graded("alice"), graded("bob", 1.661)]
    write_reports(tmp_path, load_assignment(ROOT, "regression_ab"), reports, SETTINGS, [3.0, 2.0, 1.0])
    folder = tmp_path / "regression_ab"
    written = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert written == ["feedback/alice.html", "feedback/alice.md", "feedback/bob.html", "feedback/bob.md",
                       "gradebook.csv", "gradescope/alice/results.json", "gradescope/bob/results.json",
                       "lms.csv", "results/alice.json", "results/bob.json", "summary.html"]


def test_gradescope_export_metadata_maps_submissions_to_sids(tmp_path):
    """The layout of submission_metadata.yml in Gradescope's "Export Submissions" zip."""
    metadata = tmp_path / "submission_metadata.yml"
    metadata.write_text("""---
submission_101:
  :submitters:
  - :name: Kim Minsu
    :sid: '2024001'
    :email: kim@uni.ac.kr
  :created_at: 2026-11-20 10:00:00.000000000 +09:00
  :score: 12.0
submission_102:
  :submitters:
  - :email: lee@uni.ac.kr
    :name: Lee Jiwoo
    :sid:
  :created_at: 2026-11-20 11:00:00.000000000 +09:00
""", encoding="utf-8")
    roster = read_roster(metadata)
    assert roster == {"submission_101": "2024001", "submission_102": "lee@uni.ac.kr"}
    reports = [graded("export__submission_101__hw1"), graded("export__submission_102__hw1", 1.661),
               graded("export__submission_103__hw1")]
    assert lms_csv(reports, roster) == [["student_id", "score"], ["2024001", "6"], ["lee@uni.ac.kr", "0"],
                                        ["submission_103", "6"]]


def test_summary_names_causes_first_then_flags_submissions_to_review():
    from grader.check.checks import CONFIRM_FAILED
    from grader.report.suspicious import suspicious_groups
    diagnosed = graded("ann", 1.661)
    diagnosed.diagnoses = [{"name": "no_zero_grad", "cause": "zero_grad 없음", "cause_en": "no zero_grad"}]
    typed_in = graded("ty")  # its values match, but nothing trained
    copied = [graded(s, 1.661) for s in ("cy", "dee")]
    for r in copied:
        r.content_hash, r.training = "same", {"losses": [1.0], "optimizers": [{"steps": 30}]}
    public_only = graded("pat", 1.661)
    public_only.training = {"losses": [1.0], "optimizers": [{"steps": 30}]}
    by_hand = graded("han")  # a hand-written update: no optimizer, but a loss was backpropagated
    by_hand.training = {"losses": [1.0] * 30, "optimizers": []}
    public_only.checks[0].message = str(CONFIRM_FAILED)
    reports = [diagnosed, typed_in, public_only, by_hand, *copied]
    assert suspicious_groups(reports, EN) == [("values match although no training ran", ["ty"]),
                                              ("values match the public run but not the hidden one", ["pat"]),
                                              ("identical files from different students", ["cy", "dee"])]
    page = to_html(*summary_page(load_assignment(ROOT, "regression_ab"), reports, SETTINGS,
                                 {r.file: r.student for r in reports}, EN), "en")
    assert page.index("Diagnosed causes") < page.index("Other failures") < page.index("Submissions to review")
    assert page.index("Submissions to review") < page.index("Score histogram"), "the first table names causes"


def test_full_marks_fall_in_the_histograms_last_bin():
    from grader.report.plots import histogram_svg
    assert histogram_svg([10.0] * 3, 10.0, EN) != histogram_svg([], 10.0, EN), "full marks are drawn"
