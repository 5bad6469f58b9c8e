"""Expected values: the reference solution (and its declared mistakes) run by the same
engine, cached, and golden files.

The cache key covers the assignment's files, the reference notebook, the grader's
version, the torch version and the device the reference ran on, so a change in any of
them re-runs it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from nbformat import NotebookNode

from grader import __version__
from grader.check.captured import Captured, load_captured, plain_values
from grader.check.compare import Mismatch, assert_close
from grader.check.forms import Mistake, form_notebook
from grader.config import Assignment, Variant
from grader.errors import ConfigError, InvalidSubmission, MissingValue, ReferenceRunError
from grader.fsutil import hash_files, replace_dir_atomic, write_atomic
from grader.run.execute import ExecutionResult
from grader.run.notebook import PreparedNotebook, read_notebook
from grader.run.runs import Runner

GOLDEN_TOLERANCE = {"rtol": 1e-5, "atol": 1e-7}
OUTCOME_FILE = "outcome.json"


def environment_label(device: str) -> str:
    return f"torch {torch.__version__}, {device}"


def grader_files() -> dict[str, Path]:
    """The grader's own source, every subpackage: a change to it invalidates cached
    references and grades."""
    package = Path(__file__).resolve().parent.parent
    return {f"grader/{p.relative_to(package)}": p for p in package.rglob("*.py")}


def cache_folder(assignment: Assignment, runner: Runner, device: str) -> Path:
    """Where runs of the reference (and its edits) on `device` are cached."""
    key = hash_files(assignment.files_for_hash() | grader_files(), [__version__, environment_label(device)])
    return runner.options.cache_dir / "reference" / assignment.name / key


@dataclass
class RunOutcome:
    """One cached run of the reference solution or of an edit of it, on one variant."""

    captured: Captured | None
    problems: list[dict] = field(default_factory=list)  # {"ename", "evalue", "text"} per failed cell
    notes: list[str] = field(default_factory=list)  # what preparing the notebook had to repair
    status: str = "ok"

    def failure(self) -> str:
        """What went wrong, in words; empty when the run is clean."""
        return "; ".join(p["text"] for p in self.problems)


def _outcome_of(prepared: PreparedNotebook, result: ExecutionResult) -> RunOutcome:
    problems = [{"kind": p.kind, "ename": p.ename, "evalue": p.evalue, "text": p.describe()} for p in result.problems]
    if result.capture_error:
        problems.append({"kind": "capture", "ename": "", "evalue": "", "text": result.capture_error})
    return RunOutcome(result.captured, problems, prepared.notes, result.status)


async def cached_run(runner: Runner, notebook: NotebookNode, variant: Variant, folder: Path,
                     initial_parameters: tuple[np.ndarray, ...] | None = None, device: str | None = None
                     ) -> RunOutcome:
    """Run `notebook` on `variant` (from `initial_parameters`, for a replay; on `device`, by
    default the grading run's), or read the outcome cached in `folder`. Only outcomes that
    repeat are cached: a timeout, a kernel that died (out of memory on a loaded machine) or
    a failed capture may not happen again."""
    limit = runner.assignment.execution.max_capture_bytes
    record = folder / OUTCOME_FILE
    if record.is_file():
        data = json.loads(record.read_text(encoding="utf-8"))
        captured = load_captured(folder, limit) if data["captured"] else None
        return RunOutcome(captured, data["problems"], data["notes"], data["status"])
    outcome = _outcome_of(*await runner.run(notebook, variant, initial_parameters, device))
    if outcome.status in ("ok", "error") and all(p["kind"] == "error" for p in outcome.problems):
        folder.parent.mkdir(parents=True, exist_ok=True)
        build = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".build-"))
        try:
            if outcome.captured is not None:
                outcome.captured.save(build)
            (build / OUTCOME_FILE).write_text(json.dumps({
                "captured": outcome.captured is not None, "problems": outcome.problems,
                "notes": outcome.notes, "status": outcome.status}), encoding="utf-8")
            replace_dir_atomic(build, folder)
        finally:
            shutil.rmtree(build, ignore_errors=True)
    return outcome


def reference_notebook(assignment: Assignment) -> NotebookNode:
    try:
        return read_notebook(assignment.reference_notebook, assignment.execution.max_notebook_bytes)
    except InvalidSubmission as exc:
        raise ConfigError(f"{assignment.reference_notebook}: {exc}") from None


async def reference_captures(assignment: Assignment, runner: Runner, device: str,
                             notebook: NotebookNode) -> dict[str, Captured]:
    """The reference's captured values for every variant computed on `device` (`notebook`:
    the reference solution, or the form that trains on the GPU), cached or run fresh."""
    folder = cache_folder(assignment, runner, device) / "reference"
    captures = {}
    for variant in assignment.variants:
        outcome = await cached_run(runner, notebook, variant, folder / variant.name, device=device)
        if outcome.notes and not variant.hidden:
            raise ConfigError(f"{assignment.reference_notebook} does not match the student notebook: "
                              + "; ".join(outcome.notes))
        if outcome.problems or outcome.captured is None:
            raise ReferenceRunError(f"the reference solution failed under variant {variant.name!r}: "
                                    + (outcome.failure() or "no values were read back"))
        missing = [n for n in assignment.capture if n not in outcome.captured]
        if missing:
            raise ReferenceRunError(f"the reference solution does not define {', '.join(missing)} "
                                    f"(variant {variant.name!r}), which assignment.toml says to capture")
        captures[variant.name] = outcome.captured
    return captures


async def mistake_outcomes(assignment: Assignment, runner: Runner, mistakes: tuple[Mistake, ...]
                           ) -> dict[str, dict[str, RunOutcome]]:
    """Each known mistake run on every variant (cached with the reference): what a student
    who made it gets, to recognise it in a submission. On the grading run's device only:
    a match is judged far more loosely than a check (see `diagnose`), so a GPU's rounding
    does not hide one."""
    folder = cache_folder(assignment, runner, runner.options.device) / "mistakes"
    notebook = reference_notebook(assignment)

    async def one(mistake: Mistake) -> dict[str, RunOutcome]:
        edited = form_notebook(notebook, mistake)
        return {v.name: await cached_run(runner, edited, v, folder / mistake.name / v.name)
                for v in assignment.variants}

    outcomes = await asyncio.gather(*(one(m) for m in mistakes))
    return {m.name: outcome for m, outcome in zip(mistakes, outcomes)}


def _to_json(value) -> object:
    if isinstance(value, torch.Tensor):
        return {"dtype": str(value.dtype).replace("torch.", ""), "shape": list(value.shape),
                "values": value.double().flatten().tolist()}
    return value


def record_golden(assignment: Assignment, captures: dict[str, Captured], device: str) -> None:
    """Store this environment's reference values next to the reference notebook."""
    golden = _read_golden(assignment)
    golden[environment_label(device)] = {
        "grader": __version__,
        "variants": {name: {k: _to_json(v) for k, v in plain_values(c, assignment.capture).items()}
                     for name, c in captures.items()},
    }
    write_atomic(assignment.golden_file, _golden_text(golden))


def _golden_text(golden: dict) -> str:
    """Indented JSON with each value on one line, so a diff shows which value moved."""
    lines = ["{"]
    for i, (label, record) in enumerate(sorted(golden.items())):
        lines.append(f" {json.dumps(label)}: {{")
        lines.append(f'  "grader": {json.dumps(record["grader"])},')
        lines.append('  "variants": {')
        variants = sorted(record["variants"].items())
        for j, (variant, values) in enumerate(variants):
            lines.append(f"   {json.dumps(variant)}: {{")
            items = sorted(values.items())
            for k, (key, value) in enumerate(items):
                comma = "," if k < len(items) - 1 else ""
                lines.append(f"    {json.dumps(key)}: {json.dumps(value)}{comma}")
            lines.append("   }" + ("," if j < len(variants) - 1 else ""))
        lines.append("  }")
        lines.append(" }" + ("," if i < len(golden) - 1 else ""))
    return "\n".join(lines) + "\n}\n"


def _read_golden(assignment: Assignment) -> dict:
    if not assignment.golden_file.is_file():
        return {}
    try:
        return json.loads(assignment.golden_file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ConfigError(f"{assignment.golden_file} is not valid JSON: {exc}") from None


def compare_golden(assignment: Assignment, captures: dict[str, Captured], device: str) -> list[str] | None:
    """Differences from the golden values recorded for this environment; None if none are.

    Results are only promised to repeat with the same torch and device, so other
    environments' records are not compared against.
    """
    golden = _read_golden(assignment)
    label = environment_label(device)
    if label not in golden:
        return None
    differences = []
    for variant, expected_values in golden[label]["variants"].items():
        if variant not in captures:
            differences.append(f"variant {variant!r} is recorded but no longer run")
            continue
        got_values = plain_values(captures[variant], assignment.capture)
        for key in sorted(set(expected_values) | set(got_values)):
            where = f"[{variant}] {key}"
            if key not in got_values or key not in expected_values:
                differences.append(f"{where}: present in only one of golden and this run")
                continue
            expected, got = expected_values[key], got_values[key]
            try:
                if isinstance(expected, dict):
                    want = torch.tensor(expected["values"], dtype=torch.float64).reshape(expected["shape"])
                    assert_close(got.double(), want, name=where, equal_nan=True, **GOLDEN_TOLERANCE)
                elif isinstance(expected, (int, float)) and not isinstance(expected, bool):
                    assert_close(float(got), float(expected), name=where, equal_nan=True, **GOLDEN_TOLERANCE)
                elif got != expected:
                    differences.append(f"{where}: {got!r} != golden {expected!r}")
            except (Mismatch, MissingValue) as exc:
                differences.append(str(exc))
    return differences
