"""Every assignment ships self-checks: each passes on the reference solution and fails on
the notebook as handed out, and a failure is said once, naming the error that caused it."""

import asyncio

import nbformat
import pytest

from conftest import ROOT
from grader.author.release import build_release
from grader.author.selfcheck import SELFCHECK_FILE
from grader.check.reference import reference_notebook
from grader.config import load_assignment
from grader.run.execute import RunOptions, run_notebook
from grader.run.notebook import ANSWER, tags

ASSIGNMENTS = sorted(p.parent.name for p in (ROOT / "assignments").glob("*/assignment.toml"))
PASSED = "All test cases passed!"


def selfcheck_outputs(nb: nbformat.NotebookNode) -> dict[str, str]:
    return {c.id: "\n".join(o.get("data", {}).get("text/plain", "") + o.get("text", "") for o in c.outputs)
            for c in nb.cells if c.get("id", "").startswith("selfcheck-q")}


def with_answers(released: nbformat.NotebookNode, solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The released notebook with its answer cells as the solution wrote them."""
    nb = nbformat.from_dict(released)
    answers = {c.get("id"): c.source for c in solution.cells}
    for cell in nb.cells:
        if ANSWER in tags(cell):
            cell.source = answers[cell.id]
    return nb


def run_released(name: str, tmp_path) -> dict[str, tuple[dict[str, str], list[str]]]:
    """Self-check outputs by cell, and the errors cells raised, for the reference's answers
    and for the untouched notebook."""
    assignment = load_assignment(ROOT, name)
    folder, _ = build_release(assignment, tmp_path)
    released = nbformat.read(folder / f"{name}.ipynb", as_version=4)
    notebooks = {"reference": with_answers(released, reference_notebook(assignment)), "untouched": released}

    async def run_all():
        options = RunOptions(capture=(), public_dir=folder, sandbox=False)  # as on a student's machine
        return await asyncio.gather(*(run_notebook(nb, assignment.execution, options) for nb in notebooks.values()))

    results = asyncio.run(run_all())
    return {label: (selfcheck_outputs(r.notebook), [p.ename for p in r.problems]) for label, r in zip(notebooks, results)}


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_selfchecks_pass_on_the_reference_and_fail_on_the_untouched_notebook(name, tmp_path):
    assert (ROOT / "assignments" / name / SELFCHECK_FILE).is_file(), f"{name} ships no self-checks"
    out = run_released(name, tmp_path)
    reference, reference_errors = out["reference"]
    assert reference and not reference_errors, f"{name}: no self-check cells, or they raised {reference_errors}"
    for cell, text in reference.items():
        assert PASSED in text, f"{name} {cell} fails on the reference: {text}"
    untouched, errors = out["untouched"]
    failed = [text for text in untouched.values() if PASSED not in text]
    assert failed, untouched
    for text in failed:
        said = [line.strip() for line in text.splitlines() if line.strip().startswith("AssertionError:")]
        assert len(said) == len(set(said)), f"{name}: a failure is said more than once: {text}"
    if errors:  # the answer cells as handed out do not run (`???`): the self-check names the error above it
        assert any("the cell above raised an error" in text and "위의 셀에서 오류가 났습니다" in text
                   and any(f"({ename}:" in text for ename in errors) for text in failed), failed
