"""rnn_abacad graded end to end: the reference and every bundled sample, in one batch.

Points (13): public runs_without_error 1, sizes 1, training 1 (only where the weights
match), parameters 2, probabilities 2, final_loss 1; on the hidden run (init seed 2718)
parameters 2, probabilities 2, final_loss 1.
"""

import pytest

from conftest import grade_samples, outcome, points

ASSIGNMENT = "rnn_abacad"

# Sample name → (score, status, diagnosed mistakes). Equivalent forms and known mistakes
# are declared in assignments/rnn_abacad/forms.toml and proven by `grader check-reference`.
EXPECTED = {
    # The lecture's 구현4 ("맹물X"): rnn(X) starts from the same zero state as Water.
    "correct_no_water": (13, "ok", []),
    # `cook` first: another start, compared with the reference replayed from it.
    "correct_cook_first": (13, "ok", []),
    # The lecture's 구현3 on "cuda:0": graded on a CPU, cuda runs there, as the reference does.
    "correct_on_cuda": (13, "ok", []),
    # Runs (1); RNN(4,3) is not the task's size, so no value is compared.
    "wrong_hidden_size_3": (1, "ok", ["hidden_size_3"]),
    # Runs and sizes (2): the gradients add up, every value lands elsewhere.
    "wrong_no_zero_grad": (2, "ok", ["no_zero_grad"]),
}


@pytest.fixture(scope="module")
def reports(cache_dir):
    return grade_samples(ASSIGNMENT, EXPECTED, cache_dir)[1]


def test_reference_gets_full_marks(reports):
    report = reports[ASSIGNMENT]
    assert (report.score, report.max_score, report.status) == (13, 13, "ok")


@pytest.mark.parametrize("name", EXPECTED)
def test_sample_score_and_status(reports, name):
    report = reports[name]
    assert outcome(report) == EXPECTED[name], [(c.label, c.points, c.message) for c in report.checks]


def test_sizes_are_read_from_the_weights(reports):
    [result] = [c for c in reports["wrong_hidden_size_3"].checks if c.label == "sizes"]
    assert "`rnn` maps 4 inputs to 3 hidden nodes, not 4 inputs to 2" in result.message
    assert points(reports["wrong_hidden_size_3"])["sizes"] == 0
