"""poly_lr graded end to end: the reference and every bundled sample, in one batch.

Points (13): public training 1, divergence 2, loss_curve 2, parameters 1, predictions 1;
on the hidden run (seed 8128) divergence 2, loss_curve 2, parameters 1, predictions 1.
"""

import numpy as np
import pytest

from grader.check.captured import Captured
from grader.check.checks import load_checks, run_check
from grader.config import load_assignment
from conftest import ROOT, grade_files, points

ASSIGNMENT = "poly_lr"
SAMPLES = ROOT / "submissions" / ASSIGNMENT
REFERENCE = ROOT / "reference" / f"{ASSIGNMENT}.ipynb"

# Sample name → (score, status).
EXPECTED = {
    # Equivalent forms: the same losses while finite, inf at the same epoch.
    "correct_swapped_loss_args": (13, "ok"),
    # Under the hidden seed this form turns nan at epoch 87, the reference at 88: inside
    # the ±2 epochs allowed, since inf reaches the gradient through another product.
    "correct_mean_of_squares": (13, "ok"),
    # The notebook as handed out (lr=0.01) converges: it fails every check.
    "wrong_lr_0.01": (0, "ok"),
    # Only the loss curve on both runs (4): its first 34 (hidden: 41) losses are the
    # reference's, but 50 steps end before the loss turns nan and the weights are still
    # finite where the reference's are nan.
    "wrong_50_epochs": (4, "ok"),
    # float64 overflows later (inf at 290, hidden 354, instead of 35 and 42), so it loses
    # divergence on both runs (−4); its finite losses match within 1.7e-6 and everything
    # is nan at the end, like the reference.
    "partial_float64": (9, "ok"),
    # The lecture's data cell copied with its seed: all public points (7) and the hidden
    # all-nan weights and predictions (2), but the hidden run's loss curve is the public
    # one: it diverges at the wrong epochs with the wrong losses (−4).
    "hardcoded_seed": (9, "ok"),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    files = [REFERENCE, *(SAMPLES / f"{name}.ipynb" for name in EXPECTED)]
    return grade_files(ASSIGNMENT, files, tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def reports(graded):
    return graded[1]


def test_every_bundled_sample_has_an_expected_score():
    assert {p.stem for p in SAMPLES.iterdir()} == set(EXPECTED)


def test_reference_gets_full_marks(reports):
    report = reports[ASSIGNMENT]
    assert (report.score, report.max_score, report.status) == (13, 13, "ok")


@pytest.mark.parametrize("name", EXPECTED)
def test_sample_score_and_status(reports, name):
    report = reports[name]
    assert (report.score, report.status) == EXPECTED[name], [(c.label, c.points, c.message) for c in report.checks]


def test_reference_diverges_under_every_variant(graded):
    """The hidden seed is only usable while the reference diverges under it too."""
    grader, _ = graded
    epochs = {name: (c.trace.first_nonfinite_epoch, c.trace.first_nan_epoch) for name, c in grader.reference.items()}
    assert epochs == {"public": (35, 73), "hidden": (42, 88)}
    for captured in grader.reference.values():
        assert captured["net"].state_dict["weight"].isnan().all() and captured["yhat"].isnan().all()


def test_hardcoded_seed_loses_the_hidden_loss_curve(reports):
    earned = points(reports["hardcoded_seed"])
    assert {label for label, p in earned.items() if p == 0} == {"divergence[hidden]", "loss_curve[hidden]"}


def test_float64_feedback_explains_the_later_overflow(reports):
    text = next(c.feedback for c in reports["partial_float64"].checks if c.label == "divergence")
    assert "epoch 290" in text and "float64" in text


def test_a_reference_that_stops_diverging_is_a_grader_error():
    """A variant seed where lr=0.1 converges must not silently grade students against it."""
    checks = {c.name: c for c in load_checks(load_assignment(ROOT, ASSIGNMENT))}
    finite = Captured(values={}, arrays={"losses": np.linspace(50.0, 1.0, 1000)},
                      trace_record={"losses": "losses", "backward_calls": 1000, "optimizers": []})
    for name in ("divergence", "loss_curve"):
        result = run_check(checks[name], "hidden", {"student": finite, "reference": finite, "run": None})
        assert result.status == "grader-error"
        assert "does not become inf and nan" in result.message
