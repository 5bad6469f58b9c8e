"""GPU paths, tested on the CPU where they can be: a kernel's GPU slot, the device files
its sandbox binds, its CUDA variables, where a submission computed, golden values per
device. What needs a GPU skips, saying so."""

import json
import shutil

import numpy as np
import pytest
import torch

from grader.check.captured import Captured
from grader.check.reference import compare_golden, environment_label, record_golden
from grader.config import load_assignment
from grader.run.gpu import device_binds, device_environment, kernel_device, visible_gpus
from grader.run.sandbox import bwrap_arguments

from conftest import ROOT

NO_GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible to torch here)")


@pytest.fixture
def dev(tmp_path):
    for name in ("nvidia0", "nvidia1", "nvidia10", "nvidiactl", "nvidia-uvm", "nvidia-caps", "null"):
        (tmp_path / name).touch()
    return tmp_path


def test_the_gpus_handed_out_are_the_grader_s_own_visible_ones_else_every_device_file(dev):
    assert visible_gpus(dev, environ={}) == ["0", "1", "10"]
    assert visible_gpus(dev, environ={"CUDA_VISIBLE_DEVICES": "1, 0"}) == ["1", "0"]
    assert visible_gpus(dev, environ={"CUDA_VISIBLE_DEVICES": ""}) == []


def test_worker_slots_share_gpus_round_robin():
    gpus = ["0", "1"]
    assert [kernel_device("cuda", slot, gpus) for slot in range(5)] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]
    assert kernel_device("cpu", 3, gpus) == "cpu"
    assert kernel_device("cuda", 0, []) == "cuda"


def test_a_kernel_s_sandbox_binds_the_control_files_and_its_own_gpu_only(dev):
    binds = device_binds("cuda:1", dev)
    bound = [binds[i + 1] for i in range(0, len(binds), 3)]
    assert bound == [str(dev / "nvidiactl"), str(dev / "nvidia-uvm"), str(dev / "nvidia1")]
    assert all(binds[i] == "--dev-bind" for i in range(0, len(binds), 3))
    every = device_binds("cuda", dev)
    assert [every[i + 1] for i in range(0, len(every), 3)][-3:] == [str(dev / f"nvidia{n}") for n in (0, 1, 10)]
    assert device_binds("cpu", dev) == []


def test_the_sandbox_of_a_cpu_kernel_binds_no_gpu_device(tmp_path):
    assert not any("nvidia" in arg for arg in bwrap_arguments(tmp_path, "cpu"))


def test_a_kernel_s_cuda_variables_show_it_only_its_gpu():
    assert device_environment("cpu") == {"CUDA_VISIBLE_DEVICES": ""}
    assert device_environment("cuda:1") == {"CUDA_VISIBLE_DEVICES": "1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert device_environment("cuda") == {}


def tensor(device: str) -> dict:
    return {"kind": "tensor", "array": "a0", "dtype": "float32", "shape": [1], "device": device}


def test_where_a_submission_computed_is_read_from_its_captured_tensors_and_modules():
    on_gpu = Captured({"loss": tensor("cuda:0"),
                       "net": {"kind": "module", "state_dict": {"weight": tensor("cuda:0")}}})
    assert on_gpu.devices() == {"cuda"}
    assert Captured({"loss": tensor("cpu"), "n": {"kind": "scalar", "value": 3}}).devices() == {"cpu"}
    assert Captured({"sd": {"kind": "state_dict", "entries": {"w": tensor("cuda:1")}}}).devices() == {"cuda"}


def test_golden_values_are_kept_per_device(tmp_path):
    shutil.copytree(ROOT / "assignments" / "regression_ab", tmp_path / "assignments" / "regression_ab")
    (tmp_path / "reference").mkdir()
    shutil.copy(ROOT / "reference" / "regression_ab.ipynb", tmp_path / "reference")
    assignment = load_assignment(tmp_path, "regression_ab")
    values = {"alpha0": tensor("cpu"), "alpha1": tensor("cpu"), "beta0": tensor("cpu"), "beta1": tensor("cpu"),
              "loss": {"kind": "scalar", "value": 0.97}, "yhat": tensor("cpu")}
    trace = {"losses": "t0", "optimizers": [], "backward_calls": 0}
    cpu = Captured(values, {"a0": np.array([1.5], dtype=np.float32), "t0": np.zeros(0)}, trace_record=trace)
    cuda = Captured(values, {"a0": np.array([1.5001], dtype=np.float32), "t0": np.zeros(0)}, trace_record=trace)
    record_golden(assignment, {"public": cpu}, "cpu")
    assert compare_golden(assignment, {"public": cpu}, "cuda") is None, "nothing recorded for cuda yet"
    record_golden(assignment, {"public": cuda}, "cuda")
    recorded = json.loads(assignment.golden_file.read_text())
    assert set(recorded) == {environment_label("cpu"), environment_label("cuda")}
    assert compare_golden(assignment, {"public": cpu}, "cpu") == []
    assert compare_golden(assignment, {"public": cuda}, "cuda") == []
    assert compare_golden(assignment, {"public": cpu}, "cuda"), "a CPU run differs from the GPU's golden values"


@NO_GPU
def test_a_kernel_in_a_gpu_slot_sees_exactly_one_gpu(tmp_path):
    import asyncio

    import nbformat

    from grader.config import ExecutionSettings
    from grader.run.execute import RunOptions, run_notebook

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import torch\ncount = torch.cuda.device_count()\nx = torch.ones(2, device='cuda:0') * 2")])
    options = RunOptions(capture=("count", "x"), device=kernel_device("cuda", 0, visible_gpus()))
    result = asyncio.run(run_notebook(nb, ExecutionSettings(), options))
    assert result.status == "ok", result.problems
    assert result.captured["count"] == 1 and result.captured.devices() == {"cuda"}
