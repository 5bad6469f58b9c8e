"""Assignment configuration: what `assignments/<name>/assignment.toml` may declare.

Every setting has a default and one line of help; unknown keys are an error, so a typo
in a TA's file is caught before a class is graded with the wrong settings.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from grader.errors import ConfigError

PUBLIC_VARIANT = "public"
SELFCHECK_FILE = "selfchecks.toml"
# Files students receive that grading never reads: editing them keeps cached grades.
PUBLIC_ONLY_FILES = frozenset({SELFCHECK_FILE})


def _setting(default, help_text: str):
    if callable(default):
        return field(default_factory=default, metadata={"help": help_text})
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class ExecutionSettings:
    """How one notebook run is bounded."""

    cell_timeout: float = _setting(60.0, "seconds one cell may run before it is interrupted")
    notebook_timeout: float = _setting(600.0, "seconds the whole notebook may run, kernel start included")
    startup_timeout: float = _setting(60.0, "seconds to wait for a fresh kernel to become ready")
    max_capture_bytes: int = _setting(64 * 2**20, "largest capture file read back from the kernel")
    max_output_chars: int = _setting(20_000, "characters of a cell's output kept for feedback")
    max_trace_losses: int = _setting(1_000_000, "loss values kept in the training trace")
    max_snapshot_elements: int = _setting(10_000_000, "parameter values copied where training starts "
                                          "(when each optimizer is built), over all optimizers")
    max_notebook_bytes: int = _setting(20 * 2**20, "largest submission file accepted")
    memory_limit_mb: int = _setting(4096, "memory one kernel may use, files it writes included (sandbox)")
    max_processes: int = _setting(256, "processes plus threads one kernel may run at once (sandbox)")
    cpu_time_limit: float = _setting(1800.0, "CPU seconds each process of a kernel may use (sandbox)")


@dataclass(frozen=True)
class Variant:
    """One run of a notebook: the public one as handed out, or a hidden one.

    A hidden variant changes the random stream: every seeding call with a public seed
    (torch, numpy or random, in any cell, the student's own included) seeds the hidden
    one instead, so the data and the initial weights differ from what the student saw
    and a correct answer cannot undo it. It can also rewrite text inside locked cells
    (a data file's name, say), never a constant the task states.
    """

    name: str = _setting(PUBLIC_VARIANT, "label of the run, used in check names")
    replace: dict[str, str] = _setting(dict, "text in locked cells -> text to put instead")
    seeds: dict[str, int] = _setting(dict, "public seed -> the seed this run uses instead, wherever it is set")

    @property
    def hidden(self) -> bool:
        return self.name != PUBLIC_VARIANT


@dataclass(frozen=True)
class ManualQuestion:
    """A free-text answer a TA grades by hand; the grader collects it and adds a hint."""

    name: str = _setting("", "column name in the gradebook and the manual-grades file")
    cell: str = _setting("", "id of the answer cell (usually markdown) holding the answer")
    points: float = _setting(1.0, "points the TA can award")
    prompt: str = _setting("", "the question, shown to the TA in the review file")
    prompt_ko: str = _setting("", "the question in Korean, shown on Korean pages")
    hint_words: tuple[str, ...] = _setting((), "words whose presence the automatic hint reports")


@dataclass(frozen=True)
class Assignment:
    """An assignment folder, resolved to paths and settings."""

    name: str
    folder: Path
    reference_notebook: Path
    golden_file: Path
    title: str = _setting("", "human title shown in feedback")
    title_ko: str = _setting("", "the title in Korean, shown on Korean pages")
    student_notebook: str = _setting("", "notebook students receive (default <name>.ipynb)")
    capture: tuple[str, ...] = _setting((), "names read back from the kernel after the student's cells")
    execution: ExecutionSettings = _setting(ExecutionSettings(), "timeouts and size limits")
    variants: tuple[Variant, ...] = _setting((Variant(),), "runs of each submission, public first")
    manual: tuple[ManualQuestion, ...] = _setting((), "free-text questions graded by a TA")
    task: dict[str, object] = _setting(dict, "numbers the task states (epochs, lr, seed, ...): checks.py reads "
                                       "them with task(\"epochs\"), self-checks as $epochs")
    cuda_form: str = _setting("", "equivalent form (forms.toml) that trains on the GPU: with a GPU, the reference "
                              "for submissions whose training ran on CUDA (default: the reference solution, "
                              "which computes on the GPU only where its code puts tensors there)")

    def title_in(self, lang: str) -> str:
        return (self.title_ko if lang == "ko" else "") or self.title or self.name

    @property
    def template_path(self) -> Path:
        return self.folder / self.student_notebook

    @property
    def checks_path(self) -> Path:
        return self.folder / "checks.py"

    @property
    def public_dir(self) -> Path:
        """Files copied next to the notebook in its working directory."""
        return self.folder / "public"

    def files_for_hash(self) -> dict[str, Path]:
        """Every file whose content decides the reference's values and the checks (the
        self-checks' texts do not: students run them, grading removes them)."""
        files = {str(p.relative_to(self.folder)): p for p in self.folder.rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts and p.name not in PUBLIC_ONLY_FILES}
        return {**files, "reference notebook": self.reference_notebook}


def settings_table() -> str:
    """Every assignment.toml key with its default and help, as a Markdown table: the
    documentation (docs/assignment-toml.md) is this text, so the two cannot drift."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    tables = [("", Assignment), ("[execution] ", ExecutionSettings), ("[[variants]] ", Variant),
              ("[[manual]] ", ManualQuestion)]
    for prefix, cls in tables:
        for f in dataclasses.fields(cls):
            if "help" not in f.metadata or f.name in ("execution", "variants", "manual"):  # tables of their own
                continue
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            rows.append(f"| `{prefix}{f.name}` | `{default!r}` | {f.metadata['help']} |")
    return "\n".join(rows)


def _build(cls, data: dict, where: str):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def list_assignments(course_dir: Path) -> list[str]:
    root = course_dir / "assignments"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "assignment.toml").is_file())


def load_assignment(course_dir: Path, name: str) -> Assignment:
    folder = course_dir / "assignments" / name
    toml_path = folder / "assignment.toml"
    if not toml_path.is_file():
        known = ", ".join(list_assignments(course_dir)) or "none"
        raise ConfigError(f"unknown assignment {name!r} (no {toml_path}); known assignments: {known}")
    try:
        data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{toml_path}: {exc}") from None

    where = str(toml_path)
    execution = _build(ExecutionSettings, data.pop("execution", {}), f"{where} [execution]")
    hidden = tuple(_build(Variant, v, f"{where} [[variants]]") for v in data.pop("variants", []))
    for variant in hidden:
        if not all(key.isdigit() and isinstance(value, int) for key, value in variant.seeds.items()):
            raise ConfigError(f"{where} [[variants]] {variant.name!r}: seeds map whole numbers to whole numbers")
    manual = tuple(_build(ManualQuestion, {**q, "hint_words": tuple(q.get("hint_words", ()))},
                          f"{where} [[manual]]") for q in data.pop("manual", []))
    if any(not q.name or not q.cell for q in manual):
        raise ConfigError(f"{where}: every [[manual]] question needs a name and a cell id")
    names = [v.name for v in hidden]
    if PUBLIC_VARIANT in names or len(set(names)) != len(names):
        raise ConfigError(f"{where}: variant names must be unique and not {PUBLIC_VARIANT!r}")
    if not all(isinstance(value, (int, float, str, bool)) for value in data.get("task", {}).values()):
        raise ConfigError(f"{where} [task]: values are numbers, text or true/false (one per line)")
    data.setdefault("student_notebook", f"{name}.ipynb")
    data["capture"] = tuple(data.get("capture", ()))
    assignment = _build(
        Assignment,
        {
            **data,
            "name": name,
            "folder": folder,
            "reference_notebook": course_dir / "reference" / f"{name}.ipynb",
            "golden_file": course_dir / "reference" / f"{name}.golden.json",
            "execution": execution,
            "variants": (Variant(),) + hidden,
            "manual": manual,
        },
        where,
    )
    for path in (assignment.template_path, assignment.checks_path, assignment.reference_notebook):
        if not path.is_file():
            raise ConfigError(f"assignment {name!r} is missing {path}")
    return assignment
