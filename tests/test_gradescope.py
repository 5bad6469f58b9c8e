"""The Gradescope autograder zip, run end to end in a root laid out like Gradescope's.

The zip is unpacked into ROOT/source; setup.sh's own install commands run against the
grader copy inside the zip (no network: pip --no-index, torch and the other dependencies
come from this project's .venv through a .pth file); run_autograder then grades
ROOT/submission with PATH holding no bubblewrap, as in a container without user
namespaces, and ROOT/results/results.json is validated against Gradescope's documented
schema (Gradescope's "Autograder Specifications": the results.json format).
"""

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile

import jsonschema
import pytest
import torch

from conftest import ROOT
from grader.check.checks import CheckResult
from grader.grade import GradeReport
from grader.report.exports import gradescope_results
from grader.report.i18n import Text

VISIBILITY = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}
OUTPUT_FORMAT = {"enum": ["text", "html", "simple_format", "md", "ansi"]}
TEST = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "score": {"type": "number"}, "max_score": {"type": "number"}, "status": {"enum": ["passed", "failed"]},
        "name": {"type": "string"}, "name_format": OUTPUT_FORMAT, "number": {"type": "string"},
        "output": {"type": "string"}, "output_format": OUTPUT_FORMAT, "tags": {"type": "array", "items": {"type": "string"}},
        "visibility": VISIBILITY, "extra_data": {"type": "object"},
    },
}
RESULTS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "score": {"type": "number"}, "execution_time": {"type": "number"}, "output": {"type": "string"},
        "output_format": OUTPUT_FORMAT, "test_output_format": OUTPUT_FORMAT, "test_name_format": OUTPUT_FORMAT,
        "visibility": VISIBILITY, "stdout_visibility": VISIBILITY, "extra_data": {"type": "object"},
        "tests": {"type": "array", "items": TEST},
        "leaderboard": {"type": "array", "items": {"type": "object", "required": ["name", "value"]}},
    },
    # the score is "required if not on each test case"
    "anyOf": [{"required": ["score"]}, {"properties": {"tests": {"items": {"required": ["score"]}}}}],
}
SAMPLES = ROOT / "submissions" / "regression_ab"


def grader(*args, cwd=ROOT, env=None):
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def validate(results: dict) -> None:
    jsonschema.validate(results, RESULTS_SCHEMA)
    json.dumps(results, allow_nan=False)  # strict JSON: no NaN or Infinity


def assert_hidden_points_wait_for_publishing(results: dict, hidden_points: float) -> None:
    """One policy: nothing visible before publishing tells the hidden checks' outcome."""
    shown = [t for t in results["tests"] if t["visibility"] == "visible"]
    held = [t for t in results["tests"] if t["visibility"] != "visible"]
    assert held and all(t["visibility"] == "after_published" for t in held)
    assert all(t["extra_data"]["variant"] == "public" for t in shown)
    assert results["visibility"] == "after_published", "the total includes hidden points"
    assert sum(t.get("score", 0) for t in held) == hidden_points
    total_max = sum(t["max_score"] for t in results["tests"])
    assert f"/ {total_max:g}" not in results["output"], "the visible output counts public checks only"


@pytest.fixture(scope="module")
def autograder(tmp_path_factory):
    """A Gradescope-like root after setup.sh ran: (root, environment for run_autograder)."""
    tmp = tmp_path_factory.mktemp("gradescope")
    built = grader("gradescope-autograder", "regression_ab", "--out", str(tmp / "autograder.zip"))
    assert built.returncode == 0, built.stderr
    root = tmp / "autograder"
    for folder in ("source", "submission", "results"):
        (root / folder).mkdir(parents=True)
    with zipfile.ZipFile(tmp / "autograder.zip") as archive:
        archive.extractall(root / "source")
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
    assert modes["setup.sh"] & stat.S_IXUSR and modes["run_autograder"] & stat.S_IXUSR
    assert "course/reference/regression_ab.golden.json" in modes and "course/assignments/regression_ab/checks.py" in modes
    assert not any(name.startswith(("course/assignments/abcde", "course/reference/poly_lr")) for name in modes)
    pin = f"torch=={torch.__version__.split('+')[0]} --index-url https://download.pytorch.org/whl/cpu"
    assert pin in (root / "source" / "setup.sh").read_text(), "the torch the golden values were recorded with"

    # A venv whose dependencies are this project's (torch included), without the grader itself
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    deps = subprocess.run([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (root / "venv" / purelib.split(str(venv) + "/", 1)[1] / "project-deps.pth").write_text(deps + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {
        "GRADER_AUTOGRADER_ROOT": str(root), "GRADER_SKIP_APT": "1", "GRADER_TORCH": "",
        "GRADER_PIP_OPTIONS": "--no-index --no-deps --no-build-isolation --quiet"}
    setup = subprocess.run(["bash", str(root / "source" / "setup.sh")], env=env, capture_output=True, text=True,
                           timeout=600)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "regression_ab: ok, full marks" in setup.stdout, "setup ran the reference once, for the image"
    where = subprocess.run([venv / "bin" / "python", "-c", "import grader; print(grader.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp).stdout
    assert where.startswith(str(venv)), f"the grader was installed from the zip, not used from here: {where}"
    return root, env


def run_autograder(root, env, files: dict) -> tuple[subprocess.CompletedProcess, dict]:
    for old in (root / "submission").iterdir():
        old.unlink()
    (root / "results" / "results.json").unlink(missing_ok=True)
    for name, source in files.items():
        shutil.copy(source, root / "submission" / name)
    # No bubblewrap on PATH, as in a container where no sandbox can be made
    done = subprocess.run(["/bin/bash", str(root / "source" / "run_autograder")], env=env | {"PATH": "/nonexistent"},
                          capture_output=True, text=True, timeout=600)
    return done, json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))


def test_run_autograder_grades_the_submission_and_writes_valid_results(autograder):
    root, env = autograder
    done, results = run_autograder(root, env, {"hw.ipynb": SAMPLES / "hardcoded_numbers.ipynb"})
    assert done.returncode == 0, done.stderr
    assert "grading WITHOUT the sandbox (`bwrap` is not installed)" in done.stderr, "it says so"
    validate(results)
    assert results["score"] == 0 and results["extra_data"]["status"] == "ok", "typed-in numbers earn nothing"
    assert "샌드박스 없이 채점했습니다" in results["output"], "said in the course's language (ko)"
    assert_hidden_points_wait_for_publishing(results, hidden_points=0)
    assert "공개 항목 점수: 0 / 5" in results["output"], "Korean, the course's language; public points only"


def test_no_notebook_still_leaves_results(autograder):
    root, env = autograder
    done, results = run_autograder(root, env, {"notes.txt": SAMPLES / "invalid_not_a_notebook.txt"})
    assert done.returncode == 0, done.stderr
    validate(results)
    assert results["score"] == 0 and "regression_ab.ipynb" in results["output"]


def test_pending_answers_and_hidden_checks_follow_one_policy():
    checks = [CheckResult("parameters", "public", "α, β match", 3.0, 3.0, "pass"),
              CheckResult("parameters", "hidden", "α, β match", 0.0, 3.0, "fail", "x", "differs")]
    manual = [CheckResult("why", "public", "Why?", 0.0, 2.0, "pending", "", "")]
    results = gradescope_results(GradeReport("bob", "bob.ipynb", "ok", checks=checks, manual=manual), Text("en"))
    validate(results)
    assert_hidden_points_wait_for_publishing(results, hidden_points=0)
    assert "Score on public checks: 3 / 5" in results["output"]
    public = gradescope_results(GradeReport("al", "al.ipynb", "ok", checks=checks[:1]), Text("en"))
    assert (public["visibility"], public["output"].split(" · ")[0]) == ("visible", "Score: 3 / 3")


def test_a_grader_fault_still_leaves_results_saying_a_ta_will_look(tmp_path, capsys):
    from grader.cli import main

    (tmp_path / "submission").mkdir()
    shutil.copy(SAMPLES / "correct_matmul.ipynb", tmp_path / "submission" / "hw.ipynb")
    code = main(["gradescope-run", "no_such_assignment", "--submission", str(tmp_path / "submission"),
                 "--results", str(tmp_path / "results" / "results.json"), "--course", str(ROOT)])
    assert code == 3 and "unknown assignment 'no_such_assignment'" in capsys.readouterr().err
    results = json.loads((tmp_path / "results" / "results.json").read_text(encoding="utf-8"))
    validate(results)
    assert "조교가 확인합니다" in results["output"] and "a TA will look at it" in results["output"]
