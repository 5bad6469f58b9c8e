"""Every assignment ships self-checks: each passes on the reference solution and fails on
the notebook as handed out, and a failure is said once, naming the error that caused it."""

import asyncio
import importlib.util
import shutil

import nbformat
import pytest

from conftest import ROOT
from grader.author.release import build_release
from grader.author.selfcheck import SELFCHECK_FILE, Question, load_selfchecks, otter_test
from grader.check.reference import reference_notebook
from grader.config import load_assignment
from grader.run.execute import RunOptions, run_notebook
from grader.run.notebook import ANSWER, tags

ASSIGNMENTS = sorted(p.parent.name for p in (ROOT / "assignments").glob("*/assignment.toml"))
PASSED = "All test cases passed!"


def selfchecks(name: str) -> list[Question]:
    assignment = load_assignment(ROOT, name)
    cells = {c.get("id"): c.source for c in nbformat.read(assignment.template_path, as_version=4).cells}
    return load_selfchecks(assignment.folder, cells, assignment.task)


def selfcheck_outputs(nb: nbformat.NotebookNode) -> dict[str, str]:
    return {c.id: "\n".join(o.get("data", {}).get("text/plain", "") + o.get("text", "") for o in c.outputs)
            for c in nb.cells if c.get("id", "").startswith("selfcheck-q")}


def with_answers(released: nbformat.NotebookNode, solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The released notebook with its answer cells as the solution wrote them."""
    nb = nbformat.from_dict(released)
    answers = {c.get("id"): c.source for c in solution.cells}
    for cell in nb.cells:
        if ANSWER in tags(cell):
            cell.source = answers[cell.id]
    return nb


def run_released(name: str, tmp_path) -> dict[str, tuple[dict[str, str], list[str]]]:
    """Self-check outputs by cell, and the errors cells raised, for the reference's answers
    and for the untouched notebook, each saved in the release's folder as a student saves it
    (a self-check on a markdown answer reads the saved file)."""
    assignment = load_assignment(ROOT, name)
    folder, _ = build_release(assignment, tmp_path / "dist")
    released = nbformat.read(folder / f"{name}.ipynb", as_version=4)
    notebooks = {"reference": with_answers(released, reference_notebook(assignment)), "untouched": released}
    folders = {}
    for label, nb in notebooks.items():
        folders[label] = shutil.copytree(folder, tmp_path / label)
        nbformat.write(nb, folders[label] / f"{name}.ipynb")

    async def run_all():
        return await asyncio.gather(*(run_notebook(nb, assignment.execution,  # as on a student's machine
                                                   RunOptions(capture=(), public_dir=folders[label], sandbox=False))
                                      for label, nb in notebooks.items()))

    results = asyncio.run(run_all())
    return {label: (selfcheck_outputs(r.notebook), [p.ename for p in r.problems]) for label, r in zip(notebooks, results)}


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_selfchecks_pass_on_the_reference_and_fail_on_the_untouched_notebook(name, tmp_path):
    assert (ROOT / "assignments" / name / SELFCHECK_FILE).is_file(), f"{name} ships no self-checks"
    out = run_released(name, tmp_path)
    reference, reference_errors = out["reference"]
    assert reference and not reference_errors, f"{name}: no self-check cells, or they raised {reference_errors}"
    for cell, text in reference.items():
        assert PASSED in text, f"{name} {cell} fails on the reference: {text}"
    untouched, errors = out["untouched"]
    failed = [text for text in untouched.values() if PASSED not in text]
    assert failed, untouched
    for question in (q for q in selfchecks(name) if q.written):  # read from the saved file
        assert "답안 셀이 아직 비어 있거나 처음 그대로입니다" in untouched[f"selfcheck-{question.name}"]
    for text in failed:
        said = [line.strip() for line in text.splitlines() if line.strip().startswith("AssertionError:")]
        assert len(said) == len(set(said)), f"{name}: a failure is said more than once: {text}"
    if errors:  # the answer cells as handed out do not run (`???`): the self-check names the error above it
        assert any("the cell above raised an error" in text and "위의 셀에서 오류가 났습니다" in text
                   and any(f"({ename}:" in text for ename in errors) for text in failed), failed


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_every_answer_a_ta_grades_has_a_self_check_saying_when_it_is_still_the_placeholder(name):
    checked = {cell for q in selfchecks(name) for cell in q.written}
    assert {q.cell for q in load_assignment(ROOT, name).manual} <= checked


PLACEHOLDER = "(여기에 설명을 쓰세요. Write your explanation here.)"


def written_check(tmp_path):
    """The generated `written` test case of a question on cell `why`, imported from its file."""
    path = tmp_path / "tests" / "q2.py"
    path.parent.mkdir()
    path.write_text(otter_test(Question("q2", "why", written={"why": PLACEHOLDER}), "poly_lr", "poly_lr.ipynb"))
    spec = importlib.util.spec_from_file_location("q2_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.written.test_func


def saved(path, why: str | None) -> None:
    cells = [nbformat.v4.new_markdown_cell("intro", id="intro")]
    if why is not None:
        cells.append(nbformat.v4.new_markdown_cell(why, id="why"))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)


def test_a_written_check_finds_the_saved_notebook_as_jupyter_and_vs_code_name_it(tmp_path, monkeypatch):
    check = written_check(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    saved(tmp_path / "poly_lr.ipynb", PLACEHOLDER)  # the released copy, left untouched
    saved(tmp_path / "poly_lr_kim.ipynb", "lr가 너무 커서 발산합니다")  # the student's renamed copy
    with pytest.raises(AssertionError, match="처음 그대로.*Ctrl\\+S.*still empty or as handed out"):
        check({})  # nothing names the notebook: the released file name is read
    check({"__session__": str(tmp_path / "poly_lr_kim.ipynb")})  # JupyterLab: an absolute path
    check({"__vsc_ipynb_file__": str(tmp_path / "poly_lr_kim.ipynb")})  # VS Code
    monkeypatch.setenv("JPY_SESSION_NAME", "courses/hw2/poly_lr_kim.ipynb")  # relative to the server's folder
    check({})


def test_a_written_check_says_what_is_wrong_and_how_to_check_by_hand(tmp_path, monkeypatch):
    check = written_check(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    saved(tmp_path / "mine.ipynb", "   \n")
    with pytest.raises(AssertionError, match="비어 있거나"):
        check({})  # the only notebook in the folder, its answer blank
    saved(tmp_path / "mine.ipynb", None)
    with pytest.raises(AssertionError, match="답안 셀이 없습니다"):
        check({})
    saved(tmp_path / "other.ipynb", "x")
    with pytest.raises(AssertionError, match="직접 확인.*check by hand that the cell «\\(여기에 설명을 쓰세요"):
        check({})  # two notebooks, neither named: Colab-like, no file to read
