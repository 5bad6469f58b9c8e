"""An assignment proves its own fairness (run by `grader check-reference`).

Graded like any submission: the reference solution and every declared equivalent form
must score full marks; every known mistake must lose exactly the checks it declares and
be recognised (its cause named); the untouched student notebook and hard-coded copies of
the reference's values, with and without a fake training loop, must earn nothing. For
each check that compares values, the margins are printed: how close the correct forms
came to the tolerance, and how close the nearest mistake came.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from dataclasses import dataclass, field

import nbformat
import torch
from nbformat import NotebookNode

from grader.check.captured import Captured, ModuleInfo
from grader.check.compare import tolerance_ratio
from grader.check.forms import Mistake, form_notebook
from grader.check.reference import reference_notebook
from grader.config import PUBLIC_VARIANT
from grader.grade import AssignmentGrader, GradeReport
from grader.run.notebook import read_notebook


@dataclass
class Case:
    """One notebook graded for the proof, and what it must score."""

    kind: str  # "reference", "equivalent", "mistake", "untouched" or "hard-coded"
    name: str
    notebook: NotebookNode
    mistake: Mistake | None = None
    report: GradeReport | None = None
    problems: list[str] = field(default_factory=list)


def _literal(tensor: torch.Tensor) -> str:
    dtype = str(tensor.dtype).replace("torch.", "")
    return f"torch.tensor({json.dumps(tensor.double().tolist())}, dtype=torch.{dtype})"


def _module_source(name: str, module: ModuleInfo) -> str:
    """Code that builds a module of the same layers (leaf layers in a Sequential, or one
    layer) and loads the given weights into it, as a student copying numbers would."""
    def layer(entry: dict) -> str:
        cls = getattr(torch.nn, entry["type"])
        accepted = inspect.signature(cls).parameters
        args = ", ".join(f"{k}={v!r}" for k, v in entry["config"].items() if k in accepted)
        return f"torch.nn.{entry['type']}({args})"

    leaves = [entry for entry in module.layers if entry["children"] == 0]
    built = (f"torch.nn.Sequential({', '.join(layer(e) for e in leaves)})" if module.type == "Sequential"
             else layer(module.layers[0]))
    weights = ", ".join(f"{key!r}: {_literal(value)}" for key, value in module.state_dict.items())
    return f"{name} = {built}\n{name}.load_state_dict({{{weights}}})\n"


def hard_coded_source(captured: Captured, names: tuple[str, ...], fake_loop: bool) -> str:
    """A cell that types in the reference's public values (and, with `fake_loop`, first
    trains a dummy parameter with the reference's optimizer, lr and step count)."""
    lines = ["import torch\n"]
    if fake_loop:
        stepped = captured.trace.stepped()[0]
        lines.append(f"_dummy = torch.zeros(1, requires_grad=True)\n"
                     f"_fake = torch.optim.{stepped.kind}([_dummy], lr={stepped.lr!r})\n"
                     f"for _ in range({stepped.steps}):\n"
                     f"    (_dummy - 1).pow(2).sum().backward()\n    _fake.step()\n    _fake.zero_grad()\n")
    for name in names:
        value = captured[name]
        if isinstance(value, ModuleInfo):
            lines.append(_module_source(name, value))
        elif isinstance(value, torch.Tensor):
            lines.append(f"{name} = {_literal(value)}\n")
        else:
            lines.append(f"{name} = {value!r}\n")
    return "".join(lines)


def proof_cases(grader: AssignmentGrader) -> list[Case]:
    assignment = grader.assignment
    reference = reference_notebook(assignment)
    template = read_notebook(assignment.template_path, assignment.execution.max_notebook_bytes)
    cases = [Case("reference", "reference solution", reference),
             Case("untouched", "student notebook as handed out", template)]
    cases += [Case("equivalent", form.name, form_notebook(reference, form)) for form in grader.forms.equivalent]
    cases += [Case("mistake", m.name, form_notebook(reference, m), m) for m in grader.forms.mistakes]
    public = grader.reference[PUBLIC_VARIANT]
    for fake_loop in (False, True):
        if fake_loop and not public.trace.stepped():
            continue
        typed = nbformat.from_dict(json.loads(json.dumps(template)))
        typed.cells.append(nbformat.v4.new_code_cell(hard_coded_source(public, assignment.capture, fake_loop)))
        cases.append(Case("hard-coded", "reference values typed in" + (" after a fake loop" if fake_loop else ""),
                          typed))
    return cases


def judge(case: Case) -> None:
    """Fill `case.problems` with every way its grade breaks the fairness promise."""
    report = case.report
    if case.kind in ("reference", "equivalent"):
        if report.score != report.max_score or report.status != "ok":
            lost = [f"{c.label} ({c.message})" for c in report.checks if c.status != "pass"]
            case.problems.append(f"scored {report.score:g}/{report.max_score:g} ({report.status}): "
                                 + "; ".join(lost or [report.reason]))
    elif case.kind == "mistake":
        for c in report.checks:
            if c.name in case.mistake.loses and c.points > 0:
                case.problems.append(f"{c.label} should lose its points but scored {c.points:g}")
            elif c.name not in case.mistake.loses and c.points < c.max_points:
                case.problems.append(f"{c.label} should keep its points but scored {c.points:g}/{c.max_points:g}: "
                                     f"{c.message}")
        if case.mistake.name not in [d["name"] for d in report.diagnoses]:
            case.problems.append("its cause was not recognised (its values do not match the mistake's own run)")
    elif report.score > 0:
        gained = [f"{c.label} {c.points:g}" for c in report.checks if c.points > 0]
        case.problems.append(f"earned {report.score:g} automatic point(s): {', '.join(gained)}")


def margins(cases: list[Case]) -> list[str]:
    """Per check that compares values: the correct forms' worst error and the nearest error
    of a mistake that loses the check, each with its multiple of the tolerance there."""
    lines = []
    names = list(dict.fromkeys(c.name for case in cases for c in case.report.checks if c.closeness))
    for name in names:
        correct = [(c.closeness, case.name) for case in cases if case.kind in ("reference", "equivalent")
                   for c in case.report.checks if c.name == name and c.closeness]
        wrong = [(c.closeness, case.name) for case in cases if case.kind == "mistake" and name in case.mistake.loses
                 for c in case.report.checks if c.name == name and c.closeness]
        worst = max(correct, key=lambda item: tolerance_ratio(item[0]), default=None)
        nearest = min(wrong, key=lambda item: tolerance_ratio(item[0]), default=None)
        parts = [f"{name}:"]
        if worst:
            parts.append(f"correct forms ≤ {_distance(*worst)}")
        if nearest:
            parts.append(f"nearest mistake {_distance(*nearest)}")
            if tolerance_ratio(nearest[0]) <= 1:
                parts.append("(within tolerance here: it loses the points through a check this one requires)")
        lines.append(" ".join(parts) + (" ✓" if worst is None or tolerance_ratio(worst[0]) <= 1 else " ✗"))
    return lines


def _distance(closeness: list[float], case: str) -> str:
    error, allowed = closeness
    return f"{error:.2g} ({tolerance_ratio(closeness):.2g}× the tolerance {allowed:.2g} there; {case})"


async def prove_fairness(grader: AssignmentGrader, reference_only: bool = False) -> tuple[list[Case], list[str]]:
    """Grade every case (the grader must be prepared), or only the reference solution;
    returns them judged, and the margins."""
    cases = proof_cases(grader)[:1] if reference_only else proof_cases(grader)

    async def grade(case: Case) -> None:
        data = json.dumps(case.notebook).encode("utf-8")
        case.report = await grader.grade_bytes(GradeReport(case.name, case.name, "ok"), data)
        judge(case)

    await asyncio.gather(*(grade(case) for case in cases))
    return cases, margins(cases)
