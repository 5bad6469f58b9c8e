"""Grading submissions of one assignment: run every variant, run the checks, report."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from grader.captured import Captured, ModuleInfo, NoCapture, Trace
from grader.checks import Check, CheckResult, load_checks, run_check
from grader.config import PUBLIC_VARIANT, Assignment
from grader.errors import ConfigError, InvalidSubmission, SubmissionError
from grader.notebook import read_notebook
from grader.reference import reference_captures
from grader.runs import GradeOptions, Runner

STATUS_ORDER = ("ok", "error", "timeout", "grader-error")
UNSANDBOXED = "graded without the sandbox (--no-sandbox): the notebook ran with the grading machine in reach"
CHECKPOINT_DIR = ".ipynb_checkpoints"


@dataclass
class GradeReport:
    """The grade of one submission file: one gradebook row and one feedback file."""

    student: str
    file: str
    status: str  # ok, error, timeout, invalid, grader-error
    reason: str = ""
    score: float = 0.0
    max_score: float = 0.0
    checks: list[CheckResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)
    training: dict = field(default_factory=dict)
    modules: dict = field(default_factory=dict)
    seconds: float = 0.0  # kernel time over all variants, waiting for a worker not counted

    def to_json(self) -> dict:
        return asdict(self)


def student_id(path: Path, root: Path) -> str:
    relative = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
    return str(relative.with_suffix("")).replace("/", "__")


def collect_submissions(paths: list[Path]) -> list[tuple[Path, Path]]:
    """Every file under the given paths, each with the folder its student id is taken from."""
    found = []
    for path in paths:
        if path.is_dir():
            found += [(p, path) for p in sorted(path.rglob("*")) if p.is_file()]
        else:
            found.append((path, path.parent))
    return found


def training_summary(trace: Trace) -> dict:
    """The trace as plain data for the results file and the feedback."""
    return {
        "optimizers": [{"class": o.kind, "lr": o.lr, "steps": o.steps, "parameters": o.parameters,
                        "hyperparameters": o.first_step or o.hyperparameters} for o in trace.optimizers],
        "epochs": trace.epochs,
        "backward_calls": trace.backward_calls,
        "first_nonfinite_epoch": trace.first_nonfinite_epoch,
        "first_nan_epoch": trace.first_nan_epoch,
        "losses": [float(x) for x in trace.losses],
    }


def module_summaries(captured: Captured, names: tuple[str, ...]) -> dict:
    """Layers of every captured module, e.g. {"net": ["Embedding(num_embeddings=5, ...)", ...]}."""
    summaries = {}
    for name in names:
        try:
            value = captured[name]
        except SubmissionError:
            continue
        if isinstance(value, ModuleInfo):
            summaries[name] = [
                f"{layer['type']}({', '.join(f'{k}={v}' for k, v in layer['config'].items())})"
                for layer in value.layers if layer["children"] == 0]
    return summaries


class AssignmentGrader:
    """Everything needed to grade one assignment, loaded once for a whole batch."""

    def __init__(self, assignment: Assignment, options: GradeOptions):
        self.assignment = assignment
        self.options = options
        self.checks: list[Check] = load_checks(assignment)
        try:
            template = read_notebook(assignment.template_path, assignment.execution.max_notebook_bytes)
        except InvalidSubmission as exc:
            raise ConfigError(f"{assignment.template_path}: {exc}") from None
        self.runner = Runner(assignment, template, options)
        self.reference = None

    @property
    def max_score(self) -> float:
        return sum(c.points for c in self.checks for v in self.assignment.variants if c.runs_on(v.name))

    async def prepare(self) -> None:
        self.reference = await reference_captures(self.assignment, self.runner)

    async def grade_file(self, path: Path, root: Path) -> GradeReport:
        report = GradeReport(student_id(path, root), str(path), "ok", max_score=self.max_score)
        try:
            if CHECKPOINT_DIR in path.parts:
                raise InvalidSubmission("a Jupyter autosave copy (.ipynb_checkpoints), not a submission")
            submission = read_notebook(path, self.assignment.execution.max_notebook_bytes)
        except InvalidSubmission as exc:
            report.status, report.reason = "invalid", str(exc)
            report.checks = self._unrun_checks(f"not graded: {exc}")
            return report
        except OSError as exc:
            report.status, report.reason = "invalid", f"the file could not be read: {exc.strerror}"
            report.checks = self._unrun_checks(report.reason)
            return report

        runs = await self.runner.run_all(submission)
        statuses = []
        for variant in self.assignment.variants:
            prepared, result = runs[variant.name]
            statuses.append(result.status)
            if variant.name == PUBLIC_VARIANT:
                report.notes += prepared.notes
                report.problems = [asdict(p) | {"text": p.describe()} for p in result.problems]
                if result.captured:
                    report.training = training_summary(result.captured.trace)
                    report.modules = module_summaries(result.captured, self.assignment.capture)
            report.notes += [n for n in result.notes if n not in report.notes]
            student = result.captured or NoCapture(result.capture_error or "no values were read back")
            values = {"student": student, "reference": self.reference[variant.name], "run": result}
            report.checks += [run_check(c, variant.name, values) for c in self.checks if c.runs_on(variant.name)]

        report.status = max(statuses, key=STATUS_ORDER.index)
        public = runs[PUBLIC_VARIANT][1]
        reasons = [p.describe() for p in public.problems] + ([public.capture_error] if public.capture_error else [])
        if report.status != "ok" and not reasons:
            reasons = ["the notebook failed only when re-run with hidden data"]
        crashed = [c.label for c in report.checks if c.status == "grader-error"]
        if crashed:
            report.status = "grader-error"
            reasons.insert(0, f"check(s) {', '.join(crashed)} crashed; a TA must review this submission")
        report.reason = "; ".join(reasons)
        report.score = round(sum(c.points for c in report.checks), 6)
        report.seconds = round(sum(result.seconds for _, result in runs.values()), 2)
        return report

    def _unrun_checks(self, why: str) -> list[CheckResult]:
        return [CheckResult(c.name, v.name, c.description, 0.0, c.points, "fail", why, why)
                for v in self.assignment.variants for c in self.checks if c.runs_on(v.name)]

    async def grade_all(self, files: list[tuple[Path, Path]],
                        on_report: Callable[[GradeReport], None] | None = None) -> list[GradeReport]:
        async def one(path: Path, root: Path) -> GradeReport:
            try:
                report = await self.grade_file(path, root)
            except Exception as exc:  # a grader bug must not stop the batch or lose the row
                report = GradeReport(student_id(path, root), str(path), "grader-error",
                                     f"internal grading error: {type(exc).__name__}: {exc}",
                                     max_score=self.max_score, checks=self._unrun_checks("not graded"))
            if not self.options.sandbox:
                report.notes.append(UNSANDBOXED)
                report.reason = "; ".join(filter(None, [report.reason, UNSANDBOXED]))
            if on_report:
                on_report(report)
            return report

        reports = list(await asyncio.gather(*(one(p, r) for p, r in files)))
        by_student: dict[str, list[GradeReport]] = {}
        for report in reports:
            by_student.setdefault(report.student, []).append(report)
        for same in by_student.values():
            if len(same) > 1:
                for report in same:
                    others = ", ".join(r.file for r in same if r is not report)
                    report.notes.append(f"this student has more than one file ({others}); each was graded")
        return reports
