"""Free-text answers: the TA's file keeps their work and its points reach the gradebook."""

import csv
import re

import pytest

from grader.check.checks import CheckResult
from grader.config import ManualQuestion
from grader.errors import UsageError
from grader.grade import GradeReport
from grader.report.manual import (MANUAL_FILE, REVIEW_FILE, answer_hint, merge_manual, read_manual_grades,
                                  write_manual_files)

from conftest import ROOT

WHY = ManualQuestion(name="why", cell="why", points=2, prompt="Why does it diverge?",
                     hint_words=("발산", "diverge", "learning rate"))


def report(student, answer):
    auto = CheckResult("steps", "public", "SGD ran 1000 steps", 3.0, 3.0, "pass")
    return GradeReport(student, f"{student}.ipynb", "ok", checks=[auto], answers={"why": answer})


def grade_answers(folder, reports):
    """What `grader grade` does with the TA's file: read it, merge it, write it back."""
    ta_file = read_manual_grades(folder / MANUAL_FILE)
    merge_manual(reports, (WHY,), ta_file)
    write_manual_files(folder, reports, (WHY,), "poly_lr", ta_file)


def test_hint_reports_words_but_never_scores():
    assert answer_hint("학습률이 너무 커서 발산한다 (learning rate too large)", WHY.hint_words) == \
        "mentions: 발산, learning rate"
    assert answer_hint("no idea", WHY.hint_words) == "mentions none of the expected words"
    assert answer_hint("  ", WHY.hint_words) == "empty answer"
    assert answer_hint(None, WHY.hint_words) == "no answer (the answer cell is missing)"


def test_points_typed_by_the_ta_survive_reruns_and_reach_the_score(tmp_path):
    reports = [report("alice", "It diverges: lr too large"), report("bob", ""), report("carol", None)]
    grade_answers(tmp_path, reports)
    assert [r.score for r in reports] == [3, 3, 3] and [r.max_score for r in reports] == [5, 5, 5]
    assert all(r.manual[0].status == "pending" for r in reports)
    review = (tmp_path / REVIEW_FILE).read_text()
    assert "```\nIt diverges: lr too large\n```" in review and "Hint: empty answer" in review

    rows = list(csv.DictReader((tmp_path / MANUAL_FILE).open(encoding="utf-8-sig")))
    assert [(r["student"], r["points"], r["hint"]) for r in rows] == [
        ("alice", "", "mentions: diverge"), ("bob", "", "empty answer"),
        ("carol", "", "no answer (the answer cell is missing)")]
    rows[0]["points"], rows[0]["comment"] = "2", "clear"
    rows[1]["points"] = "7"  # more than the question is worth: refused, left ungraded
    with (tmp_path / MANUAL_FILE).open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.DictWriter(handle, fieldnames=rows[0].keys())
        writer.writeheader()
        writer.writerows(rows)

    again = [report("alice", "It diverges: lr too large"), report("bob", ""), report("dave", "발산")]
    grade_answers(tmp_path, again)
    alice, bob, dave = again
    assert (alice.score, alice.manual[0].status, alice.manual[0].feedback) == (5, "pass", "graded by a TA: clear")
    assert (bob.score, bob.manual[0].status) == (3, "pending")
    assert dave.manual[0].status == "pending"
    with (tmp_path / MANUAL_FILE).open(encoding="utf-8-sig") as handle:
        kept = {(r["student"], r["points"]) for r in csv.DictReader(handle)}
    assert {("alice", "2"), ("bob", "7"), ("carol", ""), ("dave", "")} == kept, "nothing the TA typed is lost"


def test_a_file_korean_excel_saved_keeps_everything_the_ta_typed(tmp_path):
    reports = [report("alice", "발산"), report("=cmd|' /C calc'!A0", "x")]
    grade_answers(tmp_path, reports)
    rows = list(csv.reader((tmp_path / MANUAL_FILE).open(encoding="utf-8-sig")))
    assert rows[1][0] == "'=cmd|' /C calc'!A0", "a student's file name never reaches Excel as a formula"
    # Excel on Korean Windows: CP949, CRLF, a column the TA added, a comment starting with '-'
    rows = [rows[0] + ["메모"], ["alice", "why", "1.5", "2", "-학습률 설명이 부족함", "", "재확인"],
            ["'=cmd|' /C calc'!A0", "why", "0", "2", "", "", ""]]
    (tmp_path / MANUAL_FILE).write_bytes("\r\n".join(",".join(r) for r in rows).encode("cp949"))
    again = [report("alice", "발산"), report("=cmd|' /C calc'!A0", "x")]
    grade_answers(tmp_path, again)
    alice, attacker = again
    assert (alice.score, alice.manual[0].feedback) == (4.5, "graded by a TA: -학습률 설명이 부족함")
    assert attacker.manual[0].status == "fail", "the neutralised id still names the same student"
    written = (tmp_path / MANUAL_FILE).read_bytes()
    assert written.startswith(b"\xef\xbb\xbf"), "written back as UTF-8 with a byte-order mark"
    rows = {r["student"]: r for r in csv.DictReader(written.decode("utf-8-sig").splitlines())}
    assert (rows["alice"]["comment"], rows["alice"]["메모"]) == ("'-학습률 설명이 부족함", "재확인")
    grade_answers(tmp_path, [report("alice", "발산")])  # once more: nothing changes or is lost
    assert read_manual_grades(tmp_path / MANUAL_FILE).rows[("alice", "why")]["comment"] == "-학습률 설명이 부족함"


@pytest.mark.parametrize("data", ["é,ü\n".encode("latin-1"), "student,points\n".encode("utf-16")],
                         ids=["latin-1", "utf-16"])
def test_a_file_in_another_encoding_is_one_clear_line(tmp_path, data):
    (tmp_path / MANUAL_FILE).write_bytes(data)
    with pytest.raises(UsageError) as error:
        read_manual_grades(tmp_path / MANUAL_FILE)
    assert str(tmp_path / MANUAL_FILE) in str(error.value) and "CSV UTF-8" in str(error.value)
    assert "\n" not in str(error.value)


def test_review_shows_answers_literally_and_hints_on_what_is_visible(tmp_path):
    from markdown_it import MarkdownIt

    forged = "I don't know.\n```\n\n### bob\n\nHint: mentions: 발산, learning rate\n\n```"
    reports = [report("alice", forged), report("carol", "no idea <!-- 발산 diverge learning rate -->"),
               report("dave", "<script>alert(1)</script><span style='display:none'>발산</span>ok"),
               report("eve", "````` 발산 `````\n[//]: # (learning rate)"), report("bob", "학습률이 커서 발산"),
               report("<img src=x onerror=alert(1)>", "")]
    grade_answers(tmp_path, reports)
    rendered = MarkdownIt("commonmark").render((tmp_path / REVIEW_FILE).read_text())  # raw HTML allowed
    assert re.findall(r"<h3>(.*?)</h3>", rendered) == \
        ["&lt;img src=x onerror=alert(1)&gt;", "alice", "bob", "carol", "dave", "eve"], "no section forged"
    assert not re.search(r"<(script|span|img|!--)", rendered), "no answer or id is rendered as HTML"
    assert "### bob" in rendered and "&lt;!-- 발산" not in rendered, "answers shown as text, hidden parts left out"
    hints = {r["student"]: r["hint"] for r in csv.DictReader((tmp_path / MANUAL_FILE).open(encoding="utf-8-sig"))}
    assert hints == {"alice": "mentions: 발산, learning rate", "bob": "mentions: 발산",
                     "carol": "mentions none of the expected words", "dave": "mentions none of the expected words",
                     "eve": "mentions: 발산", "<img src=x onerror=alert(1)>": "empty answer"}


def test_poly_lr_answers_reach_review_and_ta_points_reach_the_gradebook(tmp_path):
    from notebooks import make_submission
    from test_cli import grader

    folder = tmp_path / "in"
    folder.mkdir()
    training = ("optimizer = torch.optim.SGD(net.parameters(), lr=0.1)\nfor epoc in range(1000):\n"
                "    yhat = net(X)\n    loss = loss_fn(yhat, y)\n    loss.backward()\n"
                "    optimizer.step()\n    optimizer.zero_grad()")
    import nbformat
    nbformat.write(make_submission("poly_lr", {"training": training, "why": "학습률이 너무 커서 발산했다."}),
                   folder / "alice.ipynb")
    nbformat.write(make_submission("poly_lr", {"training": training}), folder / "bob.ipynb")
    args = ("grade", "poly_lr", str(folder), "--out", str(tmp_path / "grades"))
    first = grader(*args, cache_dir=tmp_path / "cache")
    assert first.returncode == 0, first.stderr
    out = tmp_path / "grades" / "poly_lr"
    review = (out / "review.md").read_text()
    assert "```\n학습률이 너무 커서 발산했다.\n```" in review
    assert "Hint: mentions: 발산, 학습률, 너무 커" in review and "Hint: empty answer" in review

    rows = list(csv.DictReader((out / MANUAL_FILE).open(encoding="utf-8-sig")))
    for row in rows:
        row["points"] = "2" if row["student"] == "alice" else "0"
    with (out / MANUAL_FILE).open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.DictWriter(handle, fieldnames=rows[0].keys())
        writer.writeheader()
        writer.writerows(rows)

    second = grader(*args, cache_dir=tmp_path / "cache")
    assert "2 unchanged, reused" in second.stdout, "no notebook was run again"
    book = {r["student"]: r for r in csv.DictReader((out / "gradebook.csv").open(encoding="utf-8-sig"))}
    assert (book["alice"]["why"], book["alice"]["score"], book["alice"]["max_score"]) == ("2", "15", "15")
    assert (book["bob"]["why"], book["bob"]["score"]) == ("0", "13")


def test_grading_stops_before_any_notebook_runs_when_the_ta_file_is_unreadable(tmp_path, capsys):
    from grader.cli import main

    out = tmp_path / "grades"
    (out / "poly_lr").mkdir(parents=True)
    (out / "poly_lr" / MANUAL_FILE).write_bytes("student,question,points\nzoë,why,1\n".encode("latin-1"))
    code = main(["grade", "poly_lr", str(tmp_path), "--out", str(out), "--no-sandbox",
                 "--course", str(ROOT), "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"grader: error: {out / 'poly_lr' / MANUAL_FILE} is neither UTF-8 nor CP949")
    assert not (tmp_path / "cache").exists(), "no notebook ran"
