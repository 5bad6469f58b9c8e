import json

import nbformat
import pytest

from grader.config import Variant
from grader.errors import ConfigError, InvalidSubmission
from grader.run.notebook import apply_variant, prepare_notebook, read_notebook_bytes

from notebooks import make_submission, student_notebook

LIMIT = 1_000_000


@pytest.mark.parametrize("data, reason", [
    (b"", "the file is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "binary"),
    (b"print('hello')", "not valid JSON"),
    (b"[1, 2]", "not a Jupyter notebook"),
    (json.dumps({"nbformat": 2, "cells": []}).encode(), "unsupported notebook format version 2"),
    (b"\xff\xfe{", "not UTF-8"),
])
def test_unreadable_files_get_a_reason(data, reason):
    with pytest.raises(InvalidSubmission, match=reason):
        read_notebook_bytes(data, LIMIT)


def test_size_cap():
    with pytest.raises(InvalidSubmission, match="over the limit of 10"):
        read_notebook_bytes(b"{" + b" " * 20 + b"}", 10)


def test_old_nbformat_3_is_upgraded():
    v3 = {"nbformat": 3, "nbformat_minor": 0, "metadata": {},
          "worksheets": [{"cells": [{"cell_type": "code", "input": "x = 1", "language": "python",
                                     "outputs": [], "metadata": {}}], "metadata": {}}]}
    nb = read_notebook_bytes(json.dumps(v3).encode(), LIMIT)
    assert nb.nbformat == 4 and nb.cells[0].source == "x = 1"


def cell_sources(nb):
    return {c.get("id"): c.source for c in nb.cells}


def test_edited_locked_cell_is_restored_with_a_note():
    template = student_notebook("regression_ab")
    submission = make_submission("regression_ab", {}, edit={"data": "torch.manual_seed(1)\nx = 2"})
    prepared = prepare_notebook(template, submission)
    assert cell_sources(prepared.notebook)["data"] == cell_sources(template)["data"]
    assert any("edited and has been restored" in n for n in prepared.notes)


def test_deleted_locked_cell_is_put_back_in_place():
    template = student_notebook("regression_ab")
    submission = make_submission("regression_ab", {})
    submission.cells = [c for c in submission.cells if c.id != "setup"]
    prepared = prepare_notebook(template, submission)
    ids = [c.get("id") for c in prepared.notebook.cells]
    assert ids.index("setup") == ids.index("setup-text") + 1
    assert any("missing and has been put back" in n for n in prepared.notes)


def test_locked_cell_with_lost_id_is_recognised_by_its_text():
    template = student_notebook("regression_ab")
    submission = make_submission("regression_ab", {})
    for cell in submission.cells:
        if cell.id == "data":
            cell.id = "renamed-by-colab"
    prepared = prepare_notebook(template, submission)
    assert prepared.notes == []
    assert [c.source for c in prepared.notebook.cells] == [c.source for c in template.cells]


def test_student_cells_and_saved_outputs():
    template = student_notebook("regression_ab")
    submission = make_submission("regression_ab", {"training": "yhat = 1"}, append=["print('extra')"])
    submission.cells[1].outputs = [nbformat.v4.new_output("stream", text="stale")]
    prepared = prepare_notebook(template, submission)
    assert prepared.notebook.cells[-1].source == "print('extra')"
    assert prepared.answer_cells["training"].source == "yhat = 1"
    assert all(not c.get("outputs") for c in prepared.notebook.cells)


def test_missing_answer_cell_is_noted():
    template = student_notebook("regression_ab")
    submission = make_submission("regression_ab", {})
    submission.cells = [c for c in submission.cells if c.id != "training"]
    assert any("answer cell is missing" in n for n in prepare_notebook(template, submission).notes)


def test_variant_rewrites_only_locked_cells():
    template = student_notebook("regression_ab")
    hidden = apply_variant(template, Variant("hidden", replace={"torch.manual_seed(43052)": "torch.manual_seed(5)"}))
    assert "torch.manual_seed(5)" in cell_sources(hidden)["data"]
    assert "43052" in cell_sources(template)["data"]
    with pytest.raises(ConfigError, match="appears in no locked cell"):
        apply_variant(template, Variant("hidden", replace={"yhat = ???": "yhat = 1"}))


def test_cells_are_numbered_as_the_student_sees_them():
    template = student_notebook("regression_ab")
    submission = nbformat.from_dict(template)
    selfcheck = nbformat.v4.new_code_cell('import otter\ngrader = otter.Notebook(tests_dir="tests")')
    submission.cells.insert(1, selfcheck)  # the release's setup cell: removed before the run
    del submission.cells[3]  # a locked cell deleted: put back where it belongs
    prepared = prepare_notebook(template, submission)
    runs = [prepared.position_of(i) for i in range(len(prepared.notebook.cells))]
    assert runs[0] == 0 and runs[1] == 2, "the removed self-check cell still counts"
    assert runs[-1] == len(submission.cells) - 1, "the last cell keeps the student's number"


def test_tracebacks_name_cells_as_the_student_numbers_them():
    from ipykernel.compiler import get_tmp_hash_seed, murmur2_x86
    from grader.run.cell_names import student_cell_names
    defines = "def f():\n    1/0"
    ran = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(defines, execution_count=3),
                                          nbformat.v4.new_code_cell("f()", execution_count=4)])
    temp_file = f"/tmp/ipykernel_7/{murmur2_x86(defines, get_tmp_hash_seed())}.py"
    traceback = f"Cell In[4], line 1\n----> 1 f()\nFile {temp_file}:2, in f()\nZeroDivisionError: division by zero"
    shown = student_cell_names(traceback, ran, lambda index: index + 5)  # two self-check cells before each
    assert shown.splitlines()[0] == "Cell 7, line 1" and "Cell 6:2, in f()" in shown
    assert "ipykernel" not in shown and "In[" not in shown
    bare = f"invalid syntax ({murmur2_x86(defines, get_tmp_hash_seed())}.py, line 2)"  # a SyntaxError's message
    assert student_cell_names(bare, ran, lambda index: index + 5) == "invalid syntax (Cell 6, line 2)"
    assert student_cell_names("see 2024.py", ran, lambda index: index) == "see 2024.py", "no cell's file: kept"
