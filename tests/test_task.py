"""Numbers stated once: `[task]` in assignment.toml, read by checks.py."""

import shutil

import pytest

from grader.check import task
from grader.check.checks import import_checks
from grader.config import load_assignment
from grader.errors import ConfigError

from conftest import ROOT


def test_checks_read_the_task_values_of_their_assignment():
    assignment = load_assignment(ROOT, "rnn_abacad")
    checks = import_checks(assignment)
    assert (checks.EPOCHS, checks.LR, checks.HIDDEN_SIZE) == (200, 0.1, 2) == (
        assignment.task["epochs"], assignment.task["lr"], assignment.task["hidden_size"])


def test_task_outside_an_import_of_checks_is_an_error():
    with pytest.raises(ConfigError, match="while an assignment's checks.py is imported"):
        task("epochs")


def test_a_value_the_task_does_not_state_is_an_error_naming_what_it_states(tmp_path):
    folder = tmp_path / "assignments" / "rnn_abacad"
    shutil.copytree(ROOT / "assignments" / "rnn_abacad", folder)
    shutil.copytree(ROOT / "reference", tmp_path / "reference")
    (folder / "checks.py").write_text("from grader.check import task\nEPOCHS = task('epoch')\n")
    with pytest.raises(ConfigError, match="no 'epoch'; it states: epochs, hidden_size, lr, seed"):
        import_checks(load_assignment(tmp_path, "rnn_abacad"))


def test_self_checks_read_task_values_as_dollar_names(tmp_path):
    from grader.author.selfcheck import load_selfchecks

    (tmp_path / "selfchecks.toml").write_text('[[question]]\nname = "q1"\nafter = "training"\n[[question.expect]]\n'
                                              'test = "len(losses) == $epochs"\nmessage = "train $epochs epochs, $$5"\n')
    (question,) = load_selfchecks(tmp_path, {"training": ""}, {"epochs": 30})
    assert question.expect[0].test == "len(losses) == 30"
    assert question.expect[0].message == "train 30 epochs, $5"
