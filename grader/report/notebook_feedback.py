"""The student's own notebook with the feedback written into it, as nbgrader's feedback does.

The notebook is the one that was graded: the submission with its locked cells restored
(`prepare_notebook`), each cell keeping the outputs the student saved. Markdown cells
tagged `grader-feedback` are added: the score and notes at the top, each error or
timeout right after the cell that raised it, the checks after the last code answer cell
(the end of the student's work), and each TA-graded question after its answer cell. The text
is the HTML page's, in the same language; nothing hidden is in it.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat import NotebookNode
from nbformat.v4 import new_markdown_cell

from grader.config import Assignment
from grader.errors import InvalidSubmission
from grader.grade import GradeReport
from grader.report.document import Block, Heading, blocks_markdown
from grader.report.feedback import check_blocks, manual_blocks, problem_blocks, score_blocks
from grader.report.i18n import Text
from grader.run.notebook import ANSWER, prepare_notebook, read_notebook, tags

FEEDBACK_TAG = "grader-feedback"


def _cell(blocks: list[Block], text: Text) -> NotebookNode:
    source = f"**📝 {text('notebook_feedback')}**\n\n" + blocks_markdown(blocks, lambda image: "")
    return new_markdown_cell(source.rstrip() + "\n", metadata={"tags": [FEEDBACK_TAG], "editable": False})


def _with_saved_outputs(graded: NotebookNode, submitted: NotebookNode) -> None:
    """Give each graded code cell the outputs the student saved, where it is their cell unchanged."""
    saved = {c.get("id"): c for c in submitted.cells if c.cell_type == "code"}
    for cell in graded.cells:
        original = saved.get(cell.get("id"))
        if cell.cell_type == "code" and original is not None and original.source == cell.source:
            cell.outputs, cell.execution_count = original.get("outputs", []), original.get("execution_count")


def feedback_notebook(report: GradeReport, assignment: Assignment, text: Text) -> str | None:
    """The annotated notebook as JSON text, or None when the file is no readable notebook."""
    try:
        limit = assignment.execution.max_notebook_bytes
        submitted = read_notebook(Path(report.file), limit)
        template = read_notebook(assignment.template_path, limit)
    except (InvalidSubmission, OSError):
        return None  # the HTML page says why the file could not be graded
    graded = prepare_notebook(template, submitted).notebook
    _with_saved_outputs(graded, submitted)

    after: dict[int, list[Block]] = {}  # cell index -> what follows it
    for problem in report.problems:
        after.setdefault(problem["cell_index"], []).extend(problem_blocks(problem, text))
    answers = {cell.get("id"): index for index, cell in enumerate(graded.cells) if ANSWER in tags(cell)}
    code_answers = [index for index in answers.values() if graded.cells[index].cell_type == "code"]
    last_answer = max(code_answers, default=len(graded.cells) - 1)
    after.setdefault(last_answer, []).extend(check_blocks(report, text))
    cells_of = {question.name: question.cell for question in assignment.manual}
    for result in report.manual:
        index = answers.get(cells_of.get(result.name), last_answer)
        after.setdefault(index, []).extend(manual_blocks([result], text))

    cells = [_cell([Heading(text("feedback_title", title=assignment.title_in(text.lang),
                                 student=report.student), 1), *score_blocks(report, text)], text)]
    for index, cell in enumerate(graded.cells):
        cells.append(cell)
        if after.get(index):
            cells.append(_cell(after.pop(index), text))
    for index in sorted(after):  # e.g. an error in the grader's code after the last cell
        if after[index]:
            cells.append(_cell(after[index], text))
    graded.cells = cells
    return nbformat.writes(graded)
