"""`grader gradescope-autograder`: the zip Gradescope builds its autograder image from.

Gradescope unpacks the zip into `/autograder/source`, runs `setup.sh` once to build the
image, then, for every submission, runs `run_autograder` with the student's files in
`/autograder/submission` and reads `/autograder/results/results.json`. The zip holds:

    setup.sh          installs Python, bubblewrap, the pinned torch and this grader
    run_autograder    grades the submitted notebook (`grader gradescope-run`)
    grader/           this grader's source, installed by setup.sh
    course/           course.toml, assignments/<name>/ (checks, variants, public files) and
                      reference/<name>.ipynb and .golden.json: the hidden files

Both scripts take their paths from the environment (`GRADER_AUTOGRADER_ROOT`,
`GRADER_VENV`, ...), so a test can run them in a temporary root laid out like
Gradescope's, installing from the local project instead of the network.
"""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

from grader.check.reference import grader_files
from grader.config import Assignment
from grader.errors import UsageError
from grader.fsutil import write_bytes_atomic
from grader.said import say

PROJECT = Path(__file__).resolve().parents[2]  # holds pyproject.toml and grader/
PROJECT_FILES = ("pyproject.toml", "README.md")
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"  # Gradescope's machines have no GPU
RESULTS = "results/results.json"
UNSANDBOXED_IN_CONTAINER = say("graded without the grader's sandbox, which this Gradescope container does not "
                               "allow; the notebook ran in the container Gradescope makes for each submission",
                               "이 Gradescope 컨테이너는 채점기의 샌드박스를 허용하지 않아 샌드박스 없이 채점했습니다. "
                               "노트북은 Gradescope가 제출물마다 만드는 컨테이너에서 실행되었습니다")

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder image.
# Every path and the install commands can be overridden through the environment (tests do).
set -euo pipefail
ROOT="${{GRADER_AUTOGRADER_ROOT:-/autograder}}"
SOURCE="$ROOT/source"
VENV="${{GRADER_VENV:-$ROOT/venv}}"
TORCH="${{GRADER_TORCH-{torch} --index-url {index}}}"
PIP_OPTIONS="${{GRADER_PIP_OPTIONS:-}}"
PYTHON="${{GRADER_PYTHON:-python3}}"

if [ -z "${{GRADER_SKIP_APT:-}}" ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq python3 python3-venv bubblewrap util-linux
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    apt-get install -y -qq python3.11 python3.11-venv
    PYTHON=python3.11
  fi
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
if [ -n "$TORCH" ]; then
  "$VENV/bin/python" -m pip install $PIP_OPTIONS $TORCH
fi
"$VENV/bin/python" -m pip install $PIP_OPTIONS "$SOURCE/grader"
# Run the reference solution once now, so that no submission waits for it; a mismatch with
# the golden values recorded for this torch build is printed in the build log.
cd "$SOURCE/course"
"$VENV/bin/python" -m grader check-reference {name} --cache-dir "$ROOT/grader-cache" \\
  || echo "WARNING: the reference check failed here; grades may be wrong: see the lines above"
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission; it always leaves $ROOT/{results}.
set -uo pipefail
ROOT="${{GRADER_AUTOGRADER_ROOT:-/autograder}}"
VENV="${{GRADER_VENV:-$ROOT/venv}}"
cd "$ROOT/source/course"
exec "$VENV/bin/python" -m grader gradescope-run {name} --submission "$ROOT/submission" \\
  --results "$ROOT/{results}" --cache-dir "$ROOT/grader-cache"
"""


def _course_files(assignment: Assignment) -> dict[str, Path]:
    """The assignment's files under `course/`, as `grader` finds them from the course folder."""
    course = assignment.folder.parent.parent
    files = {f"course/assignments/{assignment.name}/{name}": path
             for name, path in assignment.files_for_hash().items() if path.is_relative_to(assignment.folder)}
    for path in (assignment.reference_notebook, assignment.golden_file, course / "course.toml"):
        if path.is_file():
            files[f"course/{path.relative_to(course)}"] = path
    return files


def _grader_files() -> dict[str, Path]:
    missing = [name for name in PROJECT_FILES if not (PROJECT / name).is_file()]
    if missing:
        raise UsageError(f"the autograder is built from the grader's source folder, and {PROJECT} has no "
                         f"{', '.join(missing)}: run this grader from its checkout (pip install -e)")
    files = {f"grader/{name}": PROJECT / name for name in PROJECT_FILES}
    return files | {f"grader/{name}": path for name, path in sorted(grader_files().items())}


def _add(archive: zipfile.ZipFile, name: str, data: bytes, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def build_autograder(assignment: Assignment, torch_version: str, out: Path) -> list[str]:
    """Write the zip atomically; returns the names in it."""
    torch = f"torch=={torch_version.split('+')[0]}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        _add(archive, "setup.sh", SETUP_SH.format(torch=torch, index=TORCH_INDEX, name=assignment.name).encode(),
             executable=True)
        _add(archive, "run_autograder", RUN_AUTOGRADER.format(name=assignment.name, results=RESULTS).encode(),
             executable=True)
        for name, path in sorted((_grader_files() | _course_files(assignment)).items()):
            _add(archive, name, path.read_bytes())
        names = archive.namelist()
    write_bytes_atomic(out, buffer.getvalue())
    return names


def submitted_notebook(folder: Path, assignment: Assignment) -> tuple[Path | None, str]:
    """The notebook to grade among the submitted files, or None and why there is none.

    The notebook named like the one students received wins; otherwise there must be one.
    """
    notebooks = sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    named = [p for p in notebooks if p.name == assignment.template_path.name]
    if named:
        return named[0], ""
    if len(notebooks) == 1:
        return notebooks[0], ""
    found = ", ".join(p.name for p in notebooks) or "none"
    return None, f"submit exactly one notebook, {assignment.template_path.name} (notebooks found: {found})"
