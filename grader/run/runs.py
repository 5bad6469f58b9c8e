"""One variant of one notebook: restore locked cells, run it, under a shared kernel limit."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from nbformat import NotebookNode

from grader.config import Assignment, Variant
from grader.run.cell_names import student_cell_names
from grader.run.execute import ExecutionResult, RunOptions, StartedKernel, run_notebook, start_kernel
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

    @property
    def devices(self) -> tuple[str, ...]:
        """Where a submission may compute: with a GPU, on it or on the CPU; without one,
        only on the CPU (a notebook's cuda is mapped there)."""
        return ("cpu",) if self.device == "cpu" else ("cpu", self.device)


class Runner:
    """Runs notebooks of one assignment, at most `workers` at a time (each slot may also
    have the next variant's kernel starting, idle until its turn)."""

    def __init__(self, assignment: Assignment, template: NotebookNode, options: GradeOptions):
        self.assignment = assignment
        self.options = options
        self.templates = {v.name: apply_variant(template, v) for v in assignment.variants}
        self.slots: asyncio.Queue[int] = asyncio.Queue()  # worker slots; with cuda, each has its GPU
        for slot in range(options.workers):
            self.slots.put_nowait(slot)
        self.gpus = visible_gpus() if options.device == "cuda" else []

    @contextlib.asynccontextmanager
    async def _slot(self):
        slot = await self.slots.get()
        try:
            yield slot
        finally:
            self.slots.put_nowait(slot)

    def _options(self, slot: int, variant: Variant, initial_parameters: tuple[np.ndarray, ...] | None = None,
                 device: str | None = None) -> RunOptions:
        return RunOptions(capture=self.assignment.capture,
                          device=kernel_device(device or self.options.device, slot, self.gpus),
                          public_dir=self.assignment.public_dir, cache_dir=self.options.cache_dir,
                          sandbox=self.options.sandbox, seed_map=dict(variant.seeds),
                          initial_parameters=initial_parameters)

    async def run(self, submission: NotebookNode, variant: Variant,
                  initial_parameters: tuple[np.ndarray, ...] | None = None,
                  device: str | None = None) -> tuple[PreparedNotebook, ExecutionResult]:
        """One variant; with `initial_parameters`, training starts from them (a replay); on
        `device` (`cpu`, `cuda`), by default the grading run's."""
        prepared = prepare_notebook(self.templates[variant.name], submission)
        async with self._slot() as slot:
            return await self._run_on(self._options(slot, variant, initial_parameters, device), prepared)

    async def _run_on(self, options: RunOptions, prepared: PreparedNotebook,
                      kernel: StartedKernel | None = None) -> tuple[PreparedNotebook, ExecutionResult]:
        result = await run_notebook(prepared.notebook, self.assignment.execution, options, kernel)
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
        worker limit keeps every core busy with other submissions instead. While one runs,
        the next one's kernel starts: it holds nothing of the submission until its turn,
        after the previous kernel was stopped."""
        variants = self.assignment.variants
        # Prepared before any kernel starts: a notebook that cannot be prepared leaves none behind.
        prepared = [prepare_notebook(self.templates[v.name], submission) for v in variants]
        runs, following = {}, None
        async with self._slot() as slot:
            try:
                for index, variant in enumerate(variants):
                    kernel = await following if following else None
                    following = None
                    if index + 1 < len(variants):
                        following = asyncio.create_task(
                            start_kernel(self.assignment.execution, self._options(slot, variants[index + 1])))
                    runs[variant.name] = await self._run_on(self._options(slot, variant), prepared[index], kernel)
            finally:
                if following:
                    await _discard(following)
        return runs


async def _discard(starting: asyncio.Task) -> None:
    """Stop a kernel started for a run that will not happen (Ctrl-C, or an error)."""
    starting.cancel()
    try:
        kernel = await starting
    except asyncio.CancelledError:
        if not starting.cancelled():  # this task was cancelled while waiting, not the start
            raise
        return  # cancelled while starting: it cleaned up after itself
    except Exception:  # noqa: BLE001 (it failed and cleaned up after itself; the error in flight is what counts)
        return
    await kernel.close()
