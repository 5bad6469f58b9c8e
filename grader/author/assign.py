"""The student notebook, generated from the reference solution: one source per assignment.

The reference solution (`reference/<name>.ipynb`) is the source. In its cells that are
not locked, each solution is fenced nbgrader-style:

    for epoc in range(30):
        ### BEGIN SOLUTION
        yhat = alpha0 + beta0 + alpha1*x + beta1*x
        ### END SOLUTION

The fenced lines become one line, indented like the BEGIN marker: `???`, or the text the
author gives after a colon (`### BEGIN SOLUTION: optimizer = torch.optim.SGD(net.parameters(), lr=0.01)`).
The markers are comments, so the reference runs as it is. Cells keep their ids, tags and
metadata; outputs and execution counts are cleared.
"""

from __future__ import annotations

import copy
import difflib
import re
import sys
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from grader.config import Assignment, list_assignments, load_assignment
from grader.errors import ConfigError

PLACEHOLDER = "???"
LOCKED_TAG = "locked"  # grader.run.notebook.LOCKED, not imported: that module pulls in numpy, this check must stay fast
_BEGIN = re.compile(r"^(?P<indent>\s*)### BEGIN SOLUTION(?::\s?(?P<line>.*))?\s*$")
_END = re.compile(r"^\s*### END SOLUTION\s*$")


def strip_solutions(source: str, where: str) -> str:
    """`source` with every fenced solution replaced by its placeholder line."""
    kept, fence = [], None
    for number, line in enumerate(source.split("\n"), start=1):
        begin, end = _BEGIN.match(line), _END.match(line)
        if begin:
            if fence is not None:
                raise ConfigError(f"{where}, line {number}: BEGIN SOLUTION inside another (line {fence})")
            fence = number
            kept.append(begin["indent"] + (begin["line"] if begin["line"] is not None else PLACEHOLDER))
        elif end:
            if fence is None:
                raise ConfigError(f"{where}, line {number}: END SOLUTION without a BEGIN SOLUTION")
            fence = None
        elif fence is None:
            kept.append(line)
    if fence is not None:
        raise ConfigError(f"{where}, line {fence}: BEGIN SOLUTION is never ended")
    return "\n".join(kept)


def student_notebook(reference: NotebookNode, label: str = "the reference") -> NotebookNode:
    """The notebook students receive, made from the reference solution."""
    nb = nbformat.from_dict(copy.deepcopy(reference))
    for cell in nb.cells:
        locked = LOCKED_TAG in cell.get("metadata", {}).get("tags", [])
        if locked and "### BEGIN SOLUTION" in cell.source:
            raise ConfigError(f"{label}, cell {cell.get('id')!r}: a locked cell holds a solution marker")
        cell.source = strip_solutions(cell.source, f"{label}, cell {cell.get('id')!r}")
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def generated(assignment: Assignment) -> NotebookNode:
    reference = nbformat.read(assignment.reference_notebook, as_version=4)
    return student_notebook(reference, str(assignment.reference_notebook))


def cell_differences(committed: NotebookNode, wanted: NotebookNode) -> list[str]:
    """Cell by cell, how the committed student notebook differs from the generated one."""
    def described(nb: NotebookNode) -> dict[str, NotebookNode]:
        return {cell.get("id") or f"#{i}": cell for i, cell in enumerate(nb.cells)}

    have, want = described(committed), described(wanted)
    differences = []
    if list(have) != list(want):
        differences.append(f"cells (by id): committed {list(have)}, generated {list(want)}")
    for cid in want.keys() & have.keys():
        old, new = have[cid], want[cid]
        for key in ("cell_type", "metadata"):
            if old.get(key) != new.get(key):
                differences.append(f"cell {cid!r} {key}: committed {old.get(key)!r}, generated {new.get(key)!r}")
        if old.source != new.source:
            diff = difflib.unified_diff(old.source.splitlines(), new.source.splitlines(),
                                        "committed", "generated", lineterm="", n=1)
            differences.append(f"cell {cid!r} source:\n  " + "\n  ".join(diff))
        if old.get("outputs") or old.get("execution_count"):
            differences.append(f"cell {cid!r}: the committed notebook has outputs")
    if committed.metadata != wanted.metadata:
        differences.append("notebook metadata differs")
    return sorted(differences)


def drift(assignment: Assignment) -> list[str]:
    """What differs between the committed student notebook and what the source generates."""
    path = assignment.template_path
    if not path.is_file():
        return [f"{path} is missing: run `grader assign {assignment.name}`"]
    return cell_differences(nbformat.read(path, as_version=4), generated(assignment))


def assign(assignment: Assignment) -> Path:
    """Write the student notebook generated from the reference solution."""
    path = assignment.template_path
    path.write_text(nbformat.writes(generated(assignment)) + "\n", encoding="utf-8")
    return path


def check_assigned(course: Path, names: list[str]) -> bool:
    """Print, per assignment, whether its student notebook matches its source; True if all do."""
    in_sync = True
    for name in names:
        assignment = load_assignment(course, name)
        differences = drift(assignment)
        if not differences:
            print(f"{name}: student notebook matches its reference")
            continue
        in_sync = False
        print(f"{name}: {assignment.template_path} differs from what {assignment.reference_notebook} generates "
              f"(run `grader assign {name}`):")
        for difference in differences:
            print(f"  - {difference}")
    return in_sync


if __name__ == "__main__":
    # `make test` runs this first: importing nbformat only, it answers in well under a second.
    names = [a for a in sys.argv[1:] if a != "--check"] or list_assignments(Path("."))
    sys.exit(0 if check_assigned(Path("."), names) else 3)
