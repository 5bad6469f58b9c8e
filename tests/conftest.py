import asyncio
import os
from pathlib import Path

import nbformat
import pytest

from grader.config import load_assignment
from grader.grade import AssignmentGrader, GradeReport
from grader.run.runs import GradeOptions

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One reference cache for the whole session: each reference runs once."""
    return tmp_path_factory.mktemp("grader-cache")


def grade_files(assignment: str, files: list[Path], cache_dir: Path) -> tuple[AssignmentGrader, dict[str, GradeReport]]:
    """Grade `files` in one batch on the CPU, as `grader grade` does.

    Returns the prepared grader (its `reference` holds the reference's captures per
    variant) and the reports keyed by file stem.
    """
    grader = AssignmentGrader(load_assignment(ROOT, assignment),
                              GradeOptions(device="cpu", cache_dir=cache_dir, workers=os.cpu_count() or 2))

    async def run() -> list[GradeReport]:
        await grader.prepare()
        return await grader.grade_all([(path, path.parent) for path in files])

    return grader, {Path(report.file).stem: report for report in asyncio.run(run())}


@pytest.fixture(scope="session")
def grade(cache_dir, tmp_path_factory):
    """grade(assignment, {name: notebook or path}) -> {name: GradeReport}, graded concurrently."""
    folder = tmp_path_factory.mktemp("submissions")

    def run(assignment: str, submissions: dict) -> dict[str, GradeReport]:
        paths = {}
        for name, item in submissions.items():
            if isinstance(item, Path):
                paths[name] = item
            else:
                paths[name] = folder / assignment / f"{name}.ipynb"
                paths[name].parent.mkdir(parents=True, exist_ok=True)
                nbformat.write(item, paths[name])

        _, by_stem = grade_files(assignment, list(paths.values()), cache_dir)
        return {name: by_stem[path.stem] for name, path in paths.items()}

    return run


def points(report: GradeReport) -> dict[str, float]:
    """Points per check label, for assertions that say which check moved."""
    return {c.label: c.points for c in report.checks}
