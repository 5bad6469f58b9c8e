"""The sandbox's pieces that need no kernel: what it binds, when grading refuses, and how
capture files a kernel may have tampered with are read back."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from grader.check.captured import Captured, load_captured
from grader.errors import CaptureError
from grader.config import ExecutionSettings
from grader.fsutil import remove_tree
from grader.run.sandbox import bwrap_arguments, find_cgroups, make_run_dir, open_sandbox

ROOT = Path(__file__).resolve().parent.parent
MAX_BYTES = 2**20


def bound_sources(args: list[str]) -> list[Path]:
    binds = ("--bind", "--bind-try", "--ro-bind", "--ro-bind-try", "--dev-bind")
    return [Path(args[i + 1]) for i, a in enumerate(args) if a in binds]


def test_the_course_folder_is_not_bound_into_the_sandbox(tmp_path):
    run_dir = tmp_path / "grader-run-1-x"
    sources = bound_sources(bwrap_arguments(run_dir, "cpu"))
    assert run_dir / "work" in sources and run_dir not in sources
    for folder in (ROOT, ROOT / "assignments", ROOT / "reference", Path.home()):
        assert not any(folder.is_relative_to(source) for source in sources), folder


def test_grade_refuses_to_run_unsandboxed_without_being_told(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": str(tmp_path)}  # no bwrap on it
    result = subprocess.run([sys.executable, "-m", "grader", "grade", "regression_ab", "submissions/regression_ab",
                             "--out", str(tmp_path / "out")], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert "cannot sandbox" in result.stderr and "--no-sandbox" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.fixture
def capture(tmp_path) -> Path:
    """A well-formed capture folder, as a kernel writes it."""
    arrays = {"a0": np.ones((2, 2), dtype=np.float32), "trace_losses": np.zeros(3)}
    values = {"w": {"kind": "tensor", "array": "a0", "dtype": "float32", "shape": [2, 2], "device": "cpu"},
              "n": {"kind": "scalar", "value": 3}, "gone": {"kind": "missing"}}
    trace = {"backward_calls": 3, "optimizers": [], "losses": "trace_losses"}
    Captured(values=values, arrays=arrays, trace_record=trace).save(tmp_path)
    return tmp_path


def test_a_well_formed_capture_is_read(capture):
    captured = load_captured(capture, MAX_BYTES)
    assert captured["w"].sum().item() == 4 and captured["n"] == 3 and "gone" not in captured


def test_a_link_in_the_capture_folder_is_refused(capture, tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text((capture / "manifest.json").read_text())
    (capture / "manifest.json").unlink()
    (capture / "manifest.json").symlink_to(outside)
    with pytest.raises(CaptureError, match="cannot be opened"):
        load_captured(capture, MAX_BYTES)


def test_a_fifo_in_the_capture_folder_is_refused_without_blocking(capture):
    (capture / "arrays.npz").unlink()
    os.mkfifo(capture / "arrays.npz")
    outcome = []
    reader = threading.Thread(target=lambda: outcome.append(_error_of(capture)), daemon=True)
    reader.start()
    reader.join(timeout=5)
    assert outcome and "not a plain file" in outcome[0]


def _error_of(folder: Path) -> str:
    try:
        load_captured(folder, MAX_BYTES)
    except CaptureError as exc:
        return str(exc)
    return ""


@pytest.mark.parametrize("entry", [
    5,
    {"kind": "tensor", "array": "nowhere", "dtype": "float32"},
    {"kind": "tensor", "array": "a0", "dtype": "object"},
    {"kind": "state_dict", "entries": {"k": {"kind": "tensor"}}},
    {"kind": "module", "type": "Net", "layers": [{"type": 1}], "parameters": {}, "state_dict": {}},
    {"kind": "scalar", "value": "3"},
    {"kind": "something else"},
], ids=["not-a-dict", "missing-array", "odd-dtype", "bad-state-dict", "bad-layers", "text-as-scalar", "unknown-kind"])
def test_a_malformed_entry_is_a_capture_error(capture, entry):
    manifest = json.loads((capture / "manifest.json").read_text())
    manifest["values"]["w"] = entry
    (capture / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CaptureError):
        load_captured(capture, MAX_BYTES)


def test_an_array_of_text_is_a_capture_error(capture):
    np.savez(capture / "arrays.npz", a0=np.array(["a", "b"]), trace_losses=np.zeros(3))
    with pytest.raises(CaptureError, match="tensor `w` is malformed"):
        load_captured(capture, MAX_BYTES)


def test_json_nested_too_deep_is_a_capture_error(capture):
    (capture / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CaptureError, match="malformed"):
        load_captured(capture, MAX_BYTES)


def test_an_oversized_capture_is_refused(capture):
    with pytest.raises(CaptureError, match="more than 100 bytes"):
        load_captured(capture, 100)


@pytest.mark.skipif(os.geteuid() != 0 or find_cgroups() is None, reason="the root sandbox needs root and cgroups")
def test_a_run_folder_is_private_to_root_and_its_files_to_the_kernel():
    run_dir = make_run_dir(True)
    try:
        (run_dir / "work").mkdir()
        (run_dir / "work" / "submission.ipynb").write_text("{}")
        sandbox = open_sandbox(True, run_dir, ExecutionSettings(), "cpu")
        try:
            assert (run_dir.stat().st_mode & 0o777, run_dir.stat().st_uid) == (0o700, 0)
            notebook = (run_dir / "work" / "submission.ipynb").stat()
            assert (notebook.st_mode & 0o777, notebook.st_uid) == (0o600, sandbox.uid)
            assert (run_dir / "proc-masks" / "loadavg").read_text().startswith("0.00 0.00 0.00")
        finally:
            asyncio.run(sandbox.close())
    finally:
        remove_tree(run_dir)


@pytest.mark.skipif(os.geteuid() != 0 or find_cgroups() is None, reason="the root sandbox needs root and cgroups")
def test_the_kernel_owns_the_copy_of_its_notebook_and_nobody_else_reads_it():
    from nbformat.v4 import new_code_cell, new_notebook

    from grader.run.execute import RunOptions, run_notebook

    cell = "import os\nstat = os.stat('submission.ipynb')\nowner = f'{stat.st_uid} {stat.st_mode & 0o777:o}'"
    result = asyncio.run(run_notebook(new_notebook(cells=[new_code_cell(cell)]), ExecutionSettings(),
                                      RunOptions(capture=("owner",))))
    assert result.status == "ok", result.problems
    assert result.captured["owner"] == "65534 600"
