"""Expected values: the reference solution run by the same engine, cached, and golden files.

The cache key covers the assignment's files, the reference notebook, the grader's
version, the torch version and the device, so a change in any of them re-runs it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import torch

from grader import __version__
from grader.check.captured import Captured, ModuleInfo, load_captured
from grader.check.compare import Mismatch, assert_close
from grader.config import PUBLIC_VARIANT, Assignment
from grader.errors import ConfigError, MissingValue, ReferenceRunError
from grader.fsutil import hash_files, replace_dir_atomic, write_atomic
from grader.run.notebook import read_notebook
from grader.run.runs import Runner

GOLDEN_TOLERANCE = {"rtol": 1e-5, "atol": 1e-7}


def environment_label(device: str) -> str:
    return f"torch {torch.__version__}, {device}"


def grader_files() -> dict[str, Path]:
    """The grader's own source: a change to it invalidates cached references and grades."""
    package = Path(__file__).parent
    return {f"grader/{p.relative_to(package)}": p for p in package.rglob("*.py")}


def cache_folder(assignment: Assignment, runner: Runner) -> Path:
    key = hash_files(assignment.files_for_hash() | grader_files(),
                     [__version__, environment_label(runner.options.device)])
    return runner.options.cache_dir / "reference" / assignment.name / key


async def reference_captures(assignment: Assignment, runner: Runner) -> dict[str, Captured]:
    """The reference's captured values for every variant, from the cache or a fresh run."""
    folder = cache_folder(assignment, runner)
    names = [v.name for v in assignment.variants]
    if all((folder / name / "manifest.json").is_file() for name in names):
        return {name: load_captured(folder / name, assignment.execution.max_capture_bytes) for name in names}

    reference = read_notebook(assignment.reference_notebook, assignment.execution.max_notebook_bytes)
    runs = await runner.run_all(reference)
    captures = {}
    for name, (prepared, result) in runs.items():
        if prepared.notes and name == PUBLIC_VARIANT:
            raise ConfigError(f"{assignment.reference_notebook} does not match the student notebook: "
                              + "; ".join(prepared.notes))
        problems = [p.describe() for p in result.problems] + ([result.capture_error] if result.capture_error else [])
        if problems or result.captured is None:
            raise ReferenceRunError(f"the reference solution failed under variant {name!r}: " + "; ".join(problems))
        missing = [n for n in assignment.capture if n not in result.captured]
        if missing:
            raise ReferenceRunError(f"the reference solution does not define {', '.join(missing)} "
                                    f"(variant {name!r}), which assignment.toml says to capture")
        captures[name] = result.captured

    folder.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".build-"))
    try:
        for name, captured in captures.items():
            captured.save(build / name)
        replace_dir_atomic(build, folder)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return captures


def _plain_values(captured: Captured, names: tuple[str, ...]) -> dict[str, object]:
    """Tensors, numbers and text of a capture, modules split into weights and layer types,
    plus the training trace (the loss curve and the optimizers' step counts)."""
    trace = captured.trace
    plain: dict[str, object] = {
        "trace:losses": torch.from_numpy(trace.losses),
        "trace:optimizers": " ".join(f"{o.kind}(lr={o.lr}, steps={o.steps})" for o in trace.optimizers),
    }
    for name in names:
        value = captured[name]
        if isinstance(value, ModuleInfo):
            plain[f"{name}:layers"] = " ".join(value.layer_types())
            plain.update({f"{name}.{k}": v for k, v in value.state_dict.items()})
        elif isinstance(value, dict):
            plain.update({f"{name}[{k}]": v for k, v in value.items()})
        else:
            plain[name] = value
    return plain


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
        "variants": {name: {k: _to_json(v) for k, v in _plain_values(c, assignment.capture).items()}
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
        got_values = _plain_values(captures[variant], assignment.capture)
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
