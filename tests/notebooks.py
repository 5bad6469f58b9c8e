"""Building test submissions from an assignment's student notebook."""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell

ROOT = Path(__file__).resolve().parent.parent


def student_notebook(assignment: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "assignments" / assignment / f"{assignment}.ipynb", as_version=4)


def make_submission(assignment: str, answers: dict[str, str], append: list[str] = (),
                    edit: dict[str, str] | None = None) -> nbformat.NotebookNode:
    """The student notebook with answer cells filled in (by cell id), extra code cells
    appended at the end, and any other cell's text replaced through `edit`."""
    nb = copy.deepcopy(student_notebook(assignment))
    for cell in nb.cells:
        if cell.id in answers:
            cell.source = answers[cell.id]
        if edit and cell.id in edit:
            cell.source = edit[cell.id]
    nb.cells += [new_code_cell(source) for source in append]
    return nb


def write_submission(nb: nbformat.NotebookNode, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path
