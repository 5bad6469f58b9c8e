"""`grader new NAME`: an assignment scaffold that passes `make test` as generated.

A small regression (`net = Linear(1, 1)`, SGD, a few epochs) shows every part: the source
notebook with `locked` / `answer` tags and solution markers, `assignment.toml` with
`[task]` and a hidden seed, one value check, one equivalent form and one known mistake,
and a test grading the reference. The TA replaces the task and keeps the shape.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from grader.author.assign import assign
from grader.config import load_assignment
from grader.errors import ConfigError, UsageError

NAME = re.compile(r"^[a-z][a-z0-9_]*$")

ASSIGNMENT_TOML = '''\
# {name}: a scaffold from `grader new`; replace the task, keep the shape (docs/checks.md).
# Everything here but the student notebook is for TAs only.
title = "{name}"
student_notebook = "{name}.ipynb"
capture = ["net", "loss"]

# The numbers the task states, stated once: checks.py reads them with task("epochs").
[task]
epochs = 30
lr = 0.1
seed = 43052

[execution]
cell_timeout = 60
notebook_timeout = 180

# The hidden run: every torch.manual_seed(43052) seeds 2718 instead (other data, other start).
[[variants]]
name = "hidden"
[variants.seeds]
43052 = 2718
'''

CHECKS = '''\
"""Hidden checks for {name}. Tolerances from measurements: `grader probe {name}` and
`grader check-reference {name}` print how far correct forms and mistakes land."""

from grader.check import ModuleInfo, assert_all_close, check, task

EPOCHS = task("epochs")
PARAMETER_ATOL = 1e-4


@check(points=2, variants="all")
def parameters(student, reference):
    """the trained weight and bias of `net` match the reference solution's"""
    net = student["net"]
    if not isinstance(net, ModuleInfo):
        raise AssertionError(f"`net` should be a torch.nn.Linear, but it is {{type(net).__name__}}")
    assert_all_close({{key: (net.state_dict.get(key), value) for key, value in reference["net"].state_dict.items()}},
                     atol=PARAMETER_ATOL, rtol=0)
'''

FORMS = '''\
# Other answers to {name}, proven by `grader check-reference` (docs/checks.md).

[[equivalent]]
name = "functional_mse"
[equivalent.replace]
"loss = loss_fn(net(x), y)" = "loss = torch.nn.functional.mse_loss(net(x), y)"

[[mistake]]
name = "no_zero_grad"
loses = ["parameters"]
cause = "`optimizer.zero_grad()`를 호출하지 않아 기울기가 에폭마다 누적되었습니다."
cause_en = "`optimizer.zero_grad()` was never called, so the gradients added up over the epochs."
[mistake.replace]
"    optimizer.step()\\n    optimizer.zero_grad()" = "    optimizer.step()"
'''

TEST = '''\
"""{name} graded end to end (a scaffold from `grader new`): the reference gets full marks."""

from conftest import ROOT, grade_files


def test_reference_gets_full_marks(cache_dir):
    _, reports = grade_files("{name}", [ROOT / "reference" / "{name}.ipynb"], cache_dir)
    report = reports["{name}"]
    assert (report.score, report.status) == (report.max_score, "ok"), report.reason
'''


def _cell(make, cell_id: str, source: str, tag: str | None = None):
    cell = make(source, id=cell_id)
    if tag:
        cell.metadata["tags"] = [tag]
    return cell


def source_notebook(name: str) -> nbformat.NotebookNode:
    """The reference solution: the one source the student notebook is generated from."""
    cells = [
        _cell(new_markdown_cell, "intro", f"# {name}\n\n✏️ 표시된 셀을 채워라. Fill in the cells marked ✏️."),
        _cell(new_code_cell, "imports", "import torch", "locked"),
        _cell(new_code_cell, "data", "torch.manual_seed(43052)\nx = torch.rand(100, 1) * 2 - 1\n"
                                     "y = 2.5 + 4 * x + 0.3 * torch.randn(100, 1)\nnet = torch.nn.Linear(1, 1)",
              "locked"),
        _cell(new_markdown_cell, "training-text", "✏️ `???`를 채워 30 에폭 학습하라 (SGD, lr=0.1).\n"
                                                  "Fill in the `???` to train for 30 epochs (SGD, lr=0.1)."),
        _cell(new_code_cell, "training", "loss_fn = torch.nn.MSELoss()\n"
                                         "optimizer = torch.optim.SGD(net.parameters(), lr=0.1)\n"
                                         "for epoc in range(30):\n"
                                         "    ### BEGIN SOLUTION: loss = ???\n"
                                         "    loss = loss_fn(net(x), y)\n"
                                         "    ### END SOLUTION\n"
                                         "    ### BEGIN SOLUTION\n"
                                         "    loss.backward()\n"
                                         "    ### END SOLUTION\n"
                                         "    optimizer.step()\n"
                                         "    optimizer.zero_grad()", "answer"),
    ]
    return new_notebook(cells=cells, metadata={"kernelspec": {"display_name": "Python 3", "language": "python",
                                                              "name": "python3"}})


def scaffold(course: Path, name: str) -> list[Path]:
    """Write the new assignment's files; refuses a bad name or one that exists."""
    if not NAME.match(name):
        raise UsageError(f"{name!r}: an assignment name is lower-case letters, digits and _, starting with a letter")
    folder = course / "assignments" / name
    reference = course / "reference" / f"{name}.ipynb"
    test = course / "tests" / f"test_{name}.py"
    existing = [p for p in (folder, reference, test) if p.exists()]
    if existing:
        raise ConfigError(f"{name} exists already: {', '.join(map(str, existing))}")
    folder.mkdir(parents=True)
    reference.parent.mkdir(exist_ok=True)
    test.parent.mkdir(exist_ok=True)
    written = {folder / "assignment.toml": ASSIGNMENT_TOML, folder / "checks.py": CHECKS,
               folder / "forms.toml": FORMS, test: TEST}
    for path, text in written.items():
        path.write_text(text.format(name=name), encoding="utf-8")
    reference.write_text(nbformat.writes(source_notebook(name)) + "\n", encoding="utf-8")
    # load_assignment wants the student notebook: start from the source's own copy.
    (folder / f"{name}.ipynb").write_text(reference.read_text(encoding="utf-8"), encoding="utf-8")
    student = assign(load_assignment(course, name))
    return [reference, student, *written]
