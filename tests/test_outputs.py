"""After `grader grade`, every submission has HTML and Markdown feedback with its plots, and
the assignment has its summary page and the three exports; only the PUBLIC reference curve
is ever drawn for students."""

import asyncio
import csv
import json
import os
import shutil

import numpy as np

from grader.check.captured import Captured
from grader.config import load_assignment
from grader.grade import AssignmentGrader
from grader.run.runs import GradeOptions

from conftest import ROOT
from test_cli import grader

SAMPLES = ROOT / "submissions" / "regression_ab"


def test_grading_writes_feedback_with_plots_summary_and_exports(tmp_path, cache_dir):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("correct_matmul.ipynb", "error_name_error.ipynb", "invalid_not_a_notebook.txt"):
        (folder / name).write_bytes((SAMPLES / name).read_bytes())
    done = grader("grade", "regression_ab", str(folder), "--out", str(tmp_path / "grades"), cache_dir=cache_dir)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "grades" / "regression_ab"
    students = ["correct_matmul", "error_name_error", "invalid_not_a_notebook"]
    for student in students:
        page = (out / "feedback" / f"{student}.html").read_text()
        markdown = (out / "feedback" / f"{student}.md").read_text()
        assert '<html lang="ko">' in page, "course.toml makes Korean the default"
        trained = student == "correct_matmul"
        assert page.count("<svg xmlns=") == int(trained)
        assert (f"![손실 곡선]({student}.loss.svg)" in markdown) is trained
        assert (out / "feedback" / f"{student}.loss.svg").is_file() is trained
        results = json.loads((out / "gradescope" / student / "results.json").read_text())
        assert {t["visibility"] for t in results["tests"]} == {"visible", "after_published"}
    notebooks = sorted(p.name for p in (out / "feedback").glob("*.ipynb"))
    assert notebooks == ["correct_matmul.ipynb", "error_name_error.ipynb"], "no notebook for a file that is none"
    annotated = json.loads((out / "feedback" / "error_name_error.ipynb").read_text(encoding="utf-8"))
    feedback = [i for i, c in enumerate(annotated["cells"]) if "grader-feedback" in c["metadata"].get("tags", [])]
    assert "NameError" in "".join(annotated["cells"][feedback[1]]["source"])
    assert annotated["cells"][feedback[1] - 1]["id"] == "training", "it follows the cell that raised it"
    summary = (out / "summary.html").read_text()
    assert summary.count("<svg xmlns=") == 1 and 'href="feedback/error_name_error.html"' in summary
    rows = list(csv.reader((out / "lms.csv").open(encoding="utf-8-sig")))
    assert rows == [["student_id", "score"], ["correct_matmul", "10"], ["error_name_error", "0"],
                    ["invalid_not_a_notebook", "0"]]
    english = grader("grade", "regression_ab", str(folder / "correct_matmul.ipynb"), "--lang", "en",
                     "--out", str(tmp_path / "en"), cache_dir=cache_dir)
    assert english.returncode == 0 and "Score: 10 / 10" in (
        tmp_path / "en" / "regression_ab" / "feedback" / "correct_matmul.md").read_text()


def capture_with_losses(losses) -> Captured:
    return Captured(values={}, arrays={"losses": np.asarray(losses, dtype=np.float64)},
                    trace_record={"losses": "losses", "backward_calls": len(losses), "optimizers": []})


def test_students_see_only_the_public_reference_curve(cache_dir):
    options = GradeOptions(device="cpu", cache_dir=cache_dir, workers=os.cpu_count() or 1)
    assignment_grader = AssignmentGrader(load_assignment(ROOT, "regression_ab"), options)
    assignment_grader.reference = {"public": capture_with_losses([3.0, 2.0]),
                                   "hidden": capture_with_losses([30.0, 20.0])}
    assert assignment_grader.reference_losses == [3.0, 2.0]


def test_an_assignment_opts_in_to_a_heat_map_from_its_checks_py(tmp_path, cache_dir):
    course = tmp_path / "course"
    shutil.copytree(ROOT / "assignments", course / "assignments")
    shutil.copytree(ROOT / "reference", course / "reference")
    checks = course / "assignments" / "regression_ab" / "checks.py"
    checks.write_text(checks.read_text() + (
        "\n\nfrom grader.check.heatmap import heatmap\n\n\n"
        '@heatmap(title="first predictions", rows=["x0", "x1"], columns=["a", "b"])\n'
        "def first_predictions(student):\n"
        '    return student["yhat"][:4].reshape(2, 2)\n'))

    async def grade_one():
        options = GradeOptions(device="cpu", cache_dir=cache_dir, workers=os.cpu_count() or 1)
        assignment_grader = AssignmentGrader(load_assignment(course, "regression_ab"), options)
        await assignment_grader.prepare()
        sample = SAMPLES / "correct_matmul.ipynb"
        return await assignment_grader.grade_file(sample, sample.parent), assignment_grader.reference

    report, reference = asyncio.run(grade_one())
    assert report.score == 10
    assert (report.heatmap["title"], report.heatmap["rows"], report.heatmap["columns"]) == \
        ("first predictions", ["x0", "x1"], ["a", "b"])
    expected = reference["public"]["yhat"][:4].reshape(2, 2).double().numpy()
    assert np.allclose(report.heatmap["values"], expected, atol=1e-6), "from the student's public run"
