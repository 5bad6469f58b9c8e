"""Tracebacks naming cells as the student numbers them.

IPython names a cell by its execution count (`Cell In[12], line 3`) and, inside functions
a cell defined, by a kernel temp file (`/tmp/ipykernel_7/1249756941.py`, the hash of the
cell's code; a SyntaxError's message names it bare: `invalid syntax (1249756941.py, line 1)`).
Neither means anything to a student; both become `Cell 9`, the cell's place in the notebook
they handed in.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ipykernel.compiler import get_tmp_hash_seed, murmur2_x86
from nbformat import NotebookNode

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # colours would split the names matched below
EXECUTION_COUNT = re.compile(r"Cell In\s?\[(\d+)\]")
TEMP_FILE = re.compile(r"(?:File )?(/tmp/ipykernel_\d+/)?\b(\d+)\.py\b")


def student_cell_names(text: str, ran: NotebookNode, position_of: Callable[[int], int]) -> str:
    """`text` (a traceback, an error message), colours removed, with cells named by their 1-based place in the
    student's notebook; `ran` is the notebook as executed, `position_of` maps its cell indexes to the student's.
    A bare `<digits>.py` that is no cell's temp file is left as it is (a student's own file name)."""
    by_count, by_file = {}, {}
    for index, cell in enumerate(ran.cells):
        if cell.cell_type != "code":
            continue
        label = f"Cell {position_of(index) + 1}"
        if cell.get("execution_count"):
            by_count[str(cell.execution_count)] = label
        by_file[str(murmur2_x86(cell.source, get_tmp_hash_seed()))] = label
    text = EXECUTION_COUNT.sub(lambda m: by_count.get(m[1], m[0]), ANSI.sub("", text))
    return TEMP_FILE.sub(lambda m: by_file.get(m[2], "Cell ?" if m[1] else m[0]), text)
