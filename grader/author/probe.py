"""`grader probe NAME`: how far answers land from the reference, before tolerances are chosen.

What a TA otherwise measures by hand, with check-reference's own machinery: the declared
equivalent forms and known mistakes, plus float64 (the reference solution computed in
float64 from the same data and initial weights: grader/run/kernel/float64.py, run as its
first cell), one epoch fewer and one more (`range(epochs±1)`, from `[task] epochs`), each
graded against the reference; for every value a check compares,
the largest difference found and the tolerance there. With `--seed N` the reference also
runs with the public seed mapped to N: the checks that judge behaviour on their own (those
not reading `reference`: still diverges, still a clean success) must still pass there, and
the float64 probe under that seed says whether float32 and float64 agree. The table is
printed as comment lines, to paste into checks.py.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import inspect
import json

import nbformat
from nbformat import NotebookNode

from grader.author.proof import Case, proof_cases
from grader.check.checks import load_checks
from grader.check.compare import tolerance_ratio
from grader.check.forms import Form, form_notebook
from grader.check.reference import reference_notebook
from grader.config import Assignment, Variant
from grader.grade import AssignmentGrader, GradeReport
from grader.run.kernel import kernel_code

CANDIDATE = "candidate"


def probe_notebooks(assignment: Assignment) -> dict[str, NotebookNode]:
    """float64 and ±1 epoch, as edits of the reference solution, by name."""
    reference = reference_notebook(assignment)
    float64 = nbformat.from_dict(copy.deepcopy(reference))
    float64.cells.insert(0, nbformat.v4.new_code_cell(kernel_code("float64", "install", {})))
    notebooks = {"float64": float64}
    epochs = assignment.task.get("epochs")
    if isinstance(epochs, int):
        for step in (-1, 1):
            name = f"{epochs + step} epochs"
            notebooks[name] = form_notebook(reference, Form(name, replace={f"range({epochs})": f"range({epochs + step})"}))
    return notebooks


def with_candidate_seed(assignment: Assignment, seed: int) -> Assignment:
    """The assignment with one hidden variant: every public seed its variants map goes to `seed`."""
    public_seeds = {key for v in assignment.variants for key in v.seeds}
    if "seed" in assignment.task:
        public_seeds.add(str(assignment.task["seed"]))
    # Named after the seed: reference runs are cached per variant name.
    variant = Variant(f"{CANDIDATE}_{seed}", seeds={key: seed for key in public_seeds})
    return dataclasses.replace(assignment, variants=(assignment.variants[0], variant))


async def _grade(grader: AssignmentGrader, cases: list[Case]) -> None:
    async def one(case: Case) -> None:
        data = json.dumps(case.notebook).encode("utf-8")
        case.report = await grader.grade_bytes(GradeReport(case.name, case.name, "ok"), data)

    await asyncio.gather(*(one(case) for case in cases))


def distance_table(cases: list[Case]) -> list[str]:
    """One row per case, one column per compared value: the largest difference and, on
    the header, the tolerance; `ok`/`LOST` says whether the check passed."""
    labels = list(dict.fromkeys(c.label for case in cases for c in case.report.checks if c.closeness))
    tolerance = {c.label: c.closeness[1] for case in cases for c in case.report.checks if c.closeness}
    headers = [f"{label} (tol {tolerance[label]:.2g})" for label in labels]
    widths = [max(len(header), 12) + 2 for header in headers]
    names = [f"{case.kind[:4]} {case.name}" for case in cases]
    first = max(map(len, names)) + 2
    lines = [f"{'answer':<{first}}" + "".join(f"{h:>{w}}" for h, w in zip(headers, widths))]
    for case, name in zip(cases, names):
        by_label = {c.label: c for c in case.report.checks}
        cells = []
        for label, width in zip(labels, widths):
            result = by_label.get(label)
            if result is None or not result.closeness:
                cells.append(f"{'—' if result is None else result.status:>{width}}")
                continue
            verdict = "ok" if tolerance_ratio(result.closeness) <= 1 else "LOST"
            cells.append(f"{f'{result.closeness[0]:.2g} {verdict}':>{width}}")
        failed = "" if case.report.status == "ok" else f"  ({case.report.status}: {case.report.reason[:60]})"
        lines.append(f"{name:<{first}}" + "".join(cells) + failed)
    return lines


async def probe(grader: AssignmentGrader, seed: int | None = None) -> list[str]:
    """The table (comment lines) for a prepared grader, and the candidate seed's verdict."""
    assignment = grader.assignment
    cases = [case for case in proof_cases(grader) if case.kind in ("reference", "equivalent", "mistake")]
    probes = [Case("probe", name, notebook) for name, notebook in probe_notebooks(assignment).items()]
    await _grade(grader, cases + probes)
    lines = [f"# grader probe {assignment.name}: largest |got − expected| per compared value"]
    lines += [f"#   {line}" for line in distance_table(cases + probes)]
    lines.append("#   (float64: the reference solution computed in float64, from the same data and initial weights)")
    if seed is not None:
        lines += await _candidate(assignment, grader, seed, probes[0])
    return lines


async def _candidate(assignment: Assignment, grader: AssignmentGrader, seed: int, float64: Case) -> list[str]:
    candidate = AssignmentGrader(with_candidate_seed(assignment, seed), grader.options)
    variant = candidate.assignment.variants[1].name
    candidate.forms = dataclasses.replace(candidate.forms, mistakes=())  # no diagnosis needed here
    await candidate.prepare()
    runs = [Case("reference", "reference solution", reference_notebook(assignment)),
            Case("probe", "float64", float64.notebook)]
    await _grade(candidate, runs)
    behaviour = [c.name for c in load_checks(candidate.assignment)
                 if "reference" not in inspect.signature(c.func).parameters and c.runs_on(variant)]
    own = {c.name: c for c in runs[0].report.checks if c.variant == variant}
    kept = [name for name in behaviour if own.get(name) and own[name].status == "pass"]
    lost = [name for name in behaviour if name not in kept]
    agree = [c for c in runs[1].report.checks if c.variant == variant and c.closeness]
    far = [f"{c.name} {c.closeness[0]:.2g} (tol {c.closeness[1]:.2g})" for c in agree
           if tolerance_ratio(c.closeness) > 1]
    return [f"# candidate hidden seed {seed}:",
            ("#   behaviour checks: none declared (every check compares with the reference)" if not behaviour else
             f"#   behaviour checks on the reference: {', '.join(kept) or 'none'} pass"
             + (f"; {', '.join(lost)} FAIL (the task behaves otherwise there)" if lost else "")),
            "#   float32 vs float64: " + ("agree within every tolerance" if agree and not far else
                                          "differ: " + "; ".join(far) if far else "no value compared")]
