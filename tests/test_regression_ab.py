"""regression_ab graded end to end: cheating, pasted lecture code, samples (forms are in forms.toml)."""

import math

import pytest

from conftest import ROOT, points
from grader.config import load_assignment
from notebooks import make_submission

FULL = 10
STEP = "    optimizr.step()\n    optimizr.zero_grad()"


def training(yhat="alpha0 + beta0 + alpha1*x + beta1*x", loss="loss_fn(yhat,y)", epochs="range(30)",
             step=STEP, before=""):
    return f"{before}for epoc in {epochs}:\n    yhat = {yhat}\n    loss = {loss}\n    loss.backward()\n{step}"


def submissions(answers: dict[str, str]):
    return {name: make_submission("regression_ab", {"training": source}) for name, source in answers.items()}


# Equivalent forms and known mistakes are declared in assignments/regression_ab/forms.toml
# and proven by `grader check-reference` (part of `make test`); these are the cheats.
def test_typed_in_numbers_earn_nothing_with_or_without_a_fake_loop(grade):
    typed = ("alpha0 = torch.tensor([1.471162]); alpha1 = torch.tensor([[3.009353]])\n"
             "beta0 = torch.tensor([1.671162]); beta1 = torch.tensor([[3.209353]])\n"
             "loss = torch.tensor(0.976924)\nyhat = alpha0 + beta0 + (alpha1 + beta1) * x")
    fake_loop = ("d = torch.zeros(1, requires_grad=True)\nopt = torch.optim.SGD([d], lr=0.1)\n"
                 "for epoc in range(30):\n    (d - 1).pow(2).sum().backward()\n    opt.step()\n    opt.zero_grad()\n")
    reports = grade("regression_ab", submissions({"typed": typed, "typed_after_fake_loop": fake_loop + typed}))
    for report in reports.values():
        assert report.score == 0, points(report)
        assert "came out exactly the same" in report.reason
    assert points(reports["typed"])["parameters"] == 0, "the public values are right, but not computed"


def test_the_lecture_code_pasted_into_the_answer_is_not_undone_by_the_hidden_seed(grade):
    lecture = ("torch.manual_seed(43052)\nx = torch.rand([1000,1])*2-1\ny = 3.14 + 6.28*x + torch.randn([1000,1])\n"
               + training())
    report = grade("regression_ab", submissions({"lecture": lecture}))["lecture"]
    assert (report.score, report.max_score) == (FULL, FULL), points(report)


def test_missing_variable_is_named_in_feedback(grade):
    report = grade("regression_ab", submissions({"no_loss": "for epoc in range(30):\n    yhat = alpha0"}))["no_loss"]
    [final_loss] = [c for c in report.checks if c.label == "final_loss"]
    assert (final_loss.status, final_loss.feedback) == ("not-judged", "your notebook never defined `loss`")


# The bundled samples: the label in each file name is the outcome; a mistake the
# assignment declares is named (forms.toml).
SAMPLES = {
    "correct_matmul": (10, "ok", []),
    "correct_manual_update": (10, "ok", []),
    "correct_edited_locked_seed": (10, "ok", []),  # the edited seed cell is restored
    "wrong_no_zero_grad": (0, "ok", ["no_zero_grad"]),
    "wrong_lr_0.01": (0, "ok", ["lr_0.01"]),
    "wrong_10_epochs": (0, "ok", ["10_epochs"]),
    "error_name_error": (0, "error", []),
    "timeout_while_loop": (0, "timeout", ["trace"]),  # the trace names the cause: thousands of steps, not 30
    "hardcoded_numbers": (0, "ok", []),
    "invalid_not_a_notebook": (0, "invalid", []),
}


def test_bundled_samples_get_their_labelled_scores(grade):
    folder = ROOT / "submissions" / "regression_ab"
    files = {p.stem: p for p in folder.iterdir()}
    assert set(files) == set(SAMPLES)
    reports = grade("regression_ab", files)
    got = {name: (r.score, r.status, [d["name"] for d in r.diagnoses]) for name, r in reports.items()}
    assert got == SAMPLES
    assert "edited and has been restored" in " ".join(reports["correct_edited_locked_seed"].notes)


def test_student_notebook_reveals_no_hidden_seed_or_reference_value():
    import json

    text = (ROOT / "assignments" / "regression_ab" / "regression_ab.ipynb").read_text()
    hidden_seeds = [str(seed) for v in load_assignment(ROOT, "regression_ab").variants for seed in v.seeds.values()]
    assert hidden_seeds and not any(seed in text for seed in hidden_seeds)
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
    assert report.score == 0
