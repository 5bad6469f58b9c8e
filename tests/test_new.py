"""`grader new`: a scaffold that passes `make test` as generated."""

import shutil
import subprocess
import sys

import pytest

from grader.author.assign import drift
from grader.author.new import scaffold
from grader.check.checks import load_checks
from grader.config import load_assignment
from grader.errors import ConfigError, UsageError

from conftest import ROOT


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    folder = tmp_path_factory.mktemp("course")
    (folder / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "conftest.py", folder / "tests" / "conftest.py")
    written = scaffold(folder, "hw_demo")
    assert {p.relative_to(folder).as_posix() for p in written} == {
        "reference/hw_demo.ipynb", "assignments/hw_demo/hw_demo.ipynb", "assignments/hw_demo/assignment.toml",
        "assignments/hw_demo/checks.py", "assignments/hw_demo/forms.toml", "tests/test_hw_demo.py"}
    return folder


def test_the_scaffold_loads_and_its_student_notebook_is_generated(course):
    assignment = load_assignment(course, "hw_demo")
    assert drift(assignment) == []
    assert [c.name for c in load_checks(assignment)] == ["parameters"]
    assert assignment.task == {"epochs": 30, "lr": 0.1, "seed": 43052}
    training = next(c for c in assignment.template_path.read_text().split('"id": ') if c.startswith('"training"'))
    assert "loss = ???" in training and "loss.backward()" not in training


def test_a_bad_or_existing_name_is_refused(course):
    with pytest.raises(UsageError):
        scaffold(course, "Hw-1")
    with pytest.raises(ConfigError, match="exists already"):
        scaffold(course, "hw_demo")


def test_the_scaffold_passes_its_fairness_proof_and_its_own_test(course):
    proof = subprocess.run([sys.executable, "-m", "grader", "check-reference", "hw_demo", "--device", "cpu",
                            "--cache-dir", str(course / ".cache")], cwd=course, capture_output=True, text=True,
                           timeout=900)
    assert proof.returncode == 0, proof.stdout + proof.stderr
    assert "hw_demo: ok" in proof.stdout and "1 equivalent forms full marks, 1 known mistakes" in proof.stdout
    own_test = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_hw_demo.py"],
                              cwd=course, capture_output=True, text=True, timeout=900)
    assert own_test.returncode == 0, own_test.stdout + own_test.stderr
