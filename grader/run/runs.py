"""One variant of one notebook: restore locked cells, run it, under a shared kernel limit."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from nbformat import NotebookNode

from grader.config import Assignment, Variant
from grader.run.cell_names import student_cell_names
from grader.run.execute import ExecutionResult, RunOptions, run_notebook
from grader.run.gpu import kernel_device, visible_gpus
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
        self.slots: asyncio.Queue[int] = asyncio.Queue()  # worker slots; with cuda, each has its GPU
        for slot in range(options.workers):
            self.slots.put_nowait(slot)
        self.gpus = visible_gpus() if options.device == "cuda" else []

    async def run(self, submission: NotebookNode, variant: Variant,
                  initial_parameters: tuple[np.ndarray, ...] | None = None) -> tuple[PreparedNotebook, ExecutionResult]:
        """One variant; with `initial_parameters`, training starts from them (a replay)."""
        prepared = prepare_notebook(self.templates[variant.name], submission)
        slot = await self.slots.get()
        try:
            run_options = RunOptions(capture=self.assignment.capture,
                                     device=kernel_device(self.options.device, slot, self.gpus),
                                     public_dir=self.assignment.public_dir, cache_dir=self.options.cache_dir,
                                     sandbox=self.options.sandbox, seed_map=dict(variant.seeds),
                                     initial_parameters=initial_parameters)
            result = await run_notebook(prepared.notebook, self.assignment.execution, run_options)
        finally:
            self.slots.put_nowait(slot)
        # Cells numbered as in the student's own notebook (the release's self-check cells count).
        ran = result.notebook or prepared.notebook
        result.problems = [replace(p, cell_index=prepared.position_of(p.cell_index),
                                   traceback=student_cell_names(p.traceback, ran, prepared.position_of),
                                   evalue=student_cell_names(p.evalue, ran, prepared.position_of))
                           for p in result.problems]
        return prepared, result

    async def run_all(self, submission: NotebookNode) -> dict[str, tuple[PreparedNotebook, ExecutionResult]]:
        """Every variant, one after the other, public first: a submission's runs never overlap,
        so a hidden run cannot signal anything to the public one (load, timing); the
        worker limit keeps every core busy with other submissions instead."""
        return {v.name: await self.run(submission, v) for v in self.assignment.variants}
