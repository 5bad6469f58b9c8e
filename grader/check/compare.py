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


class Mismatch(AssertionError):
    """A compared value is wrong; `summary` says which without revealing the expected value
    or anything of the student's value (under a hidden variant it could encode the seed)."""

    def __init__(self, message: str, summary: str = "not the expected value"):
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


def _describe_type(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).replace('torch.', '')} tensor of shape {tuple(value.shape)}"
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    return f"a {type(value).__name__}"


def _as_array(value, name: str, role: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:
            value = value.float()
        return value.numpy()
    if isinstance(value, np.ndarray) and value.dtype != object:
        return value
    if isinstance(value, (bool, int, float, np.number, np.bool_)):
        return np.asarray(value)
    raise Mismatch(f"{name}: {role} is {_describe_type(value)}, not a number or tensor")


def _dtype_name(value, array: np.ndarray) -> str:
    if isinstance(value, torch.Tensor):
        return str(value.dtype).replace("torch.", "")
    return str(array.dtype)


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
    expected_array = _as_array(expected, name, "the expected value")
    got_array = _as_array(got, name, "your value")
    if got_array.shape != expected_array.shape:
        text = f"{name}: shape {got_array.shape}, expected shape {expected_array.shape}"
        raise Mismatch(text, f"{name}: not the expected shape")
    if check_dtype and _dtype_name(got, got_array) != _dtype_name(expected, expected_array):
        text = f"{name}: dtype {_dtype_name(got, got_array)}, expected {_dtype_name(expected, expected_array)}"
        raise Mismatch(text)
    if got_array.dtype.kind not in "biufc":
        raise Mismatch(f"{name}: values of dtype {got_array.dtype} cannot be compared as numbers")

    g = got_array.astype(np.complex128 if got_array.dtype.kind == "c" else np.float64).ravel()
    e = expected_array.astype(np.complex128 if expected_array.dtype.kind == "c" else np.float64).ravel()
    shape = got_array.shape
    n = g.size

    g_nan, e_nan = np.isnan(g), np.isnan(e)
    nan_wrong = (g_nan != e_nan) if equal_nan else (g_nan | e_nan)
    if nan_wrong.any():
        k = int(np.flatnonzero(nan_wrong)[0])
        at = f"index {_index(k, shape)}" if shape else "the value"
        if g_nan[k] and e_nan[k]:
            detail = "both are nan, and this check does not accept nan"
        else:
            detail = f"got {_fmt(g[k])}, expected {_fmt(e[k])}"
        count = int(nan_wrong.sum())
        _record(math.inf, atol)
        raise Mismatch(f"{name}: {count} of {n} elements differ in nan; first at {at}: {detail}",
                       f"{name}: nan appears in other places than expected")

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
    count = int(bad.sum())
    message = (f"{name}: {count} of {n} elements outside tolerance (atol {atol:g}, rtol {rtol:g}); "
               f"worst{at}: got {_fmt(g[k])}, expected {_fmt(e[k])} "
               f"(abs err {abs_err[k]:.3g}, rel err {rel:.3g})")
    summary = f"{name}: differs from the expected values beyond the tolerance"
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
        raise Mismatch("; ".join(m.message for m in failures), "; ".join(m.summary for m in failures))


def as_tensor(value, *, name: str) -> torch.Tensor:
    """A student's numeric value as a float64 tensor, or `Mismatch` saying what it is instead."""
    array = _as_array(value, name, "your value")
    if array.dtype.kind not in "biuf":
        raise Mismatch(f"{name}: values of dtype {array.dtype} are not real numbers")
    return torch.from_numpy(array.astype("float64"))


def assert_state_dict_close(got: dict, expected: dict, *, name: str, **tolerances) -> None:
    """Compare two state_dicts: the same keys, then each tensor with `assert_close`."""
    if not isinstance(got, dict):
        raise Mismatch(f"{name}: expected a state_dict, got {_describe_type(got)}")
    missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    if missing or extra:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unexpected {', '.join(extra)}"] if extra else [])
        raise Mismatch(f"{name}: keys differ: {'; '.join(parts)}")
    for key in expected:
        assert_close(got[key], expected[key], name=f"{name}[{key!r}]", **tolerances)


def assert_trained(trace, *, optimizer: str, lr: float, steps: int, how: str) -> None:
    """Training as it actually ran: one optimizer of this kind stepped `steps` times at `lr`.

    `how` is the line of code a student should have written, quoted in the message.
    """
    stepped = trace.stepped()
    if not stepped:
        raise AssertionError(f"no optimizer ever took a step, so nothing was trained: use {how}")
    if len(stepped) > 1:
        raise AssertionError(f"{len(stepped)} optimizers took steps; train with one: {how}")
    ran = stepped[0]
    problems = []
    if ran.kind != optimizer:
        problems.append(f"the optimizer was {ran.kind}, not {optimizer}")
    if not isinstance(ran.lr, (int, float)) or not math.isclose(ran.lr, lr):
        problems.append(f"it stepped with lr {ran.lr}, not {lr:g} ({how})")
    if ran.steps != steps:
        problems.append(f"it took {ran.steps} steps, but the task trains for {steps} epochs (one step each)")
    if problems:
        raise AssertionError("; ".join(problems))


def assert_equal(got, expected, *, name: str) -> None:
    """Exact equality for counts, labels and structures, with both values in the message."""
    if got != expected:
        raise Mismatch(f"{name}: got {got!r}, expected {expected!r}", f"{name}: not the expected value")
