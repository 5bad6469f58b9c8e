"""Re-running `grader grade` grades only what changed; --force re-grades everything."""

import shutil

import nbformat
from test_cli import grader

from conftest import ROOT

SAMPLES = ROOT / "submissions" / "regression_ab"


def test_only_new_or_changed_files_are_graded_again(tmp_path):
    cache_dir = tmp_path / "cache"  # its own: other tests grade the same samples
    folder = tmp_path / "in"
    folder.mkdir()
    alice = nbformat.read(SAMPLES / "correct_matmul.ipynb", as_version=4)
    alice.cells.append(nbformat.v4.new_markdown_cell(f"alice, {tmp_path.name}"))  # content no other test graded
    nbformat.write(alice, folder / "alice.ipynb")
    shutil.copy(SAMPLES / "wrong_10_epochs.ipynb", folder / "bob.ipynb")
    out = ["--out", str(tmp_path / "grades")]

    first = grader("grade", "regression_ab", str(folder), *out, cache_dir=cache_dir)
    assert "2 graded (2 ok)" in first.stdout, first.stderr

    shutil.copy(SAMPLES / "wrong_lr_0.01.ipynb", folder / "carol.ipynb")  # a late submission
    resubmission = nbformat.read(SAMPLES / "correct_manual_update.ipynb", as_version=4)
    resubmission.cells.append(nbformat.v4.new_markdown_cell(f"resubmitted for {tmp_path.name}"))  # new content
    nbformat.write(resubmission, folder / "bob.ipynb")
    second = grader("grade", "regression_ab", str(folder), *out, cache_dir=cache_dir)
    assert "3 graded (3 ok; 1 unchanged, reused)" in second.stdout, second.stdout + second.stderr
    assert "alice: 10/10 ok (unchanged, reused)" in second.stderr
    assert "bob: 10/10 ok (" in second.stderr and "bob: 10/10 ok (unchanged" not in second.stderr

    forced = grader("grade", "regression_ab", str(folder), *out, "--force", cache_dir=cache_dir)
    assert "3 graded (3 ok)" in forced.stdout
    assert "reused" not in forced.stderr


def test_every_part_of_the_grader_is_in_the_cache_key():
    """Cached references and grades are keyed on the grader's source: the kernel preamble
    that records training, the checks engine and the report writers alike."""
    from grader.check.reference import grader_files

    package = ROOT / "grader"
    assert set(grader_files()) == {f"grader/{p.relative_to(package)}" for p in package.rglob("*.py")}
    assert {"grader/run/kernel/preamble.py", "grader/check/compare.py", "grader/report/feedback.py"} <= set(grader_files())
