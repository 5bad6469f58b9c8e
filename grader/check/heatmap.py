"""An assignment's opt-in heat map for feedback, declared in its checks.py.

    @heatmap(title=say("p(next character)", "다음 문자의 확률"), rows=list("abcde"), columns=list("abcde"),
             row_title=say("character", "현재 문자"), column_title=say("next character", "다음 문자"),
             vmin=0, vmax=1)
    def predicted_probabilities(student):
        return softmax_of(student["net"])     # a 2-D tensor or array

The function may also return `(matrix, column_labels)` when the columns depend on the
student's values (one per hidden node, say). Titles and the caption may be `say(en, ko)`.

The function runs in the grader's process on the student's PUBLIC run only (like a
check, never in the kernel), after grading; the matrix is kept in the report and drawn
like the lecture's `plt.matshow`. At most one per assignment.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

import numpy as np
import torch

from grader.check.checks import marked
from grader.errors import ConfigError
from grader.said import korean

HEATMAP_ATTRIBUTE = "__grader_heatmap__"
MAX_CELLS = 10_000


@dataclass(frozen=True)
class HeatmapHook:
    """A declared heat map: the function computing the matrix and how to label it."""

    func: Callable
    title: str
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    vmin: float | None
    vmax: float | None
    row_title: str = ""
    column_title: str = ""
    caption: str = ""  # what to look for, under the picture


def heatmap(*, title: str, rows=(), columns=(), vmin: float | None = None, vmax: float | None = None,
            row_title: str = "", column_title: str = "", caption: str = ""):
    """Declare the function whose 2-D result each student's feedback shows as a heat map."""

    def mark(func: Callable) -> Callable:
        if list(inspect.signature(func).parameters) != ["student"]:
            raise ConfigError(f"heat map {func.__name__} must take exactly one parameter, `student`")
        setattr(func, HEATMAP_ATTRIBUTE, HeatmapHook(func, title, tuple(map(str, rows)), tuple(map(str, columns)),
                                                     vmin, vmax, row_title, column_title, caption))
        return func

    return mark


def find_heatmap(module: ModuleType) -> HeatmapHook | None:
    hooks = marked(module, HEATMAP_ATTRIBUTE)
    if len(hooks) > 1:
        where = getattr(module, "__file__", None) or module.__name__
        raise ConfigError(f"{where} declares {len(hooks)} heat maps; at most one is shown")
    return hooks[0] if hooks else None


def student_heatmap(hook: HeatmapHook, student) -> dict:
    """The matrix and its labels as plain data, or {} when this student's values don't give one.

    A student whose `net` is missing, has the wrong shape or renamed `state_dict` keys gets
    no heat map: the checks already say why (or crash, and so flag the row for a TA), so
    nothing more is reported here. The hook is course code meeting any student's values,
    hence any exception.
    """
    try:
        value = hook.func(student)
        value, labels = value if isinstance(value, tuple) else (value, hook.columns)
        matrix = value.detach().cpu().double().numpy() if isinstance(value, torch.Tensor) else np.asarray(value, float)
        labels = tuple(map(str, labels))
    except Exception:
        return {}
    if matrix.ndim != 2 or not 0 < matrix.size <= MAX_CELLS:  # an empty one would be stored as a 1-D []
        return {}
    rows = list(hook.rows) if len(hook.rows) == matrix.shape[0] else [str(i) for i in range(matrix.shape[0])]
    columns = list(labels) if len(labels) == matrix.shape[1] else [str(j) for j in range(matrix.shape[1])]
    texts = {key: getattr(hook, key) for key in ("title", "row_title", "column_title", "caption")}
    return ({"rows": rows, "columns": columns, "values": matrix.tolist(), "vmin": hook.vmin, "vmax": hook.vmax}
            | {key: str(said) for key, said in texts.items()} | {f"{key}_ko": korean(said) for key, said in texts.items()})
