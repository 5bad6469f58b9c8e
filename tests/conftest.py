import asyncio
import os
import shutil
from pathlib import Path

import nbformat
import pytest

from grader.config import load_assignment
from grader.grade import AssignmentGrader, GradeReport
from grader.run.runs import GradeOptions

ROOT = Path(__file__).resolve().parent.parent
PROVEN_REFERENCES = ROOT / ".grader-cache" / "reference"  # where `grader check-reference` caches by default


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One reference cache for the whole session, starting from the reference runs that
    `make test`'s check-reference has just cached: each runs at most once. Their key covers
    the grader's code, the assignment's files and the environment, so nothing stale is
    reused; graded results are not copied, every test grades its notebooks itself."""
    folder = tmp_path_factory.mktemp("grader-cache")
    if PROVEN_REFERENCES.is_dir():
        shutil.copytree(PROVEN_REFERENCES, folder / "reference")
    return folder


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


def grade_samples(assignment: str, expected: dict, cache_dir: Path) -> tuple[AssignmentGrader, dict[str, GradeReport]]:
    """The reference solution and every bundled sample of `assignment` graded in one batch;
    `expected` must name each sample (its label is the outcome)."""
    samples = ROOT / "submissions" / assignment
    assert {p.stem for p in samples.iterdir()} == set(expected), "every bundled sample has an expected outcome"
    files = [ROOT / "reference" / f"{assignment}.ipynb", *(samples / f"{name}.ipynb" for name in expected)]
    return grade_files(assignment, files, cache_dir)


def outcome(report: GradeReport) -> tuple[float, str, list[str]]:
    """Score, status and the diagnosed mistakes, as the samples' expectations state them."""
    return report.score, report.status, [d["name"] for d in report.diagnoses]
