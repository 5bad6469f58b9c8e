"""Kernels forked from the pre-imported parent behave as fresh processes: the same values
bit for bit, the same isolation, and a fallback to fresh processes when forking fails."""

from __future__ import annotations

import asyncio
import os
import signal

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from grader.check.captured import Captured
from grader.config import ExecutionSettings, list_assignments, load_assignment
from grader.grade import AssignmentGrader
from grader.run import forkserver
from grader.run.execute import RunOptions, run_notebook
from grader.run.runs import GradeOptions
from grader.run.sandbox import sandbox_problem

from conftest import ROOT

SANDBOXED = asyncio.run(sandbox_problem()) is None


def run_reference(name: str, cache_dir) -> dict[str, Captured]:
    assignment = load_assignment(ROOT, name)
    grader = AssignmentGrader(assignment, GradeOptions(device="cpu", cache_dir=cache_dir, workers=2,
                                                       sandbox=SANDBOXED))
    reference = nbformat.read(assignment.reference_notebook, as_version=4)
    runs = asyncio.run(grader.runner.run_all(reference))
    for variant, (_, result) in runs.items():
        assert result.status == "ok" and result.captured is not None, (variant, result.capture_error)
    return {variant: result.captured for variant, (_, result) in runs.items()}


def assert_bitwise_equal(forked: Captured, fresh: Captured) -> None:
    assert forked.values == fresh.values
    assert forked.events == fresh.events
    assert forked.trace_record == fresh.trace_record
    assert forked.arrays.keys() == fresh.arrays.keys()
    for key, array in forked.arrays.items():
        other = fresh.arrays[key]
        assert (array.dtype, array.shape) == (other.dtype, other.shape), key
        assert array.tobytes() == other.tobytes(), key  # nan payloads and signed zeros included


@pytest.mark.parametrize("name", list_assignments(ROOT))
def test_a_forked_kernel_captures_the_same_bits_as_a_fresh_one(name, tmp_path, monkeypatch):
    forked = run_reference(name, tmp_path / "forked")
    monkeypatch.setenv(forkserver.ENGINE_SWITCH, "fresh")
    fresh = run_reference(name, tmp_path / "fresh")
    assert forked.keys() == fresh.keys()
    for variant in forked:
        assert_bitwise_equal(forked[variant], fresh[variant])


PROBE = """
import os, sys, socket, resource, matplotlib, torch, numpy
status = dict(line.split(':', 1) for line in open('/proc/self/status') if ':' in line)
run = os.path.dirname(os.getcwd())
probe = ' | '.join(map(str, [
    os.getuid(), os.getgid(), os.getgroups(), [status[k].strip() for k in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs', 'Seccomp')],
    socket.gethostname(), [name for _, name in socket.if_nameindex()], os.path.exists(%(assignments)r), resource.getrlimit(resource.RLIMIT_CPU), resource.getrlimit(resource.RLIMIT_CORE),
    sorted((k, v.replace(run, 'RUN')) for k, v in os.environ.items()), [a.replace(run, 'RUN') for a in sys.argv], sys.path,
    open('/proc/self/cmdline', 'rb').read().rstrip(b'\\0').decode().replace(run, 'RUN').split('\\0'),
    [name for name in sys.modules if name.startswith('grader')], matplotlib.get_configdir().replace(run, 'RUN'),
    torch.get_num_threads(),
]))
seeds = f'{torch.initial_seed()} {numpy.random.rand()}'
""" % {"assignments": str(ROOT / "assignments")}


def run_probe(cache_dir) -> tuple[str, str]:
    settings = ExecutionSettings(cell_timeout=60, notebook_timeout=120)
    options = RunOptions(capture=("probe", "seeds"), sandbox=SANDBOXED, cache_dir=cache_dir)
    result = asyncio.run(run_notebook(new_notebook(cells=[new_code_cell(PROBE)]), settings, options))
    assert result.status == "ok", (result.problems, result.capture_error)
    return result.captured["probe"], result.captured["seeds"]


def test_a_forked_kernel_looks_and_is_isolated_like_a_fresh_one(tmp_path, monkeypatch):
    forked, forked_seeds = run_probe(tmp_path)
    forked_again, forked_again_seeds = run_probe(tmp_path)
    monkeypatch.setenv(forkserver.ENGINE_SWITCH, "fresh")
    fresh, _ = run_probe(tmp_path)
    assert forked == fresh == forked_again
    assert forked_seeds != forked_again_seeds  # each kernel seeds torch and numpy afresh, as a process does
    if SANDBOXED:
        assert forked.startswith("65534 | 65534 | [] | ['0000000000000000', '0000000000000000', '0000000000000000', "
                                 "'0000000000000000', '0000000000000000', '1', '2'] | sandbox | ['lo'] | False")  # '2': a seccomp filter


def test_one_parent_serves_every_run_and_a_dead_one_is_started_again(tmp_path):
    run_probe(tmp_path)
    parent = forkserver.SERVER.process.pid
    run_probe(tmp_path)
    assert forkserver.SERVER.process.pid == parent
    os.kill(parent, signal.SIGKILL)
    forkserver.SERVER.process.wait()
    run_probe(tmp_path)
    assert forkserver.SERVER.process.poll() is None


def test_a_parent_that_cannot_start_falls_back_to_fresh_kernels_and_says_so_once(tmp_path, monkeypatch, capsys):
    broken = forkserver.ForkServer()
    broken.broken = "no parent here"
    monkeypatch.setattr(forkserver, "SERVER", broken)
    monkeypatch.setattr(forkserver, "_told", set())
    run_probe(tmp_path)
    run_probe(tmp_path)
    assert capsys.readouterr().err.count("kernels start as fresh processes") == 1
    assert broken.process is None
