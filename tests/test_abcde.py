"""abcde graded end to end: the reference and every bundled sample, in one batch.

Points (16): public runs_without_error 1, layers 2, training 1 (only where the weights
match), clean_success 2, fewest_hidden_nodes 2, parameters 1, probabilities 1,
final_loss 1; on the hidden run (init seed 31415) clean_success 2, parameters 1,
probabilities 1, final_loss 1.
"""

import pytest

from conftest import grade_samples, outcome, points
from notebooks import make_submission

ASSIGNMENT = "abcde"
TRAINING = ("loss_fn = torch.nn.CrossEntropyLoss()\noptimizr = torch.optim.Adam(net.parameters())\n"
            "for epoc in range(5000):\n    loss = loss_fn(net(x), y)\n    loss.backward()\n"
            "    optimizr.step()\n    optimizr.zero_grad()")

# Sample name → (score, status, diagnosed mistakes). Equivalent forms and known mistakes
# are declared in assignments/abcde/forms.toml and proven by `grader check-reference`.
EXPECTED = {
    # The reference's model and training written differently; bitwise the same run.
    "correct_positional_args": (16, "ok", []),
    # float64 drifts from the reference by 2.3e-5 in the weights (tolerance 1e-4),
    # 2.8e-7 in the probabilities (2e-6) and 2e-5 relative in the loss (1e-4).
    "correct_float64": (16, "ok", []),
    # The lecture's cell copied with its seed: the hidden run maps that seed too.
    "correct_reseeded": (16, "ok", []),
    # Runs (1), layers (2) and clean success on both runs (4); 4 nodes are not the fewest,
    # and the sizes differ from the reference's, so no value is compared and the training
    # trace, which counts only where the weights match, is not judged.
    "wrong_4_hidden_nodes": (7, "ok", ["4_hidden_nodes"]),
    # Runs and layers (3) only: min p(true) 0.879 and 4 sign codes are no clean success.
    "wrong_2_hidden_nodes": (3, "ok", ["2_hidden_nodes"]),
    # Runs and layers (3): 1000 Adam steps leave min p(true) at 0.54.
    "wrong_1000_epochs": (3, "ok", ["1000_epochs"]),
    # Runs (1): without a Tanh there are no sign codes and no layers to compare.
    "wrong_no_tanh": (1, "ok", ["no_tanh"]),
    # The first forward pass raises, so the network is never trained: nothing earns points.
    "error_num_embeddings_4": (0, "error", ["num_embeddings_4"]),
    "error_out_features_4": (0, "error", ["out_features_4"]),
}


@pytest.fixture(scope="module")
def reports(cache_dir):
    return grade_samples(ASSIGNMENT, EXPECTED, cache_dir)[1]


def feedback(report, label: str) -> str:
    return next(c.feedback for c in report.checks if c.label == label)


def test_reference_gets_full_marks(reports):
    report = reports[ASSIGNMENT]
    assert (report.score, report.max_score, report.status) == (16, 16, "ok")


@pytest.mark.parametrize("name", EXPECTED)
def test_sample_score_and_status(reports, name):
    report = reports[name]
    assert outcome(report) == EXPECTED[name], [(c.label, c.points, c.message) for c in report.checks]


def test_layer_sizes_come_from_the_weights_not_from_attributes_a_notebook_sets(grade):
    """A 4-node net claiming `embedding_dim = 3` is still 4 nodes: the weights' shapes say so."""
    net = ("net = torch.nn.Sequential(torch.nn.Embedding(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 5))\n"
           "net[0].embedding_dim = 3\nnet[2].in_features = 3")
    report = grade(ASSIGNMENT, {"claims_3": make_submission(ASSIGNMENT, {"net": net, "training": TRAINING})})["claims_3"]
    assert points(report)["fewest_hidden_nodes"] == 0
    assert "4 hidden nodes are more than needed" in feedback(report, "fewest_hidden_nodes")


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
