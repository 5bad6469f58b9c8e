"""`grader release`: the folder students receive, checked free of hidden material.

`dist/<assignment>/` holds the student notebook (outputs cleared, self-check cells added),
the assignment's public data (`public/`, copied next to the notebook as grading does) and
the self-checks as otter test files (`tests/<question>.py`). Before it replaces an older
release, the new folder is scanned for everything that must stay with the TAs: hidden
variant texts and seeds, reference and golden values (several number formats), lines of
checks.py and lines of the reference solution. Any hit stops the release.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell

from grader.config import Assignment
from grader.errors import ConfigError
from grader.fsutil import replace_dir_atomic, write_atomic
from grader.report.i18n import both
from grader.run.notebook import ANSWER, LOCKED, read_notebook, tags
from grader.author.selfcheck import SETUP_SOURCE, TESTS_DIR, check_source, load_selfchecks, otter_test

SELFCHECK_TAG = "selfcheck"
NUMBER_TOKEN = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?!\w)")
MIN_CHECK_LINE = 20  # shorter lines of checks.py ("import torch") are not telling
MIN_SOLUTION_LINE = 8
MIN_DIGITS = 4  # numbers with fewer significant digits (0.5, 30) are too common to be telling
# Solution or check lines every student writes anyway: finding one in a release gives nothing away.
COMMON_LINES = frozenset({
    "optimizr.zero_grad()", "optimizer.zero_grad()", "optimizr.step()", "optimizer.step()", "loss.backward()",
    "net.zero_grad()", "### BEGIN SOLUTION", "### END SOLUTION",
})


@dataclass(frozen=True)
class Secret:
    """Something that must not reach students, and where it comes from."""

    kind: str  # "hidden variant", "reference value", "check code", "solution"
    text: str
    source: str

    @property
    def is_number(self) -> bool:
        return bool(NUMBER_TOKEN.fullmatch(self.text))


def _significant_digits(token: str) -> int:
    digits = re.sub(r"[eE].*$", "", token).replace("-", "").replace(".", "").lstrip("0")
    return len(digits)


def _number_forms(value: float) -> set[str]:
    """How a value may be printed: repr, 7/6/5 significant digits, 4 decimals; sign and not."""
    forms = {repr(value), f"{value:.7g}", f"{value:.6g}", f"{value:.5g}", f"{value:.4f}"}
    forms |= {form.lstrip("-") for form in forms}
    return {form for form in forms if _significant_digits(form) >= MIN_DIGITS}


def _golden_numbers(golden: dict) -> list[float]:
    """Every number recorded in a golden file, all environments and variants."""
    numbers = []
    for record in golden.values():
        for values in record.get("variants", {}).values():
            for value in values.values():
                if isinstance(value, dict):
                    numbers += value.get("values", [])
                elif isinstance(value, (int, float)) and not isinstance(value, bool):
                    numbers.append(value)
    return [float(x) for x in numbers]


def hidden_material(assignment: Assignment) -> list[Secret]:
    """Everything of the assignment that students must never receive."""
    template = read_notebook(assignment.template_path, assignment.execution.max_notebook_bytes)
    public_text = "\n".join(c.source for c in template.cells)
    public_numbers = set(NUMBER_TOKEN.findall(public_text))
    toml, checks, reference_file, golden_file = (_course_path(assignment, p) for p in (
        assignment.folder / "assignment.toml", assignment.checks_path, assignment.reference_notebook,
        assignment.golden_file))
    secrets = []
    for variant in assignment.variants:
        for seed in map(str, variant.seeds.values()):
            secrets += [Secret("hidden variant", seed, f"{toml} variant {variant.name!r}"),
                        Secret("hidden variant", f"torch.manual_seed({seed})", f"{toml} variant {variant.name!r}")]
        for old, new in variant.replace.items():
            secrets.append(Secret("hidden variant", new, f"{toml} variant {variant.name!r}"))
            secrets += [Secret("hidden variant", token, f"{toml} variant {variant.name!r}")
                        for token in set(NUMBER_TOKEN.findall(new)) - set(NUMBER_TOKEN.findall(old))]
    if assignment.golden_file.is_file():
        golden = json.loads(assignment.golden_file.read_text(encoding="utf-8"))
        numbers = {form for x in _golden_numbers(golden) for form in _number_forms(x)}
        secrets += [Secret("reference value", form, golden_file)
                    for form in sorted(numbers - public_numbers)]
    for line in assignment.checks_path.read_text(encoding="utf-8").splitlines():
        if len(line.strip()) >= MIN_CHECK_LINE and line.strip() not in public_text and line.strip() not in COMMON_LINES:
            secrets.append(Secret("check code", line.strip(), checks))
    reference = read_notebook(assignment.reference_notebook, assignment.execution.max_notebook_bytes)
    for cell in reference.cells:
        if ANSWER in tags(cell):
            secrets += [Secret("solution", line.strip(), reference_file)
                        for line in cell.source.splitlines()
                        if len(line.strip()) >= MIN_SOLUTION_LINE and line.strip() not in public_text
                        and line.strip() not in COMMON_LINES]
    return secrets


def _course_path(assignment: Assignment, path: Path) -> str:
    """`path` as the TA finds it in the course folder, e.g. reference/regression_ab.ipynb."""
    course = assignment.folder.parent.parent
    return str(path.relative_to(course)) if path.is_relative_to(course) else str(path)


def find_leaks(folder: Path, secrets: list[Secret]) -> list[str]:
    """Each secret found in a file under `folder`, as 'file: kind text (source)'."""
    leaks = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        content = path.read_bytes().decode("utf-8", errors="replace")
        if path.suffix == ".ipynb":  # notebook JSON escapes quotes and non-ASCII: read the cell text too
            content += "\n" + "\n".join(c.source for c in nbformat.reads(content, as_version=4).cells)
        tokens = set(NUMBER_TOKEN.findall(content))
        for secret in secrets:
            if (secret.text in tokens) if secret.is_number else (secret.text in content):
                leaks.append(f"{path.relative_to(folder)}: {secret.kind} {secret.text!r} (from {secret.source})")
    return leaks


def release_notebook(assignment: Assignment, questions) -> nbformat.NotebookNode:
    """The student notebook with outputs cleared and the self-check cells added."""
    nb = copy.deepcopy(read_notebook(assignment.template_path, assignment.execution.max_notebook_bytes))
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if LOCKED in tags(cell):  # Jupyter refuses the edit; grading restores the cell anyway
            cell.metadata.update(editable=False, deletable=False)
    if not questions:
        return nb
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        cells += [new_code_cell(check_source(q), id=f"selfcheck-{q.name}", metadata={"tags": [SELFCHECK_TAG]})
                  for q in questions if q.after == cell.get("id")]
    setup = [new_markdown_cell(both("selfcheck_intro", sep="\n\n"), id="selfcheck-intro",
                               metadata={"tags": [SELFCHECK_TAG]}),
             new_code_cell(SETUP_SOURCE, id="selfcheck-setup", metadata={"tags": [SELFCHECK_TAG]})]
    nb.cells = cells[:1] + setup + cells[1:]
    return nb


def build_release(assignment: Assignment, out_dir: Path) -> tuple[Path, int]:
    """Write `out_dir/<assignment>/`; returns it and how many secrets it was checked against."""
    template = read_notebook(assignment.template_path, assignment.execution.max_notebook_bytes)
    questions = load_selfchecks(assignment.folder, {c.get("id"): c.source for c in template.cells}, assignment.task)
    out_dir.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=out_dir, prefix=f".{assignment.name}-"))
    try:
        if assignment.public_dir.is_dir():
            shutil.copytree(assignment.public_dir, build, dirs_exist_ok=True)
        write_atomic(build / assignment.template_path.name,
                     nbformat.writes(release_notebook(assignment, questions)) + "\n")
        for question in questions:
            test = otter_test(question, assignment.name, assignment.template_path.name)
            write_atomic(build / TESTS_DIR / f"{question.name}.py", test)
        secrets = hidden_material(assignment)
        leaks = find_leaks(build, secrets)
        if leaks:
            raise ConfigError(f"cannot release {assignment.name}: it would give students hidden material "
                              "(file in the release: what, from where); nothing was written. A line every student "
                              "writes anyway belongs in grader/author/release.py COMMON_LINES.\n  "
                              + "\n  ".join(leaks))
        target = out_dir / assignment.name
        replace_dir_atomic(build, target)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return target, len(secrets)
