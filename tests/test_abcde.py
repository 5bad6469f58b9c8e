"""abcde graded end to end: the reference and every bundled sample, in one batch.

Points (16): public runs_without_error 1, layers 2, training 1, clean_success 2,
fewest_hidden_nodes 2, parameters 1, probabilities 1, final_loss 1; on the hidden run
(init seed 31415) clean_success 2, parameters 1, probabilities 1, final_loss 1.
"""

import pytest

from conftest import ROOT, grade_files, points

ASSIGNMENT = "abcde"
SAMPLES = ROOT / "submissions" / ASSIGNMENT
REFERENCE = ROOT / "reference" / f"{ASSIGNMENT}.ipynb"
HIDDEN_COMPARISONS = ("parameters[hidden]", "probabilities[hidden]", "final_loss[hidden]")

# Sample name → (score, status).
EXPECTED = {
    # The reference's model and training written differently; bitwise the same run.
    "correct_positional_args": (16, "ok"),
    # float64 drifts from the reference by 2.3e-5 in the weights (tolerance 1e-4),
    # 2.8e-7 in the probabilities (2e-6) and 2e-5 relative in the loss (1e-4).
    "correct_float64": (16, "ok"),
    # Clean success on both runs (4) plus runs, layers, training (4); 4 nodes are not the
    # fewest (−2), and the six reference comparisons need the reference's sizes (−6).
    "wrong_4_hidden_nodes": (8, "ok"),
    # Runs, layers, training (4) only: min p(true) 0.879 and 4 sign codes are no clean
    # success on either run, so it is not minimal and not the reference's run either.
    "wrong_2_hidden_nodes": (4, "ok"),
    # Runs and layers (3): 1000 Adam steps leave min p(true) at 0.54, so no training,
    # clean success, minimality or match with the reference.
    "wrong_1000_epochs": (3, "ok"),
    # Runs and training (2): without a Tanh there are no sign codes and no layers to
    # compare, so nothing else can be evaluated.
    "wrong_no_tanh": (2, "ok"),
    # The first forward pass raises, so the network is never trained: nothing earns points.
    "error_num_embeddings_4": (0, "error"),
    "error_out_features_4": (0, "error"),
    # The lecture's cell copied with its seed: every public check (11) and the hidden
    # clean success (2) pass, but the hidden run re-seeds to 43052, so its weights,
    # probabilities and loss miss the hidden reference's (−3).
    "hardcoded_seed": (13, "ok"),
}


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    files = [REFERENCE, *(SAMPLES / f"{name}.ipynb" for name in EXPECTED)]
    _, by_name = grade_files(ASSIGNMENT, files, tmp_path_factory.mktemp("cache"))
    return by_name


def feedback(report, label: str) -> str:
    return next(c.feedback for c in report.checks if c.label == label)


def test_every_bundled_sample_has_an_expected_score():
    assert {p.stem for p in SAMPLES.iterdir()} == set(EXPECTED)


def test_reference_gets_full_marks(reports):
    report = reports[ASSIGNMENT]
    assert (report.score, report.max_score, report.status) == (16, 16, "ok")


@pytest.mark.parametrize("name", EXPECTED)
def test_sample_score_and_status(reports, name):
    report = reports[name]
    assert (report.score, report.status) == EXPECTED[name], [(c.label, c.points, c.message) for c in report.checks]


def test_hardcoded_seed_loses_exactly_the_hidden_comparisons(reports):
    earned = points(reports["hardcoded_seed"])
    assert {label for label, p in earned.items() if p == 0} == set(HIDDEN_COMPARISONS)


def test_more_hidden_nodes_than_needed_still_succeed_cleanly(reports):
    earned = points(reports["wrong_4_hidden_nodes"])
    assert earned["clean_success"] == earned["clean_success[hidden]"] == 2
    assert earned["fewest_hidden_nodes"] == 0
    assert "more than needed" in feedback(reports["wrong_4_hidden_nodes"], "fewest_hidden_nodes")


def test_hidden_clean_success_feedback_quotes_nothing_of_the_hidden_run(reports):
    """Even the student's own numbers from a hidden run could carry its seed: the student
    learns the check failed, the TA's detail keeps the numbers."""
    [result] = [c for c in reports["wrong_2_hidden_nodes"].checks if c.label == "clean_success[hidden]"]
    assert "4 distinct sign patterns" in result.message and "probability only 0.8" in result.message
    assert result.feedback == "not the expected value"


@pytest.mark.parametrize("name, cause", [
    ("error_num_embeddings_4", "num_embeddings must cover all 5 characters"),
    ("error_out_features_4", "the Linear layer needs out_features=5"),
])
def test_crash_feedback_names_the_cause(reports, name, cause):
    assert cause in feedback(reports[name], "runs_without_error")
