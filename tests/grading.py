"""Grading files of one assignment from a test, the way `grader grade` does."""

from __future__ import annotations

import asyncio
from pathlib import Path

from grader.config import load_assignment
from grader.grade import AssignmentGrader, GradeReport
from grader.runs import GradeOptions
from tests.notebooks import ROOT


def grade_files(assignment: str, files: list[Path], cache_dir: Path) -> tuple[AssignmentGrader, dict[str, GradeReport]]:
    """Grade `files` in one batch, two kernels at a time, on the CPU.

    Returns the prepared grader (its `reference` holds the reference's captures per
    variant) and the reports keyed by file stem.
    """
    grader = AssignmentGrader(load_assignment(ROOT, assignment),
                              GradeOptions(device="cpu", cache_dir=cache_dir, workers=2))

    async def run() -> list[GradeReport]:
        await grader.prepare()
        return await grader.grade_all([(path, path.parent) for path in files])

    return grader, {Path(report.file).stem: report for report in asyncio.run(run())}


def check_points(report: GradeReport) -> dict[str, float]:
    """Points of each check, by label (`name` or `name[variant]`)."""
    return {c.label: c.points for c in report.checks}
