"""Numbers stated once: the `[task]` table of assignment.toml (epochs, lr, seed, ...).

checks.py reads them while it is imported, `EPOCHS = task("epochs")`, and self-checks
write them as `$epochs`, so a number the task states lives in one file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from grader.config import Assignment
from grader.errors import ConfigError

_importing: ContextVar[Assignment | None] = ContextVar("importing checks of", default=None)


@contextmanager
def stating(assignment: Assignment) -> Iterator[None]:
    """Make `assignment`'s `[task]` values what `task()` reads, while its checks are imported."""
    token = _importing.set(assignment)
    try:
        yield
    finally:
        _importing.reset(token)


def task(name: str):
    """The value `name` of the `[task]` table of the assignment whose checks are being imported."""
    assignment = _importing.get()
    if assignment is None:
        raise ConfigError(f"task({name!r}) is read while an assignment's checks.py is imported, not later")
    if name not in assignment.task:
        known = ", ".join(sorted(assignment.task)) or "none"
        raise ConfigError(f"{assignment.folder / 'assignment.toml'} [task] has no {name!r}; it states: {known}")
    return assignment.task[name]
