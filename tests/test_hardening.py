"""One odd file never stops a class: the grader process's own defences, without kernels.

The same attacks go through the real command line in test_adversarial.py; these pin down
each defence where it lives.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from grader.check.captured import ModuleInfo, load_captured, Captured
from grader.check.checks import CheckResult, import_checks
from grader.check.heatmap import find_heatmap, student_heatmap
from grader.config import load_assignment
from grader.errors import InvalidSubmission
from grader.fsutil import UnsafeFile, read_regular_file, remove_tree, safe_name, write_atomic
from grader.grade import AssignmentGrader, GradeReport, student_id
from grader.report.feedback import number_text
from grader.report.i18n import Text
from grader.report.plots import loss_curve_svg, y_scale
from grader.report.summary import RunSettings
from grader.report.write import output_names, strict_json, write_reports
from grader.run.notebook import read_notebook_bytes
from grader.run.runs import GradeOptions
from grader.run.sandbox import RUN_PREFIX, remove_leftovers

from conftest import ROOT

SETTINGS = RunSettings("2026-11-30T10:00:00+09:00", "0.1.0", "2.13.0+cpu", "cpu", True, 2, "en")
NOT_RUNNING_PID = 2**22 + 1  # above pid_max's default: no grader has it


def deep_tree(top: Path, levels: int) -> None:
    """A folder `levels` deep under `top`, built as a kernel would (relative to each folder)."""
    folder = os.open(top, os.O_RDONLY)
    for _ in range(levels):
        os.mkdir("d", dir_fd=folder)
        with open(os.open("f", os.O_CREAT | os.O_WRONLY, dir_fd=folder), "w") as handle:
            handle.write("x")
        inner = os.open("d", os.O_RDONLY, dir_fd=folder)
        os.close(folder)
        folder = inner
    os.chmod(folder, 0)  # and an unreadable folder at the bottom
    os.close(folder)


def test_a_tree_3000_levels_deep_is_removed(tmp_path):
    top = tmp_path / "run"
    top.mkdir()
    deep_tree(top, 3000)
    with pytest.raises(RecursionError):
        shutil.rmtree(top)  # what the clean-up used
    remove_tree(top)
    assert not top.exists()


def test_leftovers_of_a_dead_grader_are_removed_however_deep(tmp_path, monkeypatch):
    monkeypatch.setattr("grader.run.sandbox.MEMORY_SCRATCH", tmp_path)
    monkeypatch.setattr("grader.run.sandbox.find_cgroups", lambda: None)
    left = tmp_path / f"{RUN_PREFIX}{NOT_RUNNING_PID}-abc"
    left.mkdir()
    deep_tree(left, 3000)
    asyncio.run(remove_leftovers())  # a start must not crash on it
    assert not left.exists()


@pytest.mark.parametrize("name, safe", [
    ("..", "_"), ("...", "_"), ("a/b", "a_b"), ("bob", "bob"), ("\x00x", "_x"), ("학생", "학생"),
])
def test_safe_names_are_one_harmless_path_component(name, safe):
    assert safe_name(name) == safe


def test_long_names_are_cut_to_leave_room_for_suffixes_and_temporary_files(tmp_path):
    name = safe_name("가" * 80)
    assert len(name.encode()) <= 120 and name != safe_name("가" * 81)
    write_atomic(tmp_path / f"{'가' * 80}.loss.svg", "x")  # 249 bytes: its temporary name must still fit
    assert (tmp_path / f"{'가' * 80}.loss.svg").read_text() == "x"


def test_student_ids_from_odd_file_names(tmp_path):
    cp949 = tmp_path / os.fsdecode("학생".encode("cp949") + b".ipynb")
    assert student_id(cp949, tmp_path) == "학생"
    assert student_id(tmp_path / "...ipynb", tmp_path) == "_"
    assert student_id(tmp_path / "sub" / "bob.ipynb", tmp_path) == "sub__bob"


def test_output_names_are_distinct_and_renamed_files_get_a_note():
    reports = [GradeReport("bob", "s/bob.ipynb", "ok"), GradeReport("bob", "s/bob.json", "ok"),
               GradeReport("bob.ipynb", "s/bob.ipynb.ipynb", "ok"), GradeReport("_", "s/...ipynb", "ok"),
               GradeReport("Eve", "s/Eve.ipynb", "ok"), GradeReport("eve", "s/eve.ipynb", "ok")]
    names = output_names(reports)
    assert len({n.casefold() for n in names.values()}) == len(reports)
    assert names["s/bob.ipynb"] == "bob.ipynb" and names["s/...ipynb"] == "_"
    renamed = [r for r in reports if r.notes]
    assert [r.file for r in renamed] == ["s/bob.ipynb.ipynb", "s/eve.ipynb"]
    assert names["s/bob.ipynb.ipynb"] in renamed[0].notes[0]


def test_a_symbolic_link_is_refused_unread(tmp_path):
    (tmp_path / "target.ipynb").write_text("{}")
    (tmp_path / "link.ipynb").symlink_to(tmp_path / "target.ipynb")
    with pytest.raises(UnsafeFile, match="symbolic link"):
        read_regular_file(tmp_path / "link.ipynb", 100)


def test_results_json_is_strict():
    text = strict_json({"losses": [1.0, math.nan, math.inf, -math.inf]})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c}")) == {
        "losses": [1.0, "NaN", "Infinity", "-Infinity"]}


def test_a_loss_curve_from_zero_to_the_largest_double_is_drawn():
    losses = [0.5] * 30 + [0.0, 1.7e308, math.nan]
    assert y_scale(np.asarray(losses)) == "symlog"
    assert loss_curve_svg(losses, [1.0, 0.5], Text("en")).startswith("<svg ")


def test_an_integer_learning_rate_too_large_for_a_float_is_formatted():
    assert number_text(0.01) == "0.01"
    assert number_text(10**400) == "1.000000e+400"


def test_a_heat_map_over_renamed_state_dict_keys_is_left_out():
    hook = find_heatmap(import_checks(load_assignment(ROOT, "abcde")))
    layers = [{"name": n, "type": t, "children": 0, "config": c} for n, t, c in (
        ("emb", "Embedding", {"num_embeddings": 5, "embedding_dim": 2}), ("act", "Tanh", {}),
        ("lin", "Linear", {"in_features": 2, "out_features": 5}))]
    renamed = {"emb.renamed": torch.zeros(5, 2), "lin.weight": torch.zeros(5, 2), "lin.bias": torch.zeros(5)}
    assert student_heatmap(hook, {"net": ModuleInfo("Net", layers, {}, renamed)}) == {}


def report_with(student: str, **fields) -> GradeReport:
    checks = [CheckResult("parameters", "public", "parameters match", 3, 3, "pass")]
    return GradeReport(student, f"{student}.ipynb", "ok", checks=checks, content_hash=student * 8, **fields)


def test_one_students_unwritable_outputs_cost_only_that_row(tmp_path):
    """A malformed heat map makes drawing raise: that row becomes grader-error, the rest is written."""
    broken = report_with("mallory", heatmap={"title": "t", "rows": [], "columns": [], "values": "not a matrix",
                                             "vmin": None, "vmax": None})
    reports = [report_with("alice"), broken]
    failed = write_reports(tmp_path, load_assignment(ROOT, "regression_ab"), reports, SETTINGS, [1.0])
    assert failed == [broken] and broken.status == "grader-error" and "could not write" in broken.reason
    folder = tmp_path / "regression_ab"
    assert "alice,alice.ipynb,3,3,ok" in (folder / "gradebook.csv").read_text()
    assert "mallory,mallory.ipynb,3,3,grader-error" in (folder / "gradebook.csv").read_text()
    assert (folder / "lms.csv").read_text().splitlines()[1:] == ["alice,3", "mallory,"]
    assert (folder / "summary.html").is_file() and (folder / "feedback" / "alice.html").is_file()
    assert json.loads((folder / "results" / "mallory.json").read_text())["status"] == "grader-error"


def test_a_grade_whose_outputs_failed_is_not_replayed_from_the_cache(tmp_path):
    grader = AssignmentGrader(load_assignment(ROOT, "regression_ab"), GradeOptions("cpu", tmp_path, 1))
    report = report_with("mallory")
    grader.remember(report)
    cached = list(grader.results_cache.glob("*.json"))
    assert len(cached) == 1
    grader.forget(report)
    assert not cached[0].exists()


def test_at_most_workers_files_are_read_and_held_at_once(tmp_path):
    grader = AssignmentGrader(load_assignment(ROOT, "regression_ab"), GradeOptions("cpu", tmp_path, 2, force=True))
    held, most = 0, 0

    async def slow_grade(report, data):
        nonlocal held, most
        held += 1
        most = max(most, held)
        await asyncio.sleep(0.05)
        held -= 1
        return report

    grader.grade_bytes = slow_grade
    template = (ROOT / "assignments" / "regression_ab" / "regression_ab.ipynb").read_bytes()
    files = []
    for n in range(8):
        (tmp_path / f"s{n}.ipynb").write_bytes(template)
        files.append((tmp_path / f"s{n}.ipynb", tmp_path))
    reports = asyncio.run(grader.grade_all(files))
    assert len(reports) == 8 and most == 2


@pytest.mark.parametrize("data, reason", [
    (b'{"cells": [' + b",".join([b"{}"] * 4_700_000) + b'], "nbformat": 4}', "4,700,002 JSON objects"),
    (b'{"cells": [], "x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", "20,001 levels deep"),
    (b'{"cells": [], "x": [' + b",".join([b"1"] * 2_000_000) + b"]}", "over 1,000,000 JSON values"),
    (b'{"cells": [' + b",".join([b'{"cell_type": "raw", "source": ""}'] * 6000) + b'], "nbformat": 4}',
     "6,000 cells"),
])
def test_parse_cost_is_bounded_before_parsing(data, reason):
    """14 MB of `{}` took 6 GB and 110 s to parse and prepare; now refused in well under a second."""
    started = time.monotonic()
    with pytest.raises(InvalidSubmission, match=reason):
        read_notebook_bytes(data, 20 * 2**20)
    assert time.monotonic() - started < 3


def test_lone_surrogates_become_replacement_characters():
    data = json.dumps({"cells": [{"cell_type": "markdown", "source": "answer \udcff", "metadata": {}, "id": "a"}],
                       "metadata": {"k\udcff": "v"}, "nbformat": 4, "nbformat_minor": 5}).encode()
    nb = read_notebook_bytes(data, 2**20)
    assert nb.cells[0].source == "answer \ufffd" and "k\ufffd" in nb.metadata
    json.dumps(nb, ensure_ascii=False).encode("utf-8")  # writable as UTF-8


def test_captured_names_are_cut_and_say_so(tmp_path):
    arrays = {"trace_losses": np.zeros(1)}
    values = {"yhat": {"kind": "unsupported", "type": "Y" * 2_000_000},
              "note": {"kind": "text", "value": "t" * 1000}}
    Captured(values=values, arrays=arrays,
             trace_record={"backward_calls": 0, "optimizers": [], "losses": "trace_losses"}).save(tmp_path)
    captured = load_captured(tmp_path, 64 * 2**20)
    assert captured.values["yhat"]["type"].endswith("… [cut from 2,000,000 characters]")
    assert len(captured.values["yhat"]["type"]) < 300
    assert captured["note"] == "t" * 1000


PEAK_MEMORY = """
import resource
from grader.errors import InvalidSubmission
from grader.run.notebook import read_notebook_bytes
data = b'{"cells": [' + b",".join([b"{}"] * 4_700_000) + b'], "nbformat": 4, "metadata": {}, "nbformat_minor": 5}'
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    read_notebook_bytes(data, 20 * 2**20)
except InvalidSubmission:
    pass
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def test_refusing_an_object_bomb_costs_little_memory():
    """Parsing a 14 MB file of `{}` took 6 GB; refusing it now takes a few hundred MB at most."""
    done = subprocess.run([sys.executable, "-c", PEAK_MEMORY], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) < 400 * 1024  # KiB
