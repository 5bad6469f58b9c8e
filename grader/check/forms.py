"""Other answers an assignment declares next to its checks, in `forms.toml`.

*Equivalent forms* are other correct answers: each must score full marks.
*Known mistakes* are wrong answers students make: each must lose exactly the points it
declares, and a submission whose values match one's is told its cause. Both are written
as edits of the reference solution:

    [[mistake]]
    name = "no_zero_grad"
    loses = ["parameters", "final_loss", "predictions"]   # checks that fail, on every run
    cause = "optimizr.zero_grad()를 호출하지 않아 …"            # what the student reads (Korean)
    cause_en = "optimizr.zero_grad() was never called, …"  # and in English
    [mistake.replace]                                      # text edits of the reference's cells
    "    optimizr.zero_grad()\\n" = ""

`cells` replaces whole cells by id (`[mistake.cells] training = '''…'''`) and `add_after`
inserts new code cells after the cell with the given id.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field

import nbformat
from nbformat import NotebookNode

from grader.config import Assignment
from grader.errors import ConfigError

FORMS_FILE = "forms.toml"


@dataclass(frozen=True)
class Form:
    """One declared answer, built from the reference solution by the edits it lists."""

    name: str
    description: str = ""
    cells: dict[str, str] = field(default_factory=dict)  # cell id -> its whole new source
    replace: dict[str, str] = field(default_factory=dict)  # text in non-locked cells -> new text
    add_after: dict[str, str] = field(default_factory=dict)  # cell id -> a new code cell after it


@dataclass(frozen=True)
class Mistake(Form):
    """A wrong answer: the checks it fails and the cause a student is told."""

    loses: tuple[str, ...] = ()
    cause: str = ""
    cause_en: str = ""


@dataclass(frozen=True)
class Forms:
    equivalent: tuple[Form, ...] = ()
    mistakes: tuple[Mistake, ...] = ()


def load_forms(assignment: Assignment) -> Forms:
    """The assignment's `forms.toml`, or no forms when it has none."""
    path = assignment.folder / FORMS_FILE
    if not path.is_file():
        return Forms()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    unknown = set(data) - {"equivalent", "mistake"}
    if unknown:
        raise ConfigError(f"{path}: unknown table(s) {', '.join(sorted(unknown))}; known: equivalent, mistake")
    equivalent = tuple(_form(Form, entry, f"{path} [[equivalent]]") for entry in data.get("equivalent", []))
    mistakes = tuple(_form(Mistake, {**entry, "loses": tuple(entry.get("loses", ()))}, f"{path} [[mistake]]")
                     for entry in data.get("mistake", []))
    names = [f.name for f in equivalent + mistakes]
    if len(set(names)) != len(names) or not all(names):
        raise ConfigError(f"{path}: every form needs a name, and names must be unique")
    for mistake in mistakes:
        if not mistake.loses or not (mistake.cause or mistake.cause_en):
            raise ConfigError(f"{path}: mistake {mistake.name!r} needs `loses` (the checks it fails) and a `cause`")
    return Forms(equivalent, mistakes)


def _form(cls, entry: dict, where: str):
    try:
        return cls(**entry)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def form_notebook(reference: NotebookNode, form: Form, locked_tag: str = "locked") -> NotebookNode:
    """The reference solution with the form's edits made; a locked cell is never edited
    (grading restores it anyway), so an edit that would touch one is an error."""
    nb = nbformat.from_dict(copy.deepcopy(reference))
    by_id = {cell.get("id"): cell for cell in nb.cells}
    for cid, source in form.cells.items():
        cell = by_id.get(cid)
        if cell is None:
            raise ConfigError(f"form {form.name!r}: no cell with id {cid!r} in the reference solution")
        cell.source = source
    for old, new in form.replace.items():
        hits = [c for c in nb.cells if old in c.source and locked_tag not in c.get("metadata", {}).get("tags", [])]
        if not hits:
            raise ConfigError(f"form {form.name!r}: {old!r} appears in no editable cell of the reference solution")
        for cell in hits:
            cell.source = cell.source.replace(old, new)
    for cid, source in form.add_after.items():
        if cid not in by_id:
            raise ConfigError(f"form {form.name!r}: no cell with id {cid!r} to add a cell after")
        index = next(i for i, c in enumerate(nb.cells) if c.get("id") == cid)
        nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
    return nb
