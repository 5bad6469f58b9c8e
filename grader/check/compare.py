"""Comparison helpers for checks: shape and dtype first, then values, nan/inf explicitly.

A failure says which element differed and by how much, like `torch.testing.assert_close`
and PrairieLearn's helpers. Each `Mismatch` carries two texts: `message` with the numbers
(for TAs and public checks) and `summary` without expected values (safe to show for a
hidden variant).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator

import numpy as np
import torch

from grader.said import Said, joined, korean, say


NOT_EXPECTED = say("not the expected value", "정답 값과 다릅니다")


class Mismatch(AssertionError):
    """A compared value is wrong; `summary` says which without revealing the expected value
    or anything of the student's value (under a hidden variant it could encode the seed)."""

    def __init__(self, message: str, summary: str = NOT_EXPECTED):
        super().__init__(message)
        self.message = message
        self.summary = summary


class Closeness:
    """The comparisons one check made: how near each came to its tolerance."""

    def __init__(self):
        self.pairs: list[tuple[float, float]] = []  # (worst |got − expected|, tolerance there)

    def worst(self) -> list[float] | None:
        """The pair with the largest error relative to its tolerance, or None if none was made."""
        if not self.pairs:
            return None
        return list(max(self.pairs, key=tolerance_ratio))


def tolerance_ratio(pair: tuple[float, float] | list[float]) -> float:
    """|got − expected| as a multiple of the tolerance allowed there (≤ 1 passes)."""
    error, allowed = pair
    if allowed > 0:
        return error / allowed
    return 0.0 if error == 0 else math.inf


_closeness: contextvars.ContextVar[Closeness | None] = contextvars.ContextVar("closeness", default=None)


@contextlib.contextmanager
def recording_closeness() -> Iterator[Closeness]:
    """Record every `assert_close` made inside (the margins `check-reference` prints)."""
    record = Closeness()
    token = _closeness.set(record)
    try:
        yield record
    finally:
        _closeness.reset(token)


def _record(abs_err: float, allowed: float) -> None:
    record = _closeness.get()
    if record is not None:
        record.pairs.append((float(abs_err), float(allowed)))


def _describe_type(value) -> Said:
    if isinstance(value, torch.Tensor):
        dtype, shape = str(value.dtype).replace('torch.', ''), tuple(value.shape)
        return say(f"a {dtype} tensor of shape {shape}", f"shape이 {shape}인 {dtype} 텐서")
    if isinstance(value, np.ndarray):
        return say(f"a {value.dtype} array of shape {value.shape}", f"shape이 {value.shape}인 {value.dtype} 배열")
    return say(f"a {type(value).__name__}", f"{type(value).__name__} 값")


YOUR_VALUE = say("your value", "제출한 값")
EXPECTED_VALUE = say("the expected value", "정답 값")


def _as_array(value, name: str, role: Said) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:
            value = value.float()
        return value.numpy()
    if isinstance(value, np.ndarray) and value.dtype != object:
        return value
    if isinstance(value, (bool, int, float, np.number, np.bool_)):
        return np.asarray(value)
    kind = _describe_type(value)
    raise Mismatch(say(f"{name}: {role} is {kind}, not a number or tensor",
                       f"{_ko(name)}: {role.ko}이 숫자나 텐서가 아니라 {kind.ko}입니다"))


def _dtype_name(value, array: np.ndarray) -> str:
    if isinstance(value, torch.Tensor):
        return str(value.dtype).replace("torch.", "")
    return str(array.dtype)


def _ko(name: str) -> str:
    """A value's name on a Korean page: its Korean when it was given as `say(en, ko)`."""
    return korean(name) or name


def _fmt(x) -> str:
    return f"{x.real:.7g}" if np.isreal(x) else f"{complex(x):.7g}"


def _index(flat: int, shape: tuple) -> tuple:
    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()


def assert_close(got, expected, *, name: str, rtol: float = 1e-5, atol: float = 1e-8,
                 equal_nan: bool = False, check_dtype: bool = False) -> None:
    """Raise `Mismatch` unless |got − expected| ≤ atol + rtol·|expected| everywhere.

    inf matches inf of the same sign; nan matches nan only with `equal_nan`, and then
    the nan positions must agree exactly.
    """
    expected_array = _as_array(expected, name, EXPECTED_VALUE)
    got_array = _as_array(got, name, YOUR_VALUE)
    if got_array.shape != expected_array.shape:
        got_shape, expected_shape = got_array.shape, expected_array.shape
        raise Mismatch(say(f"{name}: shape {got_shape}, expected shape {expected_shape}",
                           f"{_ko(name)}: shape이 {got_shape}입니다. 정답의 shape은 {expected_shape}입니다"),
                       say(f"{name}: not the expected shape", f"{_ko(name)}: shape이 정답과 다릅니다"))
    got_dtype, expected_dtype = _dtype_name(got, got_array), _dtype_name(expected, expected_array)
    if check_dtype and got_dtype != expected_dtype:
        raise Mismatch(say(f"{name}: dtype {got_dtype}, expected {expected_dtype}",
                           f"{_ko(name)}: dtype이 {got_dtype}입니다. 정답의 dtype은 {expected_dtype}입니다"))
    if got_array.dtype.kind not in "biufc":
        raise Mismatch(say(f"{name}: values of dtype {got_array.dtype} cannot be compared as numbers",
                           f"{_ko(name)}: dtype이 {got_array.dtype}인 값은 숫자로 비교할 수 없습니다"))

    g = got_array.astype(np.complex128 if got_array.dtype.kind == "c" else np.float64).ravel()
    e = expected_array.astype(np.complex128 if expected_array.dtype.kind == "c" else np.float64).ravel()
    shape = got_array.shape
    n = g.size

    g_nan, e_nan = np.isnan(g), np.isnan(e)
    nan_wrong = (g_nan != e_nan) if equal_nan else (g_nan | e_nan)
    if nan_wrong.any():
        k = int(np.flatnonzero(nan_wrong)[0])
        at = say(f"index {_index(k, shape)}", f"인덱스 {_index(k, shape)}") if shape else say("the value", "값")
        if g_nan[k] and e_nan[k]:
            detail = say("both are nan, and this check does not accept nan",
                         "둘 다 nan이며, 이 항목은 nan을 인정하지 않습니다")
        else:
            detail = say(f"got {_fmt(g[k])}, expected {_fmt(e[k])}",
                         f"제출한 값 {_fmt(g[k])}, 정답 값 {_fmt(e[k])}")
        count = int(nan_wrong.sum())
        _record(math.inf, atol)
        raise Mismatch(say(f"{name}: {count} of {n} elements differ in nan; first at {at}: {detail}",
                           f"{_ko(name)}: 원소 {n}개 중 {count}개의 nan 여부가 정답과 다릅니다. "
                           f"처음 다른 곳은 {at.ko}: {detail.ko}"),
                       say(f"{name}: nan appears in other places than expected",
                           f"{_ko(name)}: 정답과 다른 위치에 nan이 있습니다"))

    finite = np.isfinite(g) & np.isfinite(e)
    with np.errstate(invalid="ignore", over="ignore"):
        # Non-finite positions must match exactly (inf of the same sign, or nan with nan).
        abs_err = np.where(finite, np.abs(g - e), np.where((g == e) | (g_nan & e_nan), 0.0, np.inf))
        allowed = np.where(finite, atol + rtol * np.abs(e), 0.0)
    bad = abs_err > allowed
    with np.errstate(divide="ignore", invalid="ignore"):
        excess = abs_err / np.where(allowed > 0, allowed, 1e-300)
    if n:
        k = int(np.argmax(excess))
        _record(abs_err[k], allowed[k])
    if not bad.any():
        return
    rel = abs_err[k] / abs(e[k]) if e[k] != 0 and finite[k] else math.inf
    at = f" at index {_index(k, shape)}" if shape else ""
    at_ko = f" (인덱스 {_index(k, shape)})" if shape else ""
    count = int(bad.sum())
    message = say(f"{name}: {count} of {n} elements outside tolerance (atol {atol:g}, rtol {rtol:g}); "
                  f"worst{at}: got {_fmt(g[k])}, expected {_fmt(e[k])} "
                  f"(abs err {abs_err[k]:.3g}, rel err {rel:.3g})",
                  f"{_ko(name)}: 원소 {n}개 중 {count}개가 허용 오차(atol {atol:g}, rtol {rtol:g}) 밖입니다. "
                  f"가장 큰 차이{at_ko}: 제출한 값 {_fmt(g[k])}, 정답 값 {_fmt(e[k])} "
                  f"(절대 오차 {abs_err[k]:.3g}, 상대 오차 {rel:.3g})")
    summary = say(f"{name}: differs from the expected values beyond the tolerance",
                  f"{_ko(name)}: 정답 값과 허용 오차 이상으로 다릅니다")
    raise Mismatch(message, summary)


def assert_all_close(pairs: dict[str, tuple], **tolerances) -> None:
    """`assert_close` on every named (got, expected) pair, all of them compared even when
    one fails (so the margins `check-reference` prints cover each); raises one `Mismatch`
    naming every value that differs."""
    failures = []
    for name, (got, expected) in pairs.items():
        try:
            assert_close(got, expected, name=name, **tolerances)
        except Mismatch as mismatch:
            failures.append(mismatch)
    if failures:
        raise Mismatch(joined(m.message for m in failures), joined(m.summary for m in failures))


def as_tensor(value, *, name: str) -> torch.Tensor:
    """A student's numeric value as a float64 tensor, or `Mismatch` saying what it is instead."""
    array = _as_array(value, name, YOUR_VALUE)
    if array.dtype.kind not in "biuf":
        raise Mismatch(say(f"{name}: values of dtype {array.dtype} are not real numbers",
                           f"{_ko(name)}: dtype이 {array.dtype}인 값은 실수가 아닙니다"))
    return torch.from_numpy(array.astype("float64"))


def assert_state_dict_close(got: dict, expected: dict, *, name: str, **tolerances) -> None:
    """Compare two state_dicts: the same keys, then each tensor with `assert_close`."""
    if not isinstance(got, dict):
        kind = _describe_type(got)
        raise Mismatch(say(f"{name}: expected a state_dict, got {kind}",
                           f"{_ko(name)}: state_dict여야 하는데 {kind.ko}입니다"))
    missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    if missing or extra:
        parts = ([say(f"missing {', '.join(missing)}", f"빠진 키 {', '.join(missing)}")] if missing else []) + (
            [say(f"unexpected {', '.join(extra)}", f"정답에 없는 키 {', '.join(extra)}")] if extra else [])
        raise Mismatch(say(f"{name}: keys differ: {'; '.join(parts)}",
                           f"{_ko(name)}: 키가 다릅니다: {'; '.join(p.ko for p in parts)}"))
    for key in expected:
        assert_close(got[key], expected[key], name=f"{name}[{key!r}]", **tolerances)


def assert_trained(trace, *, optimizer: str, lr: float, steps: int, how: str) -> None:
    """Training as it actually ran: one optimizer of this kind stepped `steps` times at `lr`.

    `how` is the line of code a student should have written, quoted in the message (a
    `say(en, ko)` where it holds words).
    """
    stepped = trace.stepped()
    how_ko = _ko(how)
    if not stepped:
        raise AssertionError(say(f"no optimizer ever took a step, so nothing was trained: use {how}",
                                 f"옵티마이저가 한 번도 step하지 않아 학습이 되지 않았습니다. 이렇게 학습하세요: {how_ko}"))
    if len(stepped) > 1:
        raise AssertionError(say(f"{len(stepped)} optimizers took steps; train with one: {how}",
                                 f"옵티마이저 {len(stepped)}개가 step을 했습니다. 하나로 학습하세요: {how_ko}"))
    ran = stepped[0]
    problems = []
    if ran.kind != optimizer:
        problems.append(say(f"the optimizer was {ran.kind}, not {optimizer}",
                            f"옵티마이저가 {ran.kind}입니다. 과제의 옵티마이저는 {optimizer}입니다"))
    if not isinstance(ran.lr, (int, float)) or not math.isclose(ran.lr, lr):
        problems.append(say(f"it stepped with lr {ran.lr}, not {lr:g} ({how})",
                            f"학습률이 {ran.lr}입니다. 과제의 학습률은 {lr:g}입니다 ({how_ko})"))
    if ran.steps != steps:
        problems.append(say(f"it took {ran.steps} steps, but the task trains for {steps} epochs (one step each)",
                            f"옵티마이저가 step을 {ran.steps}번 했습니다. 과제는 {steps} 에폭(에폭마다 step 한 번)을 "
                            "학습합니다"))
    if problems:
        raise AssertionError(joined(problems))


def assert_equal(got, expected, *, name: str) -> None:
    """Exact equality for counts, labels and structures, with both values in the message."""
    if got != expected:
        raise Mismatch(say(f"{name}: got {got!r}, expected {expected!r}",
                           f"{_ko(name)}: 제출한 값 {got!r}, 정답 값 {expected!r}"),
                       say(f"{name}: not the expected value", f"{_ko(name)}: 정답 값과 다릅니다"))
