"""GPU paths, tested on the CPU where they can be: a kernel's GPU slot, the device files
its sandbox binds, its CUDA variables, where a submission computed and the reference run
there, golden values per device. What needs a GPU skips, saying so."""

import asyncio
import json
import shutil
import textwrap
from collections import Counter

import nbformat
import numpy as np
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook

from grader.check.captured import Captured
from grader.check.reference import cache_folder, compare_golden, environment_label, record_golden
from grader.config import ExecutionSettings, load_assignment
from grader.errors import ConfigError
from grader.grade import AssignmentGrader, GradeReport
from grader.run.execute import ExecutionResult, RunOptions, run_notebook
from grader.run.gpu import device_binds, device_environment, kernel_device, visible_gpus
from grader.run.notebook import prepare_notebook
from grader.run.runs import GradeOptions
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


def trained_on(*devices: str) -> dict:
    """A trace whose one optimizer stepped with its parameters on `devices`."""
    optimizer = {"class": "SGD", "steps": 3, "parameters": 1, "hyperparameters": {"lr": 0.1}, "devices": list(devices)}
    return {"losses": "t0", "backward_calls": 3, "optimizers": [optimizer]}


ARRAYS = {"a0": np.array([1.5], dtype=np.float32), "t0": np.zeros(0)}


def test_where_a_submission_computed_is_read_from_its_training_then_its_captured_tensors():
    on_gpu = Captured({"loss": tensor("cuda:0"),
                       "net": {"kind": "module", "state_dict": {"weight": tensor("cuda:0")}}})
    assert on_gpu.devices() == {"cuda"} and on_gpu.computed_on() == "cuda"
    on_cpu = Captured({"loss": tensor("cpu"), "n": {"kind": "scalar", "value": 3}})
    assert on_cpu.devices() == {"cpu"} and on_cpu.computed_on() == "cpu"
    assert Captured({"sd": {"kind": "state_dict", "entries": {"w": tensor("cuda:1")}}}).computed_on() == "cuda"
    # Trained on the GPU, values moved back to the CPU: GPU results.
    moved_back = Captured({"loss": tensor("cpu")}, ARRAYS, trace_record=trained_on("cuda"))
    assert moved_back.computed_on() == "cuda" and moved_back.devices() == {"cpu", "cuda"}
    # Trained on the CPU, the model moved to the GPU afterwards: CPU results.
    moved_after = Captured({"loss": tensor("cuda:0")}, ARRAYS, trace_record=trained_on("cpu"))
    assert moved_after.computed_on() == "cpu" and moved_after.devices() == {"cpu", "cuda"}


def test_training_records_the_device_its_parameters_stepped_on():
    result = asyncio.run(run_notebook(new_notebook(cells=[new_code_cell(
        "import torch\nw = torch.zeros(1, requires_grad=True)\nopt = torch.optim.SGD([w], lr=0.1)\n"
        "for _ in range(2):\n    (w - 1).sum().backward(); opt.step()")]),
        ExecutionSettings(cell_timeout=30), RunOptions(capture=("w",))))
    [sgd] = result.captured.trace.optimizers
    assert sgd.devices == ("cpu",)


FORGED = ("import torch\nclass Forged(torch.Tensor):\n    @property\n    def device(self):\n"
          "        return torch.device('cu' + 'da:0')\n"  # spelt so the notebook never says cuda
          "loss = torch.tensor([1.0]).as_subclass(Forged)")


def test_a_kernel_given_no_gpu_refuses_values_that_claim_one():
    result = asyncio.run(run_notebook(new_notebook(cells=[new_code_cell(FORGED)]), ExecutionSettings(cell_timeout=30),
                                      RunOptions(capture=("loss",), device="cpu")))
    assert result.captured is None and result.status == "error"
    assert "they say they were computed on a CUDA GPU, but this run had none" in result.capture_error


def test_each_device_s_reference_is_cached_apart(tmp_path):
    grader = AssignmentGrader(load_assignment(ROOT, "rnn_abacad"), GradeOptions("cuda", tmp_path, 1))
    assert cache_folder(grader.assignment, grader.runner, "cpu") != cache_folder(grader.assignment, grader.runner, "cuda")
    on_gpu = grader.reference_notebooks["cuda"]
    assert any('X = X.to("cuda:0")' in c.source for c in on_gpu.cells), "rnn_abacad's cuda_form, the lecture's 구현3"
    assert grader.reference_notebooks["cpu"] == nbformat.read(ROOT / "reference" / "rnn_abacad.ipynb", 4)
    assert list(AssignmentGrader(grader.assignment, GradeOptions("cpu", tmp_path, 1)).reference_notebooks) == ["cpu"]


def tiny_course(root, cuda_form: str = "on_gpu"):
    """An assignment whose one check wants `w` exactly as the reference computed it."""
    folder = root / "assignments" / "tiny"
    folder.mkdir(parents=True)
    (root / "reference").mkdir()
    (folder / "assignment.toml").write_text(f'capture = ["w"]\ncuda_form = "{cuda_form}"\n'
                                            '[[variants]]\nname = "hidden"\n[variants.seeds]\n1 = 2\n')
    (folder / "checks.py").write_text(textwrap.dedent('''
        from grader.check import assert_close, check

        @check(points=1, variants="all", confirm_hidden=False)
        def weight(student, reference):
            """w is the reference's, to the last bit"""
            assert_close(student["w"], reference["w"], name="w", rtol=0, atol=0)
        '''))
    (folder / "forms.toml").write_text('[[equivalent]]\nname = "on_gpu"\n'
                                       '[equivalent.replace]\n"w = train()" = "w = train().to(\'cuda\')"\n')
    cells = [new_code_cell("import torch", metadata={"tags": ["locked"]}, id="imports"),
             new_code_cell("w = train()", metadata={"tags": ["answer"]}, id="answer")]
    nbformat.write(new_notebook(cells=cells), root / "reference" / "tiny.ipynb")
    nbformat.write(new_notebook(cells=cells), folder / "tiny.ipynb")
    return load_assignment(root, "tiny")


class FakeKernels:
    """Stands in for kernels: a run computes on the GPU where its kernel has one and its code
    moves `w` there (a cpu kernel maps cuda to the CPU), and a GPU rounds otherwise. Each
    run is recorded as (what ran: a device's reference notebook or "student", the kernel's device)."""

    def __init__(self, grader: AssignmentGrader):
        self.grader = grader
        self.runs = Counter()
        grader.runner.run = self.run
        grader.runner.run_all = self.run_all

    async def run_all(self, submission):
        return {v.name: await self.run(submission, v) for v in self.grader.assignment.variants}

    async def run(self, notebook, variant, initial_parameters=None, device=None):
        kernel = device or self.grader.options.device
        which = next((d for d, nb in self.grader.reference_notebooks.items() if nb is notebook), "student")
        self.runs[which, kernel] += 1
        code = "\n".join(c.source for c in notebook.cells)
        on = "cuda" if kernel == "cuda" and ".to('cuda')" in code else "cpu"
        value = {"cpu": 1.0, "cuda": 1.0001}[on] + (variant.name == "hidden")
        entry = {"kind": "tensor", "array": "a0", "dtype": "float32", "shape": [1], "device": f"{on}:0"}
        captured = Captured({"w": entry}, {"a0": np.array([value], dtype=np.float32), "t0": np.zeros(0)},
                            trace_record={"losses": "t0", "backward_calls": 0, "optimizers": []})
        return prepare_notebook(self.grader.runner.templates[variant.name], notebook), \
            ExecutionResult("ok", captured=captured)


def student(code: str) -> bytes:
    cells = [new_code_cell("import torch", id="imports"), new_code_cell(code, id="answer")]
    return json.dumps(new_notebook(cells=cells)).encode()


def grade_batch(grader: AssignmentGrader, codes: dict[str, str]) -> list[GradeReport]:
    async def batch():
        await grader.prepare()
        return await asyncio.gather(*(grader.grade_bytes(GradeReport(name, name, "ok"), student(code))
                                      for name, code in codes.items()))

    return asyncio.run(batch())


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_a_mixed_batch_is_compared_with_the_reference_run_where_each_submission_computed(tmp_path, device):
    assignment = tiny_course(tmp_path)
    grader = AssignmentGrader(assignment, GradeOptions(device, tmp_path / "cache", 2))
    kernels = FakeKernels(grader)
    on_cpu, on_gpu = grade_batch(grader, {"on_cpu": "w = train()", "on_gpu": "w = train().to('cuda')"})
    assert [(r.score, r.max_score) for r in (on_cpu, on_gpu)] == [(2, 2), (2, 2)], [c.message for c in on_cpu.checks]
    if device == "cuda":
        assert (on_cpu.device, on_gpu.device) == ("cpu", "cuda")
        # Each reference once per variant: the cuda_form in a GPU kernel, the solution in a CPU one.
        assert kernels.runs == {("cuda", "cuda"): 2, ("cpu", "cpu"): 2, ("student", "cuda"): 4}
    else:  # no GPU: cuda is mapped to the CPU for students and reference alike, one reference
        assert (on_cpu.device, on_gpu.device) == ("cpu", "cpu")
        assert kernels.runs == {("cpu", "cpu"): 2, ("student", "cpu"): 4}

    # Cached per device: grading again runs no reference, whichever device it needs.
    again = AssignmentGrader(assignment, GradeOptions(device, tmp_path / "cache", 2))
    rerun = FakeKernels(again)
    assert [r.score for r in grade_batch(again, {"on_cpu": "w = train()", "on_gpu": "w = train().to('cuda')"})] == [2, 2]
    assert rerun.runs == {("student", device): 4}


def test_a_cuda_form_must_be_an_equivalent_form(tmp_path):
    assignment = tiny_course(tmp_path, cuda_form="missing")
    with pytest.raises(ConfigError, match="cuda_form 'missing' is not an equivalent form"):
        AssignmentGrader(assignment, GradeOptions("cpu", tmp_path / "cache", 1))


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


@NO_GPU
def test_on_a_gpu_rnn_abacad_is_compared_with_the_reference_where_each_sample_trained(tmp_path):
    samples = ROOT / "submissions" / "rnn_abacad"
    grader = AssignmentGrader(load_assignment(ROOT, "rnn_abacad"), GradeOptions("cuda", tmp_path, 2))

    async def run():
        await grader.prepare()
        reports = await grader.grade_all([(samples / f"{name}.ipynb", samples)
                                          for name in ("correct_on_cuda", "correct_no_water")])
        return reports, await grader.reference_on("cpu")

    (on_gpu, on_cpu), cpu_reference = asyncio.run(run())
    assert (on_gpu.device, on_gpu.score, on_cpu.device, on_cpu.score) == ("cuda", 13, "cpu", 13)
    assert grader.reference["public"].computed_on() == "cuda" and cpu_reference["public"].computed_on() == "cpu"
