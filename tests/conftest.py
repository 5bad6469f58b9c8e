import asyncio
import os
from pathlib import Path

import nbformat
import pytest

from grader.config import load_assignment
from grader.grade import AssignmentGrader, GradeReport
from grader.runs import GradeOptions

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One reference cache for the whole session: each reference runs once."""
    return tmp_path_factory.mktemp("grader-cache")


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

        async def grade_all():
            options = GradeOptions(device="cpu", cache_dir=cache_dir, workers=os.cpu_count() or 2)
            grader = AssignmentGrader(load_assignment(ROOT, assignment), options)
            await grader.prepare()
            reports = await grader.grade_all([(p, p.parent) for p in paths.values()])
            return dict(zip(paths, reports))

        return asyncio.run(grade_all())

    return run


def points(report: GradeReport) -> dict[str, float]:
    """Points per check label, for assertions that say which check moved."""
    return {c.label: c.points for c in report.checks}
