import shutil

import pytest

from grader.config import PUBLIC_VARIANT, list_assignments, load_assignment, settings_table
from grader.errors import ConfigError
from grader.fsutil import hash_files

from conftest import ROOT


def copy_course(tmp_path, toml_text=None):
    shutil.copytree(ROOT / "assignments" / "regression_ab", tmp_path / "assignments" / "regression_ab")
    shutil.copytree(ROOT / "reference", tmp_path / "reference")
    if toml_text is not None:
        (tmp_path / "assignments" / "regression_ab" / "assignment.toml").write_text(toml_text)
    return tmp_path


def test_regression_ab_loads_with_public_then_hidden_variant():
    assignment = load_assignment(ROOT, "regression_ab")
    assert [v.name for v in assignment.variants] == [PUBLIC_VARIANT, "hidden"]
    assert assignment.execution.cell_timeout == 20
    assert "alpha0" in assignment.capture
    assert "regression_ab" in list_assignments(ROOT)


def test_unknown_assignment_lists_known_ones():
    with pytest.raises(ConfigError, match="unknown assignment 'nope'.*regression_ab"):
        load_assignment(ROOT, "nope")


def test_typo_in_settings_is_an_error(tmp_path):
    course = copy_course(tmp_path, 'capture = ["x"]\n[execution]\ncell_timout = 5\n')
    with pytest.raises(ConfigError, match="unknown setting.*cell_timout"):
        load_assignment(course, "regression_ab")


def test_variant_named_public_is_refused(tmp_path):
    course = copy_course(tmp_path, '[[variants]]\nname = "public"\n')
    with pytest.raises(ConfigError, match="variant names must be unique"):
        load_assignment(course, "regression_ab")


def test_missing_reference_is_an_error(tmp_path):
    course = copy_course(tmp_path)
    (course / "reference" / "regression_ab.ipynb").unlink()
    with pytest.raises(ConfigError, match="missing .*regression_ab.ipynb"):
        load_assignment(course, "regression_ab")


def test_cache_key_covers_what_grading_reads_not_the_public_self_checks(tmp_path):
    """Editing a self-check's message keeps every cached reference and grade; editing checks.py does not."""
    shutil.copytree(ROOT / "assignments" / "regression_ab", tmp_path / "assignments" / "regression_ab")
    shutil.copytree(ROOT / "reference", tmp_path / "reference")

    def key():
        return hash_files(load_assignment(tmp_path, "regression_ab").files_for_hash(), [])

    before = key()
    selfchecks = tmp_path / "assignments" / "regression_ab" / "selfchecks.toml"
    selfchecks.write_text(selfchecks.read_text().replace("did the training loop run", "did your loop run"))
    assert key() == before
    checks = tmp_path / "assignments" / "regression_ab" / "checks.py"
    checks.write_text(checks.read_text() + "\n# edited\n")
    assert key() != before


def test_documented_settings_are_the_config_s_own_descriptions():
    doc = (ROOT / "docs" / "checks.md").read_text(encoding="utf-8")
    documented = doc.split("<!-- settings:begin -->\n")[1].split("\n<!-- settings:end -->")[0]
    assert documented == settings_table(), "regenerate the table in docs/checks.md from grader.config.settings_table()"
