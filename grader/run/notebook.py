"""Reading submissions and building the notebook that is actually run.

Cells tagged `locked` in the student notebook are restored from it (nbgrader's idea), so
a student cannot change the seed or the data; cells tagged `answer` are the student's.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import numpy as np
from nbformat import NotebookNode

from grader.config import Variant
from grader.errors import ConfigError, InvalidSubmission
from grader.author.selfcheck import strip_selfcheck_lines
from grader.said import say

LOCKED = "locked"
ANSWER = "answer"
# Parse cost is bounded before parsing: a 14 MB file of `{}` would take gigabytes and minutes.
MAX_NESTING = 64  # a notebook nests about 8 deep
MAX_CONTAINERS = 200_000  # JSON objects plus arrays
MAX_VALUES = 1_000_000  # elements of all of them (a 20 MB notebook has about 400,000 lines of text)
MAX_CELLS = 5_000
MAX_OUTPUTS = 20_000
JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
SURROGATE = re.compile("[\ud800-\udfff]")


def tags(cell: NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def read_notebook_bytes(data: bytes, max_bytes: int) -> NotebookNode:
    """Parse a submission, raising `InvalidSubmission` with a reason a student understands."""
    if not data.strip():
        raise InvalidSubmission(say("the file is empty", "파일이 비어 있습니다"))
    if len(data) > max_bytes:
        raise InvalidSubmission(say(f"the file is {len(data):,} bytes, over the limit of {max_bytes:,}",
                                    f"파일 크기가 {len(data):,}바이트로 한도 {max_bytes:,}바이트를 넘습니다"))
    if b"\x00" in data[:8192]:
        raise InvalidSubmission(say("the file is binary, not a Jupyter notebook (.ipynb is JSON text)",
                                    "바이너리 파일이라 Jupyter 노트북이 아닙니다 (.ipynb는 JSON 텍스트입니다)"))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidSubmission(say("the file is not UTF-8 text, so it is not a Jupyter notebook",
                                    "UTF-8 텍스트가 아니라서 Jupyter 노트북이 아닙니다")) from None
    check_json_shape(data)
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidSubmission(say(f"the file is not valid JSON (line {exc.lineno}: {exc.msg}); was it saved as .ipynb?",
                                    f"올바른 JSON 파일이 아닙니다 ({exc.lineno}번째 줄: `{exc.msg}`). .ipynb로 저장했나요?")) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells", raw.get("worksheets")), list):
        raise InvalidSubmission(say("the file is JSON but not a Jupyter notebook (no list of cells)",
                                    "JSON 파일이지만 셀 목록이 없어서 Jupyter 노트북이 아닙니다"))
    check_cell_counts(raw)
    if SURROGATE_ESCAPE.search(data):  # only a \u escape can make a lone surrogate: UTF-8 cannot
        text = json.dumps(without_surrogates(raw))
    major = raw.get("nbformat")
    if major not in (3, 4):
        raise InvalidSubmission(say(f"unsupported notebook format version {major!r}; save it again with Jupyter",
                                    f"지원하지 않는 노트북 형식 버전 {major!r}입니다. Jupyter로 다시 저장하세요"))
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # nbformat raises a zoo of types for malformed cells
        raise InvalidSubmission(f"the notebook structure is invalid: {exc}") from None
    for cell in nb.cells:
        if "source" not in cell or "cell_type" not in cell:
            raise InvalidSubmission(say("a cell has no type or no source; the notebook is damaged",
                                        "종류나 내용이 없는 셀이 있습니다. 노트북 파일이 손상되었습니다"))
    return nb


def check_json_shape(data: bytes) -> None:
    """Refuse JSON nested deeper than MAX_NESTING or holding over MAX_CONTAINERS objects and
    arrays or MAX_VALUES values, counted on the bytes (strings blanked out) before anything
    is built from them."""
    structure = np.frombuffer(JSON_STRING.sub(b'""', data), dtype=np.uint8)
    opens = (structure == ord("{")) | (structure == ord("["))
    closes = (structure == ord("}")) | (structure == ord("]"))
    containers = int(opens.sum())
    if containers > MAX_CONTAINERS:
        raise InvalidSubmission(f"the file holds {containers:,} JSON objects and arrays, over the limit of "
                                f"{MAX_CONTAINERS:,}; a notebook has far fewer")
    values = int((structure == ord(",")).sum()) + containers
    if values > MAX_VALUES:
        raise InvalidSubmission(f"the file holds over {MAX_VALUES:,} JSON values, the limit; a notebook has far fewer")
    depth = int(np.cumsum(opens.astype(np.int32) - closes).max(initial=0))
    if depth > MAX_NESTING:
        raise InvalidSubmission(f"the file nests JSON {depth:,} levels deep, over the limit of {MAX_NESTING}; "
                                "a notebook nests about 8")


def check_cell_counts(raw: dict) -> None:
    cells = raw.get("cells", raw.get("worksheets"))
    if len(cells) > MAX_CELLS:
        raise InvalidSubmission(f"the notebook has {len(cells):,} cells, over the limit of {MAX_CELLS:,}")
    outputs = sum(len(c["outputs"]) for c in cells if isinstance(c, dict) and isinstance(c.get("outputs"), list))
    if outputs > MAX_OUTPUTS:
        raise InvalidSubmission(f"the notebook has {outputs:,} saved outputs, over the limit of {MAX_OUTPUTS:,}")


def without_surrogates(value):
    """`value` with each lone surrogate (a \\udcff escape: not text) replaced by U+FFFD, so
    every string can be written as UTF-8 and sent to a kernel."""
    if isinstance(value, str):
        return SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {without_surrogates(k): without_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_surrogates(v) for v in value]
    return value


def read_notebook(path: Path, max_bytes: int) -> NotebookNode:
    size = path.stat().st_size
    if size > max_bytes:
        raise InvalidSubmission(f"the file is {size:,} bytes, over the limit of {max_bytes:,}")
    return read_notebook_bytes(path.read_bytes(), max_bytes)


def _fresh(cell: NotebookNode) -> NotebookNode:
    """A deep copy of a cell, with saved outputs dropped so they cannot be mistaken for ours."""
    cell = nbformat.from_dict(copy.deepcopy(cell))
    if cell.cell_type == "code":
        cell.outputs, cell.execution_count = [], None
    return cell


def _normalise(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def apply_variant(template: NotebookNode, variant: Variant) -> NotebookNode:
    """The template with the variant's replacements made inside its locked cells."""
    nb = nbformat.from_dict(copy.deepcopy(template))
    for old, new in variant.replace.items():
        hits = [c for c in nb.cells if LOCKED in tags(c) and old in c.source]
        if not hits:
            raise ConfigError(f"variant {variant.name!r}: {old!r} appears in no locked cell of the student notebook")
        for cell in hits:
            cell.source = cell.source.replace(old, new)
    return nb


@dataclass
class PreparedNotebook:
    """The notebook to run, and what had to be repaired in the submission to get it."""

    notebook: NotebookNode
    notes: list[str] = field(default_factory=list)
    # For each cell run, its position in the submission as the student sees it (self-check
    # cells included); None for a locked cell that was put back.
    positions: list[int | None] = field(default_factory=list)

    def position_of(self, index: int) -> int:
        """Where the student sees the cell run at `index` (a put-back locked cell: where it runs)."""
        position = self.positions[index] if 0 <= index < len(self.positions) else None
        return index if position is None else position
    answer_cells: dict[str, NotebookNode] = field(default_factory=dict)


def quoted_first_line(source: str) -> str:
    """A cell's first line as code (a page shows it as code in either language)."""
    return f"`{first_line(source)}`" if first_line(source) else "(empty)"


def prepare_notebook(template: NotebookNode, submission: NotebookNode) -> PreparedNotebook:
    """Restore the template's locked cells inside the submission; keep everything else.

    Cells are matched by their nbformat id, and a locked cell whose id was lost is
    recognised by its unchanged text. A deleted locked cell is put back after the
    nearest cell before it in the template that the submission still has. The otter
    lines of the release's self-checks are removed first (see `grader.author.selfcheck`).
    """
    locked = {c.id: c for c in template.cells if LOCKED in tags(c)}
    locked_by_text = {_normalise(c.source): cid for cid, c in locked.items()}
    answers = [c for c in template.cells if ANSWER in tags(c)]
    template_ids = [c.get("id") for c in template.cells]

    notes: list[str] = []
    cells: list[NotebookNode] = []
    positions: list[int | None] = []
    placed: dict[str, int] = {}
    for position, cell in enumerate(submission.cells):
        cell = _fresh(cell)
        if cell.cell_type == "code":
            original_source, cell.source = cell.source, strip_selfcheck_lines(cell.source)
            if cell.source != original_source and not cell.source.strip():
                continue  # a self-check cell from the release: it never counts
        cid = cell.get("id")
        if cid not in locked or cid in placed:
            cid = locked_by_text.get(_normalise(cell.source)) if cell.cell_type == "code" else None
            if cid is None or cid in placed:
                if cell.get("id") in template_ids and cell.get("id") not in placed:
                    placed[cell.id] = len(cells)
                cells.append(cell)
                positions.append(position)
                continue
        original = locked[cid]
        if _normalise(cell.source) != _normalise(original.source):
            shown = quoted_first_line(original.source)
            notes.append(say(f"a locked cell was edited and has been restored: {shown}",
                             f"수정하면 안 되는 셀이 수정되어 원래대로 되돌렸습니다: {shown}"))
        placed[cid] = len(cells)
        cells.append(_fresh(original))
        positions.append(position)

    for position, cid in enumerate(template_ids):
        if cid not in locked or cid in placed:
            continue
        before = [placed[t] for t in template_ids[:position] if t in placed]
        index = max(before) + 1 if before else 0
        cells.insert(index, _fresh(locked[cid]))
        positions.insert(index, None)
        placed = {k: (v + 1 if v >= index else v) for k, v in placed.items()}
        placed[cid] = index
        shown = quoted_first_line(locked[cid].source)
        notes.append(say(f"a locked cell was missing and has been put back: {shown}",
                         f"수정하면 안 되는 셀이 없어져서 다시 넣었습니다: {shown}"))

    answer_cells = {}
    by_id = {c.get("id"): c for c in cells}
    for answer in answers:
        if answer.id in by_id:
            answer_cells[answer.id] = by_id[answer.id]
        else:
            shown = quoted_first_line(answer.source)
            notes.append(say(f"an answer cell is missing (deleted or re-created?): {shown}",
                             f"답안 셀이 없습니다 (지웠거나 새로 만들었나요?): {shown}"))

    nb = nbformat.from_dict({**submission, "cells": []})
    nb.cells = cells
    return PreparedNotebook(notebook=nb, notes=notes, answer_cells=answer_cells, positions=positions)


def first_line(source: str) -> str:
    """A cell's first non-blank line, short enough to name the cell in a message."""
    lines = [line for line in source.splitlines() if line.strip()]
    return lines[0].strip()[:60] if lines else ""
