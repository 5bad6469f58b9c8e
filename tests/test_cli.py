"""The `grader` command as a TA runs it."""

import csv
import os
import subprocess
import sys

import pytest

from conftest import ROOT


def grader(*args, cache_dir, cwd=ROOT):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "grader", *args, "--cache-dir", str(cache_dir)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_grade_writes_one_row_and_one_feedback_per_file(tmp_path, cache_dir):
    samples = ROOT / "submissions" / "regression_ab"
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("correct_matmul.ipynb", "invalid_not_a_notebook.txt", "error_name_error.ipynb"):
        (folder / name).write_bytes((samples / name).read_bytes())
    (folder / "empty.ipynb").write_bytes(b"")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    done = grader("grade", "regression_ab", str(folder), "--out", str(tmp_path / "grades"), cache_dir=cache_dir)
    assert done.returncode == 0, done.stderr
    assert "regression_ab: 4 graded (1 ok, 1 error, 2 invalid" in done.stdout

    rows = list(csv.DictReader((tmp_path / "grades" / "regression_ab" / "gradebook.csv").open(encoding="utf-8-sig")))
    assert sorted((r["student"], r["score"], r["status"]) for r in rows) == [
        ("correct_matmul", "10", "ok"), ("empty", "0", "invalid"),
        ("error_name_error", "0", "error"), ("invalid_not_a_notebook", "0", "invalid")]
    assert {r["student"]: r["reason"] for r in rows}["empty"] == "the file is empty"
    feedback = sorted(p.name for p in (tmp_path / "grades" / "regression_ab" / "feedback").glob("*.md"))
    assert feedback == ["correct_matmul.md", "empty.md", "error_name_error.md", "invalid_not_a_notebook.md"]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before, "submissions must never be modified"


def test_feedback_never_shows_hidden_values(tmp_path, cache_dir):
    done = grader("grade", "regression_ab", str(ROOT / "submissions" / "regression_ab" / "hardcoded_numbers.ipynb"),
                  "--out", str(tmp_path), "--lang", "en", cache_dir=cache_dir)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "regression_ab" / "feedback" / "hardcoded_numbers.md").read_text()
    assert "(hidden data)" in text
    import json
    results = json.loads((tmp_path / "regression_ab" / "results" / "hardcoded_numbers.json").read_text())
    hidden_messages = [c["message"] for c in results["checks"] if c["variant"] != "public" and c["status"] != "pass"]
    assert hidden_messages, "the TA's results keep the detail"
    for message in hidden_messages:
        for number in __import__("re").findall(r"expected (-?[\d.]+)", message):
            assert number not in text
    assert "2718" not in text


@pytest.mark.parametrize("args, message", [
    (("grade", "nope", "submissions"), "unknown assignment 'nope'"),
    (("grade", "regression_ab", "no/such/folder"), "no such file or folder: no/such/folder"),
    (("grade", "regression_ab", "submissions", "--workers", "0"), "--workers must be at least 1"),
    (("grade", "regression_ab", "submissions", "--bogus"), "unrecognized arguments: --bogus"),
    (("grade", "regression_ab", "submissions", "--device", "cuda"), None),
])
def test_bad_input_is_one_clear_line_and_nonzero_exit(args, message, cache_dir):
    import torch

    if message is None:
        if torch.cuda.is_available():
            pytest.skip("a GPU is present, so --device cuda is valid here")
        message = "--device cuda was asked for, but torch sees no CUDA GPU here"
    done = grader(*args, cache_dir=cache_dir)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


def test_help_lists_the_commands(cache_dir):
    done = subprocess.run([sys.executable, "-m", "grader", "--help"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0 and "grade" in done.stdout and "check-reference" in done.stdout


def test_check_reference_requires_full_marks_and_matching_golden(cache_dir):
    done = grader("check-reference", "regression_ab", cache_dir=cache_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "regression_ab: ok, full marks 10/10; golden values for torch" in done.stdout


def test_check_reference_fails_when_golden_values_move(tmp_path, cache_dir):
    import shutil

    course = tmp_path / "course"
    shutil.copytree(ROOT / "assignments", course / "assignments")
    shutil.copytree(ROOT / "reference", course / "reference")
    golden = course / "reference" / "regression_ab.golden.json"
    golden.write_text(golden.read_text().replace('"values": [1.4711616039276123]', '"values": [1.4721616039276123]'))
    done = grader("check-reference", "regression_ab", "--course", str(course), cache_dir=cache_dir)
    assert done.returncode == 3
    assert "[public] alpha0" in done.stdout and "FAIL" in done.stdout
