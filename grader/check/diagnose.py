"""What a submission's values say beyond pass and fail: the known mistake they match, and
whether they were computed from the data at all."""

from __future__ import annotations

import numpy as np
import torch

from grader.check.captured import Captured, plain_values
from grader.check.compare import Mismatch, assert_close
from grader.check.forms import Mistake
from grader.check.reference import RunOutcome
from grader.errors import CaptureError, MissingValue
from grader.run.execute import ExecutionResult
from grader.said import Said, say

# A submission matches a known mistake when every value and the loss curve agree with the
# mistake's within this (equivalent forms differ by ~1e-6 relative; mistakes by far more).
MATCH_TOLERANCE = {"rtol": 1e-3, "atol": 1e-5, "equal_nan": True}


def numbers(captured: Captured | None, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Every numeric value of a capture (weights of modules, the loss curve), by name."""
    if captured is None:
        return {}
    try:
        plain = plain_values(captured, names, skip_missing=True)
    except (CaptureError, MissingValue):
        return {}
    out = {}
    for key, value in plain.items():
        if isinstance(value, (bool, int, float)):
            value = torch.tensor(float(value))
        if isinstance(value, torch.Tensor):
            out[key] = value
    return out


def _identical(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and np.array_equal(a.double().numpy(), b.double().numpy(), equal_nan=True)


def unchanged_by_hidden_data(student: dict[str, Captured | None], reference: dict[str, Captured],
                             names: tuple[str, ...]) -> list[str]:
    """Values that came out exactly the same in the public run and in a hidden run, where the
    reference's differ between the two: those were not computed from the data (typed in,
    or copied). Empty values (a loss curve never recorded) prove nothing and are skipped."""
    public, *hidden = reference
    student_public = numbers(student.get(public), names)
    reference_public = numbers(reference[public], names)
    unchanged = []
    for variant in hidden:
        student_hidden = numbers(student.get(variant), names)
        reference_hidden = numbers(reference[variant], names)
        for key, value in student_public.items():
            if key in unchanged or key not in student_hidden or not value.numel():
                continue
            if key in reference_public and key in reference_hidden and not _identical(
                    reference_public[key], reference_hidden[key]) and _identical(value, student_hidden[key]):
                unchanged.append(key)
    return unchanged


def unchanged_message(keys: list[str]) -> Said:
    names = ", ".join(f"`{k}`" for k in keys[:4])
    more, more_ko = (f" and {len(keys) - 4} more", f" 외 {len(keys) - 4}개") if len(keys) > 4 else ("", "")
    return say(f"{names}{more} came out exactly the same when your notebook was re-run with other data (a hidden "
               "variant), so it was not computed from the data: no automatic points",
               f"노트북을 다른 데이터로 다시 실행해도(숨겨진 데이터) 똑같이 나온 값이 있습니다: {names}{more_ko}. "
               "데이터로부터 계산된 값이 아니므로 자동 채점 점수는 없습니다")


def _first_error(problems: list[dict]) -> tuple[str, str] | None:
    return next(((p["ename"], p["evalue"]) for p in problems if p["ename"]), None)


def _matches(outcome: RunOutcome, result: ExecutionResult, names: tuple[str, ...]) -> bool:
    if outcome.captured is None or _first_error(outcome.problems):
        # A mistake that makes a cell fail is recognised by the same error.
        got = _first_error([{"ename": p.ename, "evalue": p.evalue} for p in result.problems])
        return got is not None and got == _first_error(outcome.problems)
    expected, got = numbers(outcome.captured, names), numbers(result.captured, names)
    if not expected or set(expected) != set(got):
        return False
    try:
        for key, value in expected.items():
            assert_close(got[key], value, name=key, **MATCH_TOLERANCE)
    except Mismatch:
        return False
    return True


def diagnose(mistakes: tuple[Mistake, ...], outcomes: dict[str, dict[str, RunOutcome]],
             results: dict[str, ExecutionResult], names: tuple[str, ...]) -> list[Mistake]:
    """The known mistakes whose runs this submission's runs match, on every variant."""
    return [m for m in mistakes
            if all(_matches(outcomes[m.name][variant], result, names) for variant, result in results.items())]
