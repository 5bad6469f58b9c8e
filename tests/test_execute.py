"""The engine on small notebooks: errors, timeouts, a dying kernel, capture, clean-up."""

import asyncio
import gc
import os
import subprocess
from pathlib import Path

from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from grader.config import ExecutionSettings
from grader.errors import MissingValue
from grader.run import forkserver
from grader.run.execute import RunOptions, run_notebook

import pytest


def run(*sources, capture=(), settings=None, device="cpu"):
    cells = [new_markdown_cell(s[3:]) if s.startswith("md:") else new_code_cell(s) for s in sources]
    settings = settings or ExecutionSettings(cell_timeout=10, notebook_timeout=60)
    return asyncio.run(run_notebook(new_notebook(cells=cells), settings, RunOptions(capture=capture, device=device)))


def our_kernels() -> list[str]:
    """Kernels started by this test process, fresh or forked from its kernel parent (other
    processes on the machine may run their own)."""
    parents = [os.getpid()] + ([forkserver.SERVER.process.pid] if forkserver.SERVER.process else [])
    found = subprocess.run(["pgrep", "-a", "-P", ",".join(map(str, parents))], capture_output=True, text=True).stdout
    return [line for line in found.splitlines() if "ipykernel_launcher" in line]


def test_error_is_recorded_and_later_cells_still_run():
    result = run("a = 1", "1/0", "b = a + 1", capture=("a", "b"))
    assert result.status == "error"
    [problem] = result.problems
    assert (problem.cell_index, problem.ename, problem.first_line) == (1, "ZeroDivisionError", "1/0")
    assert "ZeroDivisionError" in problem.traceback
    assert result.captured["b"] == 2


def test_cell_timeout_interrupts_and_continues():
    result = run("import time\nwhile True: time.sleep(0.01)", "after = 'ran'", capture=("after",),
                 settings=ExecutionSettings(cell_timeout=2, notebook_timeout=60))
    assert result.status == "timeout"
    assert [p.kind for p in result.problems] == ["timeout"]
    assert result.captured["after"] == "ran"


def test_a_cell_that_ignores_the_interrupt_leaves_no_task_behind():
    unretrieved = []

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: unretrieved.append(context))
        stubborn = "import time\nwhile True:\n    try:\n        time.sleep(0.01)\n    except KeyboardInterrupt:\n        pass"
        cells = [new_code_cell(stubborn), new_code_cell("print('never')")]  # the interrupt is ignored
        # The kernel stays busy, so reading values back waits out its time: 5 s here, not 60.
        result = await run_notebook(new_notebook(cells=cells), ExecutionSettings(cell_timeout=2, notebook_timeout=4),
                                    RunOptions(capture=(), grader_code_timeout=5))
        await asyncio.sleep(0.5)
        gc.collect()  # a task whose exception nobody retrieved is reported when it is collected
        left = [t for t in asyncio.all_tasks() if "poll_output" in repr(t)]
        return result, left

    result, left = asyncio.run(main())
    assert result.status == "timeout"
    assert not left, "the timed-out cell's output reader still runs (asyncio.run would hide its error)"
    assert not unretrieved, [c.get("message") for c in unretrieved]


def test_notebook_timeout_stops_remaining_cells():
    result = run("import time\ntime.sleep(1.5)", "time.sleep(1.5)", "late = 1", capture=("late",),
                 settings=ExecutionSettings(cell_timeout=10, notebook_timeout=2.5))
    assert result.status == "timeout"
    assert "late" not in result.captured
    assert any("ran out of its" in note for note in result.notes)


def test_dead_kernel_is_reported_and_nothing_is_left_running():
    result = run("x = 1", "import os\nos._exit(3)", "y = 2", capture=("x",))
    assert result.status == "error"
    assert result.problems[-1].kind == "dead-kernel"
    assert "kernel died" in result.capture_error
    assert our_kernels() == []


def test_working_folder_holds_the_notebook_and_nothing_of_the_grader():
    result = run("import os\nfiles = ' '.join(sorted(os.listdir('.')))", capture=("files",))
    assert result.captured["files"] == "submission.ipynb"


def test_kernel_and_temporary_folders_are_removed_after_a_run():
    result = run("open('scratch.txt', 'w').write('x')\nimport os\nhere = os.getcwd()", capture=("here",))
    run_dir = Path(result.captured["here"]).parent
    assert run_dir.name.startswith("grader-run-")
    assert not run_dir.exists()
    assert our_kernels() == []


def test_capture_kinds():
    result = run(
        "import torch, numpy as np\n"
        "t = torch.arange(6.0).reshape(2, 3)\nd = torch.tensor([1.0], dtype=torch.float64)\n"
        "n = 3\nf = 0.5\ns = 'why'\na = np.ones(2, dtype=np.float32)\nl = [1.0, 2.0]\n"
        "sd = {'w': torch.ones(2)}\nobj = object()\n"
        "net = torch.nn.Sequential(torch.nn.Embedding(5, 3), torch.nn.Tanh(), torch.nn.Linear(3, 5))",
        capture=("t", "d", "n", "f", "s", "a", "l", "sd", "obj", "net", "never"))
    c = result.captured
    assert c["t"].shape == (2, 3) and c["t"][1, 2] == 5.0
    assert c["d"].dtype.is_floating_point and str(c["d"].dtype) == "torch.float64"
    assert (c["n"], c["f"], c["s"]) == (3, 0.5, "why")
    assert c["a"].tolist() == [1.0, 1.0] and c["l"].tolist() == [1.0, 2.0]
    assert c["sd"]["w"].tolist() == [1.0, 1.0]
    with pytest.raises(MissingValue, match="`obj` is a object, which the grader cannot read"):
        c["obj"]
    with pytest.raises(MissingValue, match="never defined `never`"):
        c["never"]
    net = c["net"]
    assert net.layer_types() == ["Embedding", "Tanh", "Linear"]
    assert net.layers[1]["config"] == {"num_embeddings": 5, "embedding_dim": 3}
    assert net.layers[3]["config"] == {"in_features": 3, "out_features": 5, "bias": True}
    assert net.parameters["2.weight"]["shape"] == [5, 3]
    assert net.state_dict["0.weight"].shape == (5, 3)


def test_hard_coded_cuda_runs_on_cpu_with_a_note():
    result = run("import torch\nx = torch.ones(2, device='cuda:0')\n"
                 "net = torch.nn.Linear(2, 1).cuda()\ny = net(x.to('cuda')).cpu()", capture=("y",))
    assert result.status == "ok", result.problems
    assert result.captured["y"].shape == (1,)
    assert any("ran on the CPU" in note for note in result.notes)


def test_without_cuda_in_the_code_there_is_no_note():
    result = run("import torch\ny = torch.ones(2)", capture=("y",))
    assert result.notes == []


def test_plots_prints_and_warnings_do_not_change_the_result():
    quiet = run("import torch\ntorch.manual_seed(0)\nw = torch.randn(3)", capture=("w",))
    noisy = run("import torch, warnings, matplotlib.pyplot as plt\ntorch.manual_seed(0)\nw = torch.randn(3)\n"
                "plt.plot([1, 2], [3, 4]); plt.show()\nprint('x' * 1000)\nwarnings.warn('careful')",
                capture=("w",))
    assert noisy.status == quiet.status == "ok"
    assert noisy.captured["w"].tolist() == quiet.captured["w"].tolist()


def test_huge_output_is_cut():
    result = run("for i in range(20000): print('line', i)", settings=ExecutionSettings(max_output_chars=5000))
    outputs = result.notebook.cells[0].outputs
    kept = sum(len(o.get("text", "")) for o in outputs)
    assert kept < 20000
    assert "output cut" in outputs[-1].text


def test_training_trace_is_recorded_without_the_students_help():
    result = run("import torch\nw = torch.zeros(1, requires_grad=True)\n"
                 "opt = torch.optim.SGD([w], lr=0.1)\n"
                 "for _ in range(3):\n    loss = ((w - 1) ** 2).sum()\n    loss.backward()\n"
                 "    opt.step(); opt.zero_grad()\n"
                 "torch.autograd.backward(((w - 1) ** 2).sum())",
                 capture=("w",))
    trace = result.captured.trace
    assert trace.backward_calls == 4
    assert trace.losses.tolist() == pytest.approx([1.0, 0.64, 0.4096, 0.262144])
    [sgd] = trace.optimizers
    assert (sgd.kind, sgd.lr, sgd.steps) == ("SGD", 0.1, 3)
    assert trace.epochs == 3


SEEDED = ("import random\nimport numpy as np\nimport torch\n"
          "torch.manual_seed(43052); t = torch.rand(3)\ntorch.random.manual_seed(43052); t2 = torch.rand(3)\n"
          "np.random.seed(43052); n = np.random.rand(3)\nn2 = np.random.default_rng(43052).random(3)\n"
          "random.seed(43052); r = random.random()\ntorch.manual_seed(7); other = torch.rand(3)")


def test_a_hidden_variant_maps_the_public_seed_wherever_it_is_set():
    import random

    import numpy as np
    import torch

    cells = [new_code_cell(SEEDED)]
    options = RunOptions(capture=("t", "t2", "n", "n2", "r", "other"), seed_map={"43052": 2718})
    captured = asyncio.run(run_notebook(new_notebook(cells=cells), ExecutionSettings(cell_timeout=20),
                                        options)).captured
    torch.manual_seed(2718)
    assert torch.equal(captured["t"], torch.rand(3)) and torch.equal(captured["t2"], captured["t"])
    np.random.seed(2718)
    assert np.array_equal(captured["n"].numpy(), np.random.rand(3))
    assert np.array_equal(captured["n2"].numpy(), np.random.default_rng(2718).random(3))
    random.seed(2718)
    assert captured["r"] == random.random()
    torch.manual_seed(7)
    assert torch.equal(captured["other"], torch.rand(3)), "other seeds are left alone"


def test_training_starts_are_recorded_and_a_replay_sets_them():
    import numpy as np
    import torch

    source = ("import torch\ntorch.manual_seed(0)\nnet = torch.nn.Linear(2, 1)\n"
              "opt = torch.optim.SGD(net.parameters(), lr=0.1)\nloss = net(torch.ones(1, 2)).sum()\n"
              "loss.backward()\nopt.step()")
    start = (np.array([[1.0, 2.0]], dtype=np.float32), np.array([3.0], dtype=np.float32))
    recorded = run(source, capture=("net",)).captured.trace.starting_parameters
    torch.manual_seed(0)
    fresh = torch.nn.Linear(2, 1)
    assert [torch.equal(a, b) for a, b in zip(recorded, [fresh.weight, fresh.bias])] == [True, True]
    replayed = asyncio.run(run_notebook(new_notebook(cells=[new_code_cell(source)]), ExecutionSettings(cell_timeout=20),
                                        RunOptions(capture=("net",), initial_parameters=start))).captured
    assert [t.tolist() for t in replayed.trace.starting_parameters] == [[[1.0, 2.0]], [3.0]]
    # One SGD step from the given start: w - 0.1 * x, b - 0.1.
    assert torch.allclose(replayed["net"].state_dict["weight"], torch.tensor([[0.9, 1.9]]))
    assert torch.allclose(replayed["net"].state_dict["bias"], torch.tensor([2.9]))


def test_the_next_variants_kernel_starts_during_a_run_but_runs_nothing_until_it_ended(monkeypatch, tmp_path):
    """Public first, hidden after: the hidden run's kernel is started while the public run
    executes (start-up off the critical path), and is given the notebook only once the
    public kernel is stopped; a kernel started for nothing is stopped too."""
    from grader.config import load_assignment
    from grader.run import runs
    from grader.run.execute import StartedKernel
    from grader.run.notebook import read_notebook

    events = []
    original_start, original_run, original_close = runs.start_kernel, runs.run_notebook, StartedKernel.close

    async def start_kernel(settings, options):
        events.append(("start", bool(options.seed_map)))
        kernel = await original_start(settings, options)
        events.append(("started", bool(options.seed_map)))
        return kernel

    async def run_notebook(nb, settings, options, kernel=None):
        events.append(("run", bool(options.seed_map), "given a started kernel" if kernel else "starts its own"))
        result = await original_run(nb, settings, options, kernel)
        events.append(("ran", bool(options.seed_map)))
        return result

    async def close(kernel):
        events.append(("stopped", kernel.run_dir.name))
        return await original_close(kernel)

    monkeypatch.setattr(runs, "start_kernel", start_kernel)
    monkeypatch.setattr(runs, "run_notebook", run_notebook)
    monkeypatch.setattr(StartedKernel, "close", close)
    root = Path(__file__).resolve().parent.parent
    assignment = load_assignment(root, "regression_ab")
    template = read_notebook(assignment.template_path, assignment.execution.max_notebook_bytes)
    runner = runs.Runner(assignment, template, runs.GradeOptions(device="cpu", cache_dir=tmp_path, workers=1))
    reference = read_notebook(assignment.reference_notebook, assignment.execution.max_notebook_bytes)

    results = asyncio.run(runner.run_all(reference))
    assert [r.status for _, r in results.values()] == ["ok", "ok"]
    public, hidden = [name for kind, *name in events if kind == "stopped"]
    order = [e if e[0] != "stopped" else ("stopped",) for e in events if e[0] != "started"]
    assert order == [("run", False, "starts its own"), ("start", True), ("stopped",), ("ran", False),
                     ("run", True, "given a started kernel"), ("stopped",), ("ran", True)], events
    assert events.index(("started", True)) < events.index(("run", True, "given a started kernel"))
    assert public != hidden

    async def interrupted(when):
        task = asyncio.create_task(runner.run_all(reference))
        while when not in events:
            assert not task.done(), (events, task)
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    for when in (("start", True), ("started", True)):  # Ctrl-C while the hidden kernel starts, or once it has
        events.clear()
        asyncio.run(interrupted(when))
        assert sum(e[0] == "stopped" for e in events) == 2, f"both kernels stopped: {events}"
        assert our_kernels() == []
        assert not list(Path("/dev/shm").glob(f"grader-run-{os.getpid()}-*")), "no run folder left"
