"""Expected values from the student's own starting point.

A correct answer that builds its layers in another order, or draws one more random
number, starts training elsewhere than the reference, so its results differ from the
reference's although nothing is wrong. The kernel copies every optimizer's parameters
when it is built; where the student's start differs from the reference's, the reference
solution is run again from the student's start (same variant, same data), and that run
is what the student's values are compared with, on the device the student computed on.
Replays are cached by the start's hash.

The start is the student kernel's claim, so it is only accepted when it could be a
start: the same parameter shapes as the reference's, finite, and on the scale of the
reference's initialisation. A replay then computes honestly from it, in a kernel that
runs no student code, so matching it still means computing the training.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import torch
from nbformat import NotebookNode

from grader.check.captured import Captured, NoCapture
from grader.check.checks import NotJudged
from grader.check.reference import cache_folder, cached_run
from grader.config import Variant
from grader.errors import CaptureError, ReferenceRunError
from grader.run.runs import Runner
from grader.said import say

SCALE_FACTOR = 10.0  # a start may be this many times larger than the reference's largest value


class Incomparable(NoCapture):
    """Stands in for the reference when the student's values cannot be compared with it;
    every check that reads it is not judged, for the one reason given."""

    error = NotJudged


def _shapes(tensors: list[torch.Tensor]) -> list[tuple[int, ...]]:
    return [tuple(t.shape) for t in tensors]


def align(student: list[torch.Tensor], reference: list[torch.Tensor]) -> list[torch.Tensor] | None:
    """The student's starting tensors in the reference's order: each reference tensor takes
    the next unused student tensor of its shape (so [α0, β0, α1, β1] fits [α0, α1, β0, β1]);
    None when the shapes differ."""
    if sorted(_shapes(student)) != sorted(_shapes(reference)):
        return None
    unused = list(student)
    aligned = []
    for tensor in reference:
        match = next(i for i, candidate in enumerate(unused) if candidate.shape == tensor.shape)
        aligned.append(unused.pop(match))
    return aligned


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x.double(), y.double()) for x, y in zip(a, b))


def _shape_list(tensors: list[torch.Tensor]) -> str:
    return ", ".join(str(list(shape)) for shape in _shapes(tensors)) or "none"


def start_to_replay(student: Captured | None, reference: Captured) -> list[torch.Tensor] | Incomparable | None:
    """Where the student's training started, if a replay is needed: None when the reference
    itself is the right comparison (same start, or no single optimizer to tell), the aligned
    start for a replay, or `Incomparable` saying why nothing can be compared."""
    try:
        got = student.trace.starting_parameters if student is not None else None
    except CaptureError:
        return None
    expected = reference.trace.starting_parameters
    if got is None or expected is None:
        return None
    aligned = align(got, expected)
    if aligned is None:
        got_shapes, expected_shapes = _shape_list(got), _shape_list(expected)
        return Incomparable(say(f"the parameters your optimizer trains have the shapes {got_shapes}, the reference "
                                f"solution's {expected_shapes}: the model differs, so its values are not compared "
                                "with the reference's",
                                f"옵티마이저가 학습하는 파라미터의 shape이 {got_shapes}이고, 참고 답안은 "
                                f"{expected_shapes}입니다. 모델이 달라서 값을 참고 답안과 비교하지 않았습니다"))
    if _same(aligned, expected):
        return None
    if not all(torch.isfinite(t).all() for t in aligned):
        return Incomparable(say("training started from inf or nan values, so its values are not compared",
                                "학습이 inf나 nan 값에서 시작해서 값을 비교하지 않았습니다"))
    scale = SCALE_FACTOR * max(float(t.abs().max()) for t in expected if t.numel()) + 1e-6
    if any(t.numel() and float(t.abs().max()) > scale for t in aligned):
        return Incomparable(say("training started from values far larger than the task's initialisation, "
                                "so its values are not compared",
                                "학습이 과제의 초깃값보다 훨씬 큰 값에서 시작해서 값을 비교하지 않았습니다"))
    return [t.to(e.dtype) for t, e in zip(aligned, expected)]


class Replays:
    """The reference solution re-run from students' starts, each start once per variant and device."""

    def __init__(self, runner: Runner, notebooks: dict[str, NotebookNode]):
        self.runner = runner
        self.notebooks = notebooks  # the reference notebook run on each device
        self.running: dict[Path, asyncio.Task] = {}

    async def expected(self, variant: Variant, student: Captured | None, reference: Captured, device: str
                       ) -> Captured | Incomparable:
        """What the student's values of `variant` are compared with; `reference`: the
        reference's own run on `device`, the one the student computed on."""
        start = start_to_replay(student, reference)
        if start is None:
            return reference
        if isinstance(start, Incomparable):
            return start
        arrays = tuple(t.detach().cpu().numpy() for t in start)
        digest = hashlib.sha256(b"".join(a.tobytes() + str(a.shape).encode() for a in arrays)).hexdigest()[:24]
        key = f"{variant.name}-{digest}"
        folder = cache_folder(self.runner.assignment, self.runner, device) / "replay" / key
        if folder not in self.running:
            self.running[folder] = asyncio.ensure_future(
                cached_run(self.runner, self.notebooks[device], variant, folder, arrays, device))
        outcome = await asyncio.shield(self.running[folder])
        if outcome.problems or outcome.captured is None:
            raise ReferenceRunError(f"the reference solution failed when re-run from this submission's starting "
                                    f"values (variant {variant.name!r}): {outcome.failure() or 'no values'}")
        return outcome.captured
