"""`grader release` / `make release`: what students receive, free of hidden material,
with self-checks that work in the released notebook and never count at grading."""

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys

import nbformat
import pytest

from grader.config import load_assignment
from grader.errors import ConfigError
from grader.run.execute import RunOptions, run_notebook
from grader.author.release import build_release, find_leaks, hidden_material
from grader.author.selfcheck import load_selfchecks, strip_selfcheck_lines

from conftest import ROOT, points
from notebooks import student_notebook

CORRECT = ("for epoc in range(30):\n    yhat = alpha0 + beta0 + alpha1*x + beta1*x\n    loss = loss_fn(yhat,y)\n"
           "    loss.backward()\n    optimizr.step()\n    optimizr.zero_grad()")
GOLDEN = json.loads((ROOT / "reference" / "regression_ab.golden.json").read_text())
GOLDEN_VALUES = next(iter(GOLDEN.values()))["variants"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    folder, _ = build_release(load_assignment(ROOT, "regression_ab"), tmp_path_factory.mktemp("dist"))
    return folder


def course_copy(tmp_path):
    course = tmp_path / "course"
    shutil.copytree(ROOT / "assignments", course / "assignments")
    shutil.copytree(ROOT / "reference", course / "reference")
    return course


def release(*args):
    return subprocess.run([sys.executable, "-m", "grader", "release", *args], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)


def released(bundle, training: str) -> nbformat.NotebookNode:
    nb = nbformat.read(bundle / "regression_ab.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.get("id") == "training":
            cell.source = training
    return nb


def test_bundle_holds_the_notebook_without_outputs_and_the_selfchecks(bundle):
    files = sorted(str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file())
    assert files == ["regression_ab.ipynb", "tests/q1.py"]
    nb = nbformat.read(bundle / "regression_ab.ipynb", as_version=4)
    assert all(not c.outputs and c.execution_count is None for c in nb.cells if c.cell_type == "code")
    template_ids = [c.id for c in student_notebook("regression_ab").cells]
    assert [c.id for c in nb.cells if not c.id.startswith("selfcheck-")] == template_ids
    intro = next(c.source for c in nb.cells if c.id == "selfcheck-intro")
    assert "자가 점검 (점수가 아닙니다)" in intro and "Self-checks (not your grade)" in intro
    ids = [c.id for c in nb.cells]
    assert ids.index("selfcheck-q1") == ids.index("training") + 1
    assert 'name = \'q1\'' in (bundle / "tests" / "q1.py").read_text()


def test_locked_cells_cannot_be_edited_or_deleted_in_jupyter(bundle):
    nb = nbformat.read(bundle / "regression_ab.ipynb", as_version=4)
    locked = [c for c in nb.cells if "locked" in c.metadata.get("tags", [])]
    assert locked and all(c.metadata.get("editable") is False and c.metadata.get("deletable") is False
                          for c in locked)
    assert all("editable" not in c.metadata for c in nb.cells if "answer" in c.metadata.get("tags", []))


def test_public_data_is_shipped_next_to_the_notebook(tmp_path):
    course = course_copy(tmp_path)
    (course / "assignments" / "regression_ab" / "public").mkdir()
    (course / "assignments" / "regression_ab" / "public" / "points.csv").write_text("x,y\n0.1,3.5\n")
    folder, _ = build_release(load_assignment(course, "regression_ab"), tmp_path / "dist")
    assert (folder / "points.csv").read_text() == "x,y\n0.1,3.5\n"


def test_bundle_contains_no_hidden_material(bundle):
    secrets = hidden_material(load_assignment(ROOT, "regression_ab"))
    texts = {s.text for s in secrets}
    assert {s.kind for s in secrets} == {"hidden variant", "reference value", "check code", "solution"}
    assert {"torch.manual_seed(2718)", "2718", "1.434057", "1.4341", "0.9773821"} <= texts, \
        "the hidden seed, hidden alpha0 (6 digits and 4 decimals) and the public loss"
    assert "yhat = alpha0 + beta0 + alpha1*x + beta1*x" in texts and "PARAMETER_ATOL = 1e-4" in texts
    assert "loss.backward()" not in texts, "a line every student writes is on the allow-list"
    assert find_leaks(bundle, secrets) == []


HIDDEN_ALPHA0 = GOLDEN_VALUES["hidden"]["alpha0"]["values"][0]
PUBLIC_YHAT = GOLDEN_VALUES["public"]["yhat"]["values"][772]


@pytest.mark.parametrize("planted, kind", [
    ("torch.manual_seed(2718)", "hidden variant"),
    ("try the seed 2718 too", "hidden variant"),
    (f"alpha0 should be {HIDDEN_ALPHA0:.4f}", "reference value"),
    (f"alpha0 = {HIDDEN_ALPHA0!r}", "reference value"),
    (f"yhat[772] = {PUBLIC_YHAT:.6g}", "reference value"),
    ("assert_close(student[\"loss\"], reference[\"loss\"], name=\"loss\", rtol=1e-4, atol=1e-6)", "check code"),
    ("    yhat = alpha0 + beta0 + alpha1*x + beta1*x", "solution"),
])
@pytest.mark.parametrize("where", ["regression_ab.ipynb", "tests/q1.py"])
def test_each_kind_of_hidden_material_is_caught(bundle, tmp_path, planted, kind, where):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    if where.endswith(".ipynb"):
        nb = nbformat.read(copy / where, as_version=4)
        nb.cells.append(nbformat.v4.new_markdown_cell(f"힌트: {planted}"))
        nbformat.write(nb, copy / where)
    else:
        (copy / where).write_text((copy / where).read_text() + f"\n# {planted}\n")
    leaks = find_leaks(copy, hidden_material(load_assignment(ROOT, "regression_ab")))
    assert any(leak.startswith(f"{where}: {kind} ") for leak in leaks), leaks


def test_release_command_builds_and_refuses_a_leaking_selfcheck(tmp_path):
    course = course_copy(tmp_path)
    done = release("--course", str(course), "--out", str(tmp_path / "dist"))
    assert done.returncode == 0, done.stderr
    assert "regression_ab: " in done.stdout and "none of " in done.stdout
    toml = course / "assignments" / "regression_ab" / "selfchecks.toml"
    toml.write_text(toml.read_text().replace('message = "', 'message = "hint: loss.backward() / '))
    shutil.rmtree(tmp_path / "dist")
    done = release("--course", str(course), "--out", str(tmp_path / "dist"))
    assert done.returncode == 0, "loss.backward() is a line every student writes: on the allow-list"
    toml.write_text(toml.read_text().replace('hint: loss.backward()', 'hint: loss = loss_fn(yhat,y)'))
    shutil.rmtree(tmp_path / "dist")
    done = release("--course", str(course), "--out", str(tmp_path / "dist"))
    assert done.returncode == 3
    assert "cannot release regression_ab" in done.stderr
    assert "tests/q1.py: solution 'loss = loss_fn(yhat,y)' (from reference/regression_ab.ipynb)" in done.stderr
    assert not (tmp_path / "dist" / "regression_ab").exists(), "nothing is released when something leaks"


def selfcheck_output(nb: nbformat.NotebookNode) -> str:
    [cell] = [c for c in nb.cells if c.get("id") == "selfcheck-q1"]
    return "\n".join(o.get("data", {}).get("text/plain", "") + o.get("text", "") for o in cell.outputs)


def test_selfchecks_report_easy_mistakes_in_the_released_notebook(bundle):
    answers = {
        "correct": CORRECT,
        "sum_not_mean": CORRECT.replace("loss_fn(yhat,y)", "torch.sum((y - yhat)**2)"),  # the loss becomes nan
        "no_backward": CORRECT.replace("    loss.backward()\n", ""),  # nothing trains
        "left_blank": next(c.source for c in student_notebook("regression_ab").cells if c.id == "training"),  # ???
    }
    assignment = load_assignment(ROOT, "regression_ab")

    async def run_all():
        # As a student runs it on their own machine: no grading sandbox.
        options = RunOptions(capture=(), public_dir=bundle, sandbox=False)
        runs = [run_notebook(released(bundle, source), assignment.execution, options) for source in answers.values()]
        return dict(zip(answers, await asyncio.gather(*runs)))

    results = asyncio.run(run_all())
    out = {name: selfcheck_output(result.notebook) for name, result in results.items()}
    assert out["correct"].strip() == "q1 results: All test cases passed!", out["correct"]
    assert "`loss` contains nan or inf: did training diverge?" in out["sum_not_mean"]
    assert "alpha0 still has its initial value 0.5" in out["no_backward"]
    assert "contains nan" not in out["no_backward"]
    assert "the cell above raised an error (SyntaxError" in out["left_blank"], out["left_blank"]
    assert "not defined yet" not in out["left_blank"], "one cause, said once"
    for name, text in out.items():
        assert "1.471" not in text and "0.977" not in text, f"{name}: a self-check printed a reference value"
    assert [p.ename for p in results["left_blank"].problems] == ["SyntaxError"]
    assert all(not r.problems for name, r in results.items() if name != "left_blank"), "self-check cells ran cleanly"


def test_released_notebook_is_graded_without_its_selfcheck_cells(bundle, grade):
    nb = released(bundle, CORRECT)
    mixed = next(c for c in nb.cells if c.get("id") == "result")
    mixed.source = 'grader.check("q1")\nprint(alpha0+beta0)'  # a student copied a check into their own cell
    report = grade("regression_ab", {"released_correct": nb})["released_correct"]
    assert (report.score, report.status, report.problems) == (report.max_score, "ok", []), (report.reason, points(report))


def test_only_top_level_otter_lines_are_removed_at_grading():
    assert strip_selfcheck_lines('import otter\ngrader = otter.Notebook(tests_dir="tests")') == ""
    assert strip_selfcheck_lines('x = 1\ngrader.check("q1")  # mine') == "x = 1"
    kept = 'if True:\n    grader.check("q1")\nprint(grader.check)'
    assert strip_selfcheck_lines(kept) == kept


@pytest.mark.parametrize("toml, message", [
    ('[[question]]\nname = "q1"\nafter = "nope"\n', "`after`, the id of a cell"),
    ('[[question]]\nname = "q1"\nafter = "training"\nshape = 3\n', "malformed"),
    ('[[question]]\nname = "q1"\nafter = "training"\ncolour = "red"\n', "unknown key(s) ['colour']"),
    ('[[question]]\nname = "q1"\nafter = "training"\n[[question.expect]]\ntest = "x ="\nmessage = "m"\n',
     "not a Python expression"),
    ('[[question]]\nname = "q1"\nafter = "training"\nwritten = ["why"]\n', "`written` names no cell"),
])
def test_selfcheck_files_are_validated(tmp_path, toml, message):
    (tmp_path / "selfchecks.toml").write_text(toml)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_selfchecks(tmp_path, {"training": ""})
