"""One source per assignment: the student notebook is generated from the reference's
solution markers, and a drifted one is caught before any kernel starts."""

import shutil
import subprocess
import sys

import nbformat
import pytest

from grader.author.assign import assign, drift, strip_solutions, student_notebook
from grader.config import list_assignments, load_assignment
from grader.errors import ConfigError

from conftest import ROOT


@pytest.mark.parametrize("name", list_assignments(ROOT))
def test_committed_student_notebook_is_what_its_reference_generates(name):
    assert drift(load_assignment(ROOT, name)) == []


def test_fenced_lines_become_the_placeholder_or_the_given_line_indented_like_the_marker():
    source = ("for epoc in range(30):\n    ### BEGIN SOLUTION\n    yhat = a + b*x\n    loss = f(yhat)\n"
              "    ### END SOLUTION\n    ### BEGIN SOLUTION: optimizer = SGD(lr=0.01)\n    optimizer = SGD(lr=0.1)\n"
              "    ### END SOLUTION\n    step()")
    assert strip_solutions(source, "cell") == ("for epoc in range(30):\n    ???\n"
                                               "    optimizer = SGD(lr=0.01)\n    step()")


@pytest.mark.parametrize("source, error", [
    ("### BEGIN SOLUTION\nx = 1", "never ended"),
    ("x = 1\n### END SOLUTION", "without a BEGIN"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another"),
])
def test_unbalanced_markers_are_an_error_naming_the_line(source, error):
    with pytest.raises(ConfigError, match=error):
        strip_solutions(source, "cell")


def test_a_marker_in_a_locked_cell_is_an_error():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx\n### END SOLUTION",
                                                                   metadata={"tags": ["locked"]})])
    with pytest.raises(ConfigError, match="locked cell"):
        student_notebook(nb)


@pytest.fixture
def course(tmp_path):
    """A copy of the course's regression_ab, to drift."""
    shutil.copytree(ROOT / "assignments" / "regression_ab", tmp_path / "assignments" / "regression_ab")
    (tmp_path / "reference").mkdir()
    shutil.copy(ROOT / "reference" / "regression_ab.ipynb", tmp_path / "reference")
    return tmp_path


def drift_answer_cell(course):
    path = course / "assignments" / "regression_ab" / "regression_ab.ipynb"
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.id == "training")
    cell.source = cell.source.replace("range(30)", "range(20)")
    nbformat.write(nb, path)


def test_a_drifted_student_notebook_fails_the_check_with_a_cell_diff_without_importing_torch(course):
    drift_answer_cell(course)
    check = subprocess.run([sys.executable, "-c", "import runpy, sys; sys.argv = ['assign', '--check']; "
                            "runpy.run_module('grader.author.assign', run_name='__main__')"],
                           cwd=course, capture_output=True, text=True, timeout=60)
    assert check.returncode == 3
    assert "cell 'training' source" in check.stdout
    assert "-for epoc in range(20):" in check.stdout and "+for epoc in range(30):" in check.stdout
    imports = subprocess.run([sys.executable, "-c", "import sys, grader.author.assign; print('torch' in sys.modules)"],
                             capture_output=True, text=True, timeout=60)
    assert imports.stdout.strip() == "False"


def test_assign_rewrites_a_drifted_notebook_as_generated(course):
    drift_answer_cell(course)
    assignment = load_assignment(course, "regression_ab")
    assign(assignment)
    assert drift(assignment) == []
    assert assignment.template_path.read_bytes() == (ROOT / "assignments/regression_ab/regression_ab.ipynb").read_bytes()
