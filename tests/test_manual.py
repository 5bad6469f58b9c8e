"""Free-text answers: the TA's file keeps their work and its points reach the gradebook."""

import csv

from grader.check.checks import CheckResult
from grader.config import ManualQuestion
from grader.grade import GradeReport
from grader.report.manual import MANUAL_FILE, REVIEW_FILE, answer_hint, merge_manual, write_manual_files

WHY = ManualQuestion(name="why", cell="why", points=2, prompt="Why does it diverge?",
                     hint_words=("발산", "diverge", "learning rate"))


def report(student, answer):
    auto = CheckResult("steps", "public", "SGD ran 1000 steps", 3.0, 3.0, "pass")
    return GradeReport(student, f"{student}.ipynb", "ok", checks=[auto], answers={"why": answer})


def test_hint_reports_words_but_never_scores():
    assert answer_hint("학습률이 너무 커서 발산한다 (learning rate too large)", WHY.hint_words) == \
        "mentions: 발산, learning rate"
    assert answer_hint("no idea", WHY.hint_words) == "mentions none of the expected words"
    assert answer_hint("  ", WHY.hint_words) == "empty answer"
    assert answer_hint(None, WHY.hint_words) == "no answer (the answer cell is missing)"


def test_points_typed_by_the_ta_survive_reruns_and_reach_the_score(tmp_path):
    reports = [report("alice", "It diverges: lr too large"), report("bob", ""), report("carol", None)]
    merge_manual(reports, (WHY,), tmp_path / MANUAL_FILE)
    write_manual_files(tmp_path, reports, (WHY,), "poly_lr")
    assert [r.score for r in reports] == [3, 3, 3] and [r.max_score for r in reports] == [5, 5, 5]
    assert all(r.manual[0].status == "pending" for r in reports)
    review = (tmp_path / REVIEW_FILE).read_text()
    assert "> It diverges: lr too large" in review and "Hint: empty answer" in review

    rows = list(csv.DictReader((tmp_path / MANUAL_FILE).open()))
    assert [(r["student"], r["points"], r["hint"]) for r in rows] == [
        ("alice", "", "mentions: diverge"), ("bob", "", "empty answer"),
        ("carol", "", "no answer (the answer cell is missing)")]
    rows[0]["points"], rows[0]["comment"] = "2", "clear"
    rows[1]["points"] = "7"  # more than the question is worth: refused, left ungraded
    with (tmp_path / MANUAL_FILE).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=rows[0].keys())
        writer.writeheader()
        writer.writerows(rows)

    again = [report("alice", "It diverges: lr too large"), report("bob", ""), report("dave", "발산")]
    merge_manual(again, (WHY,), tmp_path / MANUAL_FILE)
    write_manual_files(tmp_path, again, (WHY,), "poly_lr")
    alice, bob, dave = again
    assert (alice.score, alice.manual[0].status, alice.manual[0].feedback) == (5, "pass", "graded by a TA: clear")
    assert (bob.score, bob.manual[0].status) == (3, "pending")
    assert dave.manual[0].status == "pending"
    kept = {(r["student"], r["points"]) for r in csv.DictReader((tmp_path / MANUAL_FILE).open())}
    assert {("alice", "2"), ("bob", "7"), ("carol", ""), ("dave", "")} == kept, "nothing the TA typed is lost"


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
    assert "> 학습률이 너무 커서 발산했다." in review
    assert "Hint: mentions: 발산, 학습률, 너무 커" in review and "Hint: empty answer" in review

    rows = list(csv.DictReader((out / MANUAL_FILE).open()))
    for row in rows:
        row["points"] = "2" if row["student"] == "alice" else "0"
    with (out / MANUAL_FILE).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=rows[0].keys())
        writer.writeheader()
        writer.writerows(rows)

    second = grader(*args, cache_dir=tmp_path / "cache")
    assert "2 unchanged, reused" in second.stdout, "no notebook was run again"
    book = {r["student"]: r for r in csv.DictReader((out / "gradebook.csv").open())}
    assert (book["alice"]["why"], book["alice"]["score"], book["alice"]["max_score"]) == ("2", "15", "15")
    assert (book["bob"]["why"], book["bob"]["score"]) == ("0", "13")
