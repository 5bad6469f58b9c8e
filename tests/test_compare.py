import math

import numpy as np
import pytest
import torch

from grader.check.compare import Mismatch, as_tensor, assert_close, assert_equal, assert_state_dict_close, assert_trained


def mismatch(*args, **kwargs) -> Mismatch:
    with pytest.raises(Mismatch) as caught:
        assert_close(*args, **kwargs)
    return caught.value


def test_equal_values_pass_within_tolerance():
    assert_close(torch.tensor([1.0, 2.0]), torch.tensor([1.00005, 2.0]), name="w", atol=1e-4, rtol=0)
    assert_close(3, 3.0, name="n")
    assert_close(np.float32(0.5), torch.tensor(0.5), name="scalar")


def test_failure_names_worst_element_with_expected_got_and_errors():
    error = mismatch(torch.tensor([[1.0, 2.0], [3.0, 4.5]]), torch.tensor([[1.0, 2.0], [3.01, 4.0]]),
                     name="w", atol=1e-3, rtol=0)
    assert "2 of 4 elements outside tolerance" in error.message
    assert "worst at index (1, 1): got 4.5, expected 4" in error.message
    assert "abs err 0.5" in error.message and "rel err 0.125" in error.message


def test_summary_hides_expected_values():
    error = mismatch(torch.tensor([1.5]), torch.tensor([1.471162]), name="alpha0", atol=1e-4, rtol=0)
    assert "1.471162" in error.message
    assert "1.471162" not in error.summary and "1.5" not in error.summary


def test_shape_is_checked_before_values():
    error = mismatch(torch.zeros(1000), torch.zeros(1000, 1), name="yhat")
    assert error.message == "yhat: shape (1000,), expected shape (1000, 1)"


def test_dtype_only_when_asked():
    assert_close(torch.tensor([1.0], dtype=torch.float64), torch.tensor([1.0]), name="a")
    error = mismatch(torch.tensor([1.0], dtype=torch.float64), torch.tensor([1.0]), name="a", check_dtype=True)
    assert error.message == "a: dtype float64, expected float32"


def test_nan_matches_nan_only_when_asked_and_at_the_same_place():
    nan = math.nan
    assert_close(torch.tensor([1.0, nan]), torch.tensor([1.0, nan]), name="p", equal_nan=True)
    assert "does not accept nan" in mismatch(torch.tensor([nan]), torch.tensor([nan]), name="p").message
    moved = mismatch(torch.tensor([nan, 1.0]), torch.tensor([1.0, nan]), name="p", equal_nan=True)
    assert "2 of 2 elements differ in nan; first at index (0,): got nan, expected 1" in moved.message


def test_inf_must_match_sign_and_place():
    inf = math.inf
    assert_close(torch.tensor([inf, -inf]), torch.tensor([inf, -inf]), name="l")
    assert "got -inf, expected inf" in mismatch(torch.tensor([-inf]), torch.tensor([inf]), name="l").message
    assert "got 1e+30, expected inf" in mismatch(torch.tensor([1e30]), torch.tensor([inf]), name="l").message


def test_non_numbers_are_reported_not_crashed_on():
    assert mismatch("1.47", torch.tensor([1.47]), name="alpha0").message == \
        "alpha0: your value is a str, not a number or tensor"
    with pytest.raises(Mismatch, match="not a number or tensor"):
        as_tensor(None, name="beta0")


def test_state_dicts_compare_keys_then_tensors():
    expected = {"weight": torch.ones(2, 2), "bias": torch.zeros(2)}
    assert_state_dict_close({k: v.clone() for k, v in expected.items()}, expected, name="net")
    with pytest.raises(Mismatch, match="keys differ: missing bias"):
        assert_state_dict_close({"weight": torch.ones(2, 2)}, expected, name="net")
    with pytest.raises(Mismatch, match=r"net\['bias'\]: 1 of 2 elements"):
        assert_state_dict_close({"weight": torch.ones(2, 2), "bias": torch.tensor([0.0, 1.0])}, expected, name="net")


def test_assert_equal_shows_both_values():
    with pytest.raises(Mismatch, match="steps: got 999, expected 1000"):
        assert_equal(999, 1000, name="steps")


def test_assert_trained_reads_what_ran():
    from grader.check.captured import OptimizerRecord, Trace

    def trace(*optimizers):
        return Trace(np.zeros(0), 0, [OptimizerRecord(kind, steps, 3, {"lr": lr}, {"lr": lr}, None)
                                      for kind, lr, steps in optimizers])

    assert_trained(trace(("SGD", 0.1, 1000)), optimizer="SGD", lr=0.1, steps=1000, how="SGD(lr=0.1)")
    with pytest.raises(AssertionError, match="nothing was trained"):
        assert_trained(trace(("SGD", 0.1, 0)), optimizer="SGD", lr=0.1, steps=1000, how="SGD(lr=0.1)")
    with pytest.raises(AssertionError, match="the optimizer was Adam, not SGD; it stepped with lr 0.001, not 0.1"):
        assert_trained(trace(("Adam", 0.001, 1000)), optimizer="SGD", lr=0.1, steps=1000, how="SGD(lr=0.1)")
    with pytest.raises(AssertionError, match="it took 999 steps, but the task trains for 1000 epochs"):
        assert_trained(trace(("SGD", 0.1, 999)), optimizer="SGD", lr=0.1, steps=1000, how="SGD(lr=0.1)")
    with pytest.raises(AssertionError, match="2 optimizers took steps"):
        assert_trained(trace(("SGD", 0.1, 5), ("SGD", 0.01, 5)), optimizer="SGD", lr=0.1, steps=10, how="x")
