"""poly_lr graded end to end: the reference and every bundled sample, in one batch.

Points (13): public training 1, divergence 2, loss_curve 2, parameters 1, predictions 1;
on the hidden run (seed 8128) divergence 2, loss_curve 2, parameters 1, predictions 1.
"""

import numpy as np
import pytest

from grader.check.captured import Captured
from grader.check.checks import load_checks, run_check
from grader.config import load_assignment
from conftest import ROOT, grade_samples, outcome, points
from notebooks import make_submission

ASSIGNMENT = "poly_lr"

# Sample name → (score, status, diagnosed mistakes). Equivalent forms and known mistakes
# are declared in assignments/poly_lr/forms.toml and proven by `grader check-reference`.
EXPECTED = {
    # Equivalent forms: the same losses while finite, inf at the same epoch.
    "correct_swapped_loss_args": (13, "ok", []),
    # Under the hidden seed this form turns nan at epoch 87, the reference at 88: inside
    # the ±2 epochs allowed, since inf reaches the gradient through another product.
    "correct_mean_of_squares": (13, "ok", []),
    # The lecture's data cell copied with its seed: the hidden run maps that seed too.
    "correct_reseeded": (13, "ok", []),
    # The notebook as handed out (lr=0.01) converges: it fails every check.
    "wrong_lr_0.01": (0, "ok", ["lr_0.01_unchanged"]),
    # Only the loss curve on both runs (4): its first 34 (hidden: 41) losses are the
    # reference's, but 50 steps end before the loss turns nan; nan weights count only
    # with the divergence that made them.
    "wrong_50_epochs": (4, "ok", ["50_epochs"]),
    # float64 overflows later (inf at 290, hidden 354, instead of 35 and 42), so it loses
    # divergence on both runs and the weights and predictions that need it; its finite
    # losses match within 1.7e-6 (loss curve 4) and it trained as asked (1). Its values are
    # the declared mistake float64_model's, so its feedback names that cause.
    "partial_float64": (5, "ok", ["float64_model"]),
}


@pytest.fixture(scope="module")
def graded(cache_dir):
    return grade_samples(ASSIGNMENT, EXPECTED, cache_dir)


@pytest.fixture(scope="module")
def reports(graded):
    return graded[1]


def test_reference_gets_full_marks(reports):
    report = reports[ASSIGNMENT]
    assert (report.score, report.max_score, report.status) == (13, 13, "ok")


@pytest.mark.parametrize("name", EXPECTED)
def test_sample_score_and_status(reports, name):
    report = reports[name]
    assert outcome(report) == EXPECTED[name], [(c.label, c.points, c.message) for c in report.checks]


def test_reference_diverges_under_every_variant(graded):
    """The hidden seed is only usable while the reference diverges under it too."""
    grader, _ = graded
    epochs = {name: (c.trace.first_nonfinite_epoch, c.trace.first_nan_epoch) for name, c in grader.reference.items()}
    assert epochs == {"public": (35, 73), "hidden": (42, 88)}
    for captured in grader.reference.values():
        assert captured["net"].state_dict["weight"].isnan().all() and captured["yhat"].isnan().all()


NAN_FILL = ("optimizer = torch.optim.SGD(net.parameters(), lr=0.1)\nfor epoc in range(1000):\n"
            "    optimizer.step()\nwith torch.no_grad():\n    net.weight.fill_(float('nan'))\n"
            "    net.bias.fill_(float('nan'))\nyhat = net(X)")
RECORDED_LR_REWRITTEN = ("optimizer = torch.optim.SGD(net.parameters(), lr=0.01)\nfor epoc in range(1000):\n"
                         "    yhat = net(X)\n    loss = loss_fn(y, yhat)\n    loss.backward()\n"
                         "    optimizer.step()\n    net.zero_grad()\nimport sys\n"
                         "for record in sys.modules['__grader_state__'].optimizers:\n"
                         "    record[1]['hyperparameters']['lr'] = 0.1\n    record[1]['first_step'] = {'lr': 0.1}")


def test_nan_weights_without_the_divergence_and_a_rewritten_lr_earn_nothing(grade):
    reports = grade(ASSIGNMENT, {name: make_submission(ASSIGNMENT, {"training": source})
                                 for name, source in {"nan_fill": NAN_FILL, "lr_rewritten": RECORDED_LR_REWRITTEN}.items()})
    for name, report in reports.items():
        assert report.score == 0, (name, points(report))
    assert "not graded" in next(c.feedback for c in reports["nan_fill"].checks if c.label == "parameters")


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
