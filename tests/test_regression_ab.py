"""regression_ab graded end to end: correct forms, wrong answers, cheating, samples."""

import math
import re

import pytest

from conftest import ROOT, points
from notebooks import make_submission

FULL = 12
HIDDEN = ("parameters[hidden]", "final_loss[hidden]", "predictions[hidden]")
STEP = "    optimizr.step()\n    optimizr.zero_grad()"


def training(yhat="alpha0 + beta0 + alpha1*x + beta1*x", loss="loss_fn(yhat,y)", epochs="range(30)",
             step=STEP, before=""):
    return f"{before}for epoc in {epochs}:\n    yhat = {yhat}\n    loss = {loss}\n    loss.backward()\n{step}"


def submissions(answers: dict[str, str]):
    return {name: make_submission("regression_ab", {"training": source}) for name, source in answers.items()}


EQUIVALENT_FORMS = {
    "grouped_terms": training(yhat="(alpha0 + beta0) + (alpha1 + beta1) * x"),
    "matmul": training(yhat="alpha0 + beta0 + x @ alpha1 + x @ beta1"),
    "reordered": training(yhat="beta1*x + alpha1*x + beta0 + alpha0"),
    "loss_arguments_swapped": training(loss="loss_fn(y, yhat)"),
    "mean_of_squares": training(loss="torch.mean((y - yhat)**2)"),
    "functional_mse": training(loss="torch.nn.functional.mse_loss(yhat, y)"),
    "manual_update": training(step="    with torch.no_grad():\n"
                                   "        for p in (alpha0, alpha1, beta0, beta1):\n"
                                   "            p -= 0.1 * p.grad\n            p.grad.zero_()"),
    "float64_data": training(before="x, y = x.double(), y.double()\n"),
}


def test_equivalent_correct_forms_score_full(grade):
    reports = grade("regression_ab", submissions(EQUIVALENT_FORMS))
    for name, report in reports.items():
        assert (report.score, report.status) == (FULL, "ok"), (name, report.reason, points(report))


# Each wrong answer keeps only the checks its mistake does not touch. α and β still get
# equal gradients in all of these, so "differences_unchanged" (1 point) survives, and
# nothing matches the reference, public or hidden.
WRONG = {
    "no_zero_grad": (training(step="    optimizr.step()"), 1),
    "lr_0.01": (training(before="optimizr = torch.optim.SGD([alpha0,alpha1,beta0,beta1], lr=0.01)\n"), 1),
    "ten_epochs": (training(epochs="range(10)"), 1),
    # 29 and 31 epochs are close to converged: the loose truth check still passes them.
    "29_epochs": (training(epochs="range(29)"), 2),
    "31_epochs": (training(epochs="range(31)"), 2),
    # sum instead of mean diverges to nan: nothing holds.
    "sum_not_mean": (training(loss="torch.sum((y - yhat)**2)"), 0),
    # Only the α terms: β never moves, so α−β drifts and nothing matches.
    "only_alpha": (training(yhat="alpha0 + alpha1*x"), 0),
    "product_model": (training(yhat="alpha0*beta0 + alpha1*beta1*x"), 0),
}


def test_wrong_answers_lose_the_points_they_should(grade):
    reports = grade("regression_ab", submissions({k: v[0] for k, v in WRONG.items()}))
    for name, (_, expected) in WRONG.items():
        report = reports[name]
        assert report.score == expected, (name, points(report))
        assert points(report)["parameters"] == 0 and all(points(report)[h] == 0 for h in HIDDEN), name


def test_hard_coded_numbers_fail_the_hidden_variant(grade):
    cheat = ("alpha0 = torch.tensor([1.471162]); alpha1 = torch.tensor([[3.009353]])\n"
             "beta0 = torch.tensor([1.671162]); beta1 = torch.tensor([[3.209353]])\n"
             "loss = torch.tensor(0.977382)\nyhat = alpha0 + beta0 + (alpha1 + beta1) * x")
    report = grade("regression_ab", submissions({"cheat": cheat}))["cheat"]
    assert points(report)["parameters"] == 3, "the public numbers are right..."
    assert all(points(report)[h] == 0 for h in HIDDEN), "...but not under the hidden seed"
    assert report.score < FULL


def test_missing_variable_is_named_in_feedback(grade):
    report = grade("regression_ab", submissions({"no_loss": "for epoc in range(30):\n    yhat = alpha0"}))["no_loss"]
    [final_loss] = [c for c in report.checks if c.label == "final_loss"]
    assert final_loss.feedback == "your notebook never defined `loss`"


# The bundled samples: the label in each file name is the outcome; the scores follow
# from the checks as explained in test_wrong_answers_lose_the_points_they_should.
SAMPLES = {
    "correct_matmul": (12, "ok"),
    "correct_manual_update": (12, "ok"),
    "correct_edited_locked_seed": (12, "ok"),  # the edited seed cell is restored
    "wrong_no_zero_grad": (1, "ok"),
    "wrong_lr_0.01": (1, "ok"),
    "wrong_10_epochs": (1, "ok"),
    "error_name_error": (1, "error"),  # training never runs: only α−β = −0.2 holds
    "timeout_while_loop": (2, "timeout"),  # trains until interrupted: converged, loose checks pass
    "hardcoded_numbers": (6, "ok"),  # public parameters, sums, loss right; hidden all wrong
    "invalid_not_a_notebook": (0, "invalid"),
}


def test_bundled_samples_get_their_labelled_scores(grade):
    folder = ROOT / "submissions" / "regression_ab"
    files = {p.stem: p for p in folder.iterdir()}
    assert set(files) == set(SAMPLES)
    reports = grade("regression_ab", files)
    got = {name: (r.score, r.status) for name, r in reports.items()}
    assert got == SAMPLES
    assert "edited and has been restored" in " ".join(reports["correct_edited_locked_seed"].notes)


def test_student_notebook_reveals_no_hidden_seed_or_reference_value():
    import json

    text = (ROOT / "assignments" / "regression_ab" / "regression_ab.ipynb").read_text()
    toml = (ROOT / "assignments" / "regression_ab" / "assignment.toml").read_text()
    hidden_texts = re.findall(r'^"[^"]+" = "([^"]+)"', toml, flags=re.M)
    assert hidden_texts and not any(t in text for t in hidden_texts)
    golden = json.loads((ROOT / "reference" / "regression_ab.golden.json").read_text())
    for record in golden.values():
        for values in record["variants"].values():
            for value in values.values():
                numbers = value["values"] if isinstance(value, dict) else [value]
                for number in [n for n in numbers if isinstance(n, float) and math.isfinite(n)][:50]:
                    assert f"{number:.4f}" not in text, number


@pytest.mark.parametrize("source, cause", [
    ("for epoc in range(30):\n    yhat = ???", "SyntaxError"),
])
def test_unfilled_template_is_graded_not_crashed(grade, source, cause):
    report = grade("regression_ab", submissions({"unfilled": source}))["unfilled"]
    assert report.status == "error" and cause in report.reason
    assert report.score == 1  # the untouched parameters still differ by −0.2
