"""One variant of one notebook: restore locked cells, run it, under a shared kernel limit."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from nbformat import NotebookNode

from grader.config import Assignment, Variant
from grader.run.execute import ExecutionResult, RunOptions, run_notebook
from grader.run.notebook import PreparedNotebook, apply_variant, prepare_notebook


@dataclass(frozen=True)
class GradeOptions:
    """Choices made on the command line for a whole grading run."""

    device: str
    cache_dir: Path
    workers: int
    force: bool = False  # re-grade even when a cached result for the same content exists
    sandbox: bool = True  # each kernel runs isolated (grader/run/sandbox.py); False only with --no-sandbox


class Runner:
    """Runs notebooks of one assignment, at most `workers` kernels at a time."""

    def __init__(self, assignment: Assignment, template: NotebookNode, options: GradeOptions):
        self.assignment = assignment
        self.options = options
        self.templates = {v.name: apply_variant(template, v) for v in assignment.variants}
        self.limiter = asyncio.Semaphore(options.workers)

    async def run(self, submission: NotebookNode, variant: Variant) -> tuple[PreparedNotebook, ExecutionResult]:
        prepared = prepare_notebook(self.templates[variant.name], submission)
        run_options = RunOptions(capture=self.assignment.capture, device=self.options.device,
                                 public_dir=self.assignment.public_dir, cache_dir=self.options.cache_dir,
                                 sandbox=self.options.sandbox)
        async with self.limiter:
            result = await run_notebook(prepared.notebook, self.assignment.execution, run_options)
        return prepared, result

    async def run_all(self, submission: NotebookNode) -> dict[str, tuple[PreparedNotebook, ExecutionResult]]:
        variants = self.assignment.variants
        outcomes = await asyncio.gather(*(self.run(submission, v) for v in variants))
        return {v.name: outcome for v, outcome in zip(variants, outcomes)}
