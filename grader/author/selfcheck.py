"""Self-checks students run while working: declared in `selfchecks.toml`, run by otter.

They catch easy mistakes early (a name never defined, a wrong shape, a nan loss,
training that did not run) and are not the grade. Everything here is PUBLIC: the release
turns each question into an otter-grader test file (the exception-based format, run by
`grader.check("q1")` in the student's notebook), so a self-check may state only what the
student notebook already says.

    [[question]]
    name = "q1"                  # grader.check("q1")
    after = "training"           # id of the cell the check cell follows
    defined = ["yhat", "loss"]
    finite = ["loss"]
    [question.shape]
    yhat = [1000, 1]
    [[question.expect]]          # any boolean expression over the notebook's names
    test = "not torch.equal(alpha0.detach(), torch.tensor([0.5]))"
    message = "alpha0 is still 0.5: did the loop call optimizr.step()?"

    [[question]]
    name = "q2"
    after = "why"
    written = ["why"]            # answer cells (markdown too) that must not stay as handed out

A kernel cannot see markdown cells, so a `written` check reads the notebook as last saved:
the file VS Code names (`__vsc_ipynb_file__`), Jupyter's session (`__session__`,
`JPY_SESSION_NAME`, absolute or relative to the server's folder), the released file name in
the working folder, or the only notebook there. Where none is found (Colab) it says how to
check by hand; its messages remind the student to save first.

At grading, the lines the release adds (`import otter`, `grader = otter.Notebook(...)`,
`grader.check(...)`) are removed from submissions before they run: they would need
otter's test files, and the grade never depends on them.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from string import Template
from dataclasses import dataclass, field
from pathlib import Path

from grader.config import SELFCHECK_FILE
from grader.errors import ConfigError
from grader.report.i18n import both

TESTS_DIR = "tests"
SETUP_SOURCE = f'import otter\ngrader = otter.Notebook(tests_dir="{TESTS_DIR}")'
# A top-level line that only drives otter; indented lines are left alone (removing one
# could empty a block).
PLUMBING_LINE = re.compile(r"^(import otter|grader = otter\.Notebook\(.*\)|grader\.check\(\s*(['\"])[\w.-]+\2\s*\))\s*(#.*)?$")
IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")


@dataclass(frozen=True)
class Expectation:
    """A boolean expression over the notebook's names, and what to tell the student if it is false."""

    test: str
    message: str


@dataclass(frozen=True)
class Question:
    """One `grader.check(name)` cell and the tests it runs."""

    name: str
    after: str
    defined: tuple[str, ...] = ()
    shape: dict[str, tuple[int, ...]] = field(default_factory=dict)
    finite: tuple[str, ...] = ()
    expect: tuple[Expectation, ...] = ()
    written: dict[str, str] = field(default_factory=dict)  # answer cell id -> its text as handed out


def load_selfchecks(folder: Path, cells: Mapping[str, str], task: dict | None = None) -> list[Question]:
    """The questions in `folder/selfchecks.toml` (none if the file is absent), validated against
    the student notebook's cells (id -> text); `$name` in a test or message is the assignment's
    `[task]` value `name`."""
    path = folder / SELFCHECK_FILE
    if not path.is_file():
        return []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if set(data) - {"question"}:
        raise ConfigError(f"{path}: unknown top-level key(s) {sorted(set(data) - {'question'})}; use [[question]]")
    questions, known = [], {"name", "after", "defined", "shape", "finite", "expect", "written"}
    for raw in data.get("question", []):
        where = f"{path} question {raw.get('name', '?')!r}"
        if set(raw) - known:
            raise ConfigError(f"{where}: unknown key(s) {sorted(set(raw) - known)}; known: {sorted(known)}")
        if not IDENTIFIER.match(raw.get("name", "")) or raw.get("after") not in cells:
            raise ConfigError(f"{where}: needs a name (an identifier) and `after`, the id of a cell in the "
                              "student notebook")
        unknown = [cell for cell in raw.get("written", ()) if cell not in cells]
        if unknown:
            raise ConfigError(f"{where}: `written` names no cell of the student notebook: {unknown}")
        try:
            question = Question(raw["name"], raw["after"], tuple(raw.get("defined", ())),
                                {k: tuple(int(n) for n in v) for k, v in raw.get("shape", {}).items()},
                                tuple(raw.get("finite", ())),
                                tuple(Expectation(*(Template(e[k]).safe_substitute({key: str(value) for key, value in (task or {}).items()})
                                                     for k in ("test", "message")))
                                      for e in raw.get("expect", [])),
                                {cell: cells[cell] for cell in raw.get("written", ())})
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: malformed ({type(exc).__name__}: {exc}); see {__name__}'s docstring") from None
        bad = [n for n in (*question.defined, *question.shape, *question.finite) if not IDENTIFIER.match(str(n))]
        if bad:
            raise ConfigError(f"{where}: not Python names: {bad}")
        for e in question.expect:
            try:
                compile(e.test, where, "eval")
            except SyntaxError as exc:
                raise ConfigError(f"{where}: expect test {e.test!r} is not a Python expression: {exc.msg}") from None
        questions.append(question)
    if len({q.name for q in questions}) != len(questions):
        raise ConfigError(f"{path}: question names must be unique")
    return questions


def strip_selfcheck_lines(source: str) -> str:
    """The cell's code without the otter lines the release added (unchanged if it has none)."""
    lines = source.splitlines()
    kept = [line for line in lines if not PLUMBING_LINE.match(line)]
    return source if len(kept) == len(lines) else "\n".join(kept)


def check_source(question: Question) -> str:
    return f'grader.check("{question.name}")'


def _message(key: str, **placeholders: str) -> str:
    """The bilingual message with `{placeholders}` left for the test to fill at run time."""
    return both(key, **{k: "{" + k + "}" for k in placeholders})


# How a `written` check reads the notebook as last saved (see the module's docstring).
SAVED_CELLS = '''

def saved_notebook(env):
    """The path of this kernel's notebook as saved on disk, or None (Colab keeps it elsewhere)."""
    names = [env.get("__vsc_ipynb_file__"), env.get("__session__"), os.environ.get("JPY_SESSION_NAME"), NOTEBOOK]
    for name in filter(None, names):
        for path in (pathlib.Path(str(name)), pathlib.Path(pathlib.PurePath(str(name)).name)):
            if path.suffix == ".ipynb" and path.is_file():
                return path
    found = sorted(pathlib.Path().glob("*.ipynb"))
    return found[0] if len(found) == 1 else None


def saved_cells(path):
    """{cell id: text} of the saved notebook, or None when it cannot be read."""
    try:
        return {c.get("id"): "".join(c.get("source", "")) for c in json.loads(path.read_text(encoding="utf-8"))["cells"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def quoted(text):
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= 60 else line[:59] + "…"
'''


def otter_test(question: Question, assignment: str, notebook: str) -> str:
    """The question as an otter exception-based test file (tests/<name>.py); `notebook` is the
    released notebook's file name."""
    out = [
        f'"""Self-check {question.name} of {assignment}: catches easy mistakes, gives no points.',
        "",
        f"Generated by `grader release` from {SELFCHECK_FILE}; edit that file, not this one.",
        '"""',
        *(["import json", "import os", "import pathlib"] if question.written else []),
        "import sys",
        "",
        "import torch",
        "from otter.test_files import test_case",
        "",
        "OK_FORMAT = False",
        f"name = {question.name!r}",
        "points = None",
        "",
        f"MISSING = {_message('selfcheck_missing', names='')!r}",
        f"CELL_FAILED = {_message('selfcheck_cell_failed', error='')!r}",
        f"NOT_TENSOR = {_message('selfcheck_not_tensor', name='', type='')!r}",
        f"SHAPE = {_message('selfcheck_shape', name='', got='', expected='')!r}",
        f"NONFINITE = {_message('selfcheck_nonfinite', name='')!r}",
    ]
    for i, e in enumerate(question.expect, start=1):
        out += [f"TEST_{i} = compile({e.test!r}, 'expect {i}', 'eval')", f"MESSAGE_{i} = {e.message!r}"]
    # Every name the tests read is checked once, here; the other tests leave a missing name to
    # this one, so one mistake is said once.
    needed = tuple(dict.fromkeys((*question.defined, *question.shape, *question.finite)))
    out += ["", "", "def why_missing(missing):",
            '    """Missing names, or the error that stopped a cell above before it defined them."""',
            "    error = getattr(sys, 'last_value', None)  # set by IPython when a cell raises",
            "    if error is not None:",
            "        return CELL_FAILED.format(error=f'{type(error).__name__}: {error}'.strip(': '))",
            '    return MISSING.format(names=", ".join(missing))']
    if needed:
        out += ["", "", f"@test_case(name={f'{question.name}: defined'!r})", "def defined(env):",
                f"    missing = [n for n in {needed!r} if n not in env]",
                "    assert not missing, why_missing(missing)"]
    for name, shape in question.shape.items():
        out += ["", "", f"@test_case(name={f'{question.name}: shape of {name}'!r})", f"def shape_{name}(env):",
                f"    if {name!r} not in env:",
                "        return  # said by `defined`",
                f"    value = env[{name!r}]",
                f"    assert isinstance(value, torch.Tensor), NOT_TENSOR.format(name={name!r}, type=type(value).__name__)",
                f"    assert tuple(value.shape) == {shape!r}, "
                f"SHAPE.format(name={name!r}, got=tuple(value.shape), expected={shape!r})"]
    for name in question.finite:
        out += ["", "", f"@test_case(name={f'{question.name}: {name} is finite'!r})", f"def finite_{name}(env):",
                f"    if {name!r} not in env:",
                "        return  # said by `defined`",
                f"    assert bool(torch.isfinite(torch.as_tensor(env[{name!r}])).all()), "
                f"NONFINITE.format(name={name!r})"]
    for i in range(1, len(question.expect) + 1):
        out += ["", "", f"@test_case(name={f'{question.name}: expectation {i}'!r})", f"def expectation_{i}(env):",
                "    try:",
                f"        holds = eval(TEST_{i}, dict(env))",
                "    except NameError as missing:",
                f"        assert missing.name in {needed!r}, why_missing([missing.name])",
                "        return  # said by `defined`",
                f"    assert holds, MESSAGE_{i}"]
    if question.written:
        out += ["", "", f"NOTEBOOK = {notebook!r}", f"WRITTEN = {question.written!r}",
                f"UNWRITTEN = {_message('selfcheck_unwritten', cell='', path='')!r}",
                f"CELL_GONE = {_message('selfcheck_cell_gone', cell='', path='')!r}",
                f"NO_NOTEBOOK = {_message('selfcheck_no_notebook', cell='')!r}",
                SAVED_CELLS,
                "",
                f"@test_case(name={f'{question.name}: answers written'!r})", "def written(env):",
                "    path = saved_notebook(env)",
                "    cells = saved_cells(path) if path else None",
                "    handed_out = list(WRITTEN.values())",
                "    assert cells is not None, NO_NOTEBOOK.format(cell=' / '.join(map(quoted, handed_out)))",
                "    for cell, text in WRITTEN.items():",
                "        assert cell in cells, CELL_GONE.format(cell=quoted(text), path=path)",
                "        assert cells[cell].strip() not in ('', text.strip()), UNWRITTEN.format(cell=quoted(text), path=path)"]
    return "\n".join(out) + "\n"
