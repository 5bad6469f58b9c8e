"""Grading submissions of one assignment: run every variant, run the checks, report."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Awaitable, Callable

from nbformat import NotebookNode

from grader.check.captured import Captured, ModuleInfo, NoCapture, Trace
from grader.check.checks import (NOT_GRADED, Check, CheckResult, import_checks, load_checks, not_graded, run_check,
                                 said_by, settle, withhold)
from grader.check.causes import trace_causes
from grader.check.diagnose import diagnose, unchanged_by_hidden_data, unchanged_message
from grader.check.forms import form_notebook, load_forms
from grader.check.replay import Replays
from grader.config import PUBLIC_VARIANT, Assignment
from grader.errors import CaptureError, ConfigError, InvalidSubmission, SubmissionError
from grader.fsutil import UnsafeFile, read_regular_file, readable_name, safe_name, write_atomic
from grader.check.heatmap import find_heatmap, student_heatmap
from grader.run.notebook import ANSWER, PreparedNotebook, read_notebook, read_notebook_bytes, tags
from grader.check.reference import (RunOutcome, cache_folder, mistake_outcomes, reference_captures,
                                    reference_notebook)
from grader.run.runs import GradeOptions, Runner
from grader.said import Said, joined, korean, say

STATUS_ORDER = ("ok", "error", "timeout", "grader-error")
TRACE_CAUSE = "trace"  # a diagnosis read from the training trace, not a declared mistake
UNSANDBOXED = say("graded without the sandbox (--no-sandbox): the notebook ran with the grading machine in reach",
                  "샌드박스 없이 채점했습니다 (--no-sandbox): 노트북이 채점 컴퓨터에 접근할 수 있는 상태로 실행되었습니다")
NOTHING_READ = say("no values were read back", "값을 하나도 읽어 오지 못했습니다")
HIDDEN_RUN_FAILED = say("the notebook failed only when re-run with hidden data",
                        "숨겨진 데이터로 다시 실행했을 때만 노트북이 실패했습니다")
CHECKPOINT_DIR = ".ipynb_checkpoints"


@dataclass
class GradeReport:
    """The grade of one submission file: one gradebook row and one feedback file."""

    student: str
    file: str
    status: str  # ok, error, timeout, invalid, grader-error
    reason: str = ""
    reason_ko: str = ""  # Korean of `reason`, "" where none
    checks: list[CheckResult] = field(default_factory=list)
    manual: list[CheckResult] = field(default_factory=list)  # merged from the TA's file, never cached
    answers: dict[str, str | None] = field(default_factory=dict)  # free-text answers by question
    notes: list[str] = field(default_factory=list)
    notes_ko: list[str] = field(default_factory=list)  # each note's Korean ("" where none), same order
    problems: list[dict] = field(default_factory=list)
    diagnoses: list[dict] = field(default_factory=list)  # known mistakes matched: name, cause, cause_en
    training: dict = field(default_factory=dict)
    modules: dict = field(default_factory=dict)
    heatmap: dict = field(default_factory=dict)  # the assignment's opt-in matrix from the public run
    seconds: float = 0.0  # the public run's kernel time, waiting for a worker not counted
    device: str = ""  # where the public run computed (cpu, cuda): its reference ran there too
    cached: bool = False  # reused from an earlier run of identical content
    content_hash: str = ""  # sha256 of the file's bytes: names its entry in the result cache

    @property
    def score(self) -> float:
        return round(sum(c.points for c in self.checks + self.manual), 6)

    @property
    def max_score(self) -> float:
        return round(sum(c.max_points for c in self.checks + self.manual), 6)

    def note(self, text: str) -> None:
        """Add a note for the student, in both languages when `text` is a `Said`."""
        if str(text) not in self.notes:
            self.notes.append(str(text))
            self.notes_ko.append(korean(text))

    def notes_in(self, lang: str) -> list[str]:
        if lang != "ko":
            return self.notes
        return [ko or en for en, ko in zip(self.notes, self.notes_ko + [""] * len(self.notes))]

    def set_reason(self, text: str) -> None:
        self.reason, self.reason_ko = str(text), korean(text)

    def reason_in(self, lang: str) -> str:
        return (self.reason_ko or self.reason) if lang == "ko" else self.reason

    def to_json(self) -> dict:
        return asdict(self) | {"score": self.score, "max_score": self.max_score}

    @classmethod
    def from_json(cls, data: dict) -> "GradeReport":
        fields = {k: v for k, v in data.items() if k not in ("score", "max_score")}
        fields["checks"] = [CheckResult(**c) for c in data["checks"]]
        fields["manual"] = [CheckResult(**c) for c in data.get("manual", [])]
        return cls(**fields)


def student_id(path: Path, root: Path) -> str:
    """The file's path under `root` without its extension, as one safe path component
    (`...ipynb` is not `..`; a CP949 file name from a Korean zip reads as Hangul)."""
    relative = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
    return safe_name(readable_name(str(relative.with_suffix(""))).replace("/", "__"))


def collect_submissions(paths: list[Path]) -> list[tuple[Path, Path]]:
    """Every file (and link: refused later) under the given paths, each with the folder its
    student id is taken from."""
    found = []
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            found += [(p, path) for p in sorted(path.rglob("*")) if p.is_symlink() or p.is_file()]
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
        module = import_checks(assignment)
        self.checks: list[Check] = load_checks(assignment, module)
        self.heatmap = find_heatmap(module)
        try:
            template = read_notebook(assignment.template_path, assignment.execution.max_notebook_bytes)
        except InvalidSubmission as exc:
            raise ConfigError(f"{assignment.template_path}: {exc}") from None
        self.runner = Runner(assignment, template, options)
        self.forms = load_forms(assignment)
        self.reference_notebooks = self._reference_notebooks()
        self.references: dict[str, asyncio.Future] = {}  # by device: the reference's captures per variant
        self.reference: dict[str, Captured] = {}  # the reference on the grading run's device
        self.mistakes: dict[str, dict[str, RunOutcome]] = {}
        self.replays = Replays(self.runner, self.reference_notebooks)
        answer_cells = {c.get("id"): c for c in template.cells if ANSWER in tags(c)}
        for question in assignment.manual:
            if question.cell not in answer_cells:
                raise ConfigError(f"manual question {question.name!r}: no answer cell with id {question.cell!r} "
                                  "in the student notebook")
        self.answer_prompts = {q.name: answer_cells[q.cell].source for q in assignment.manual}
        # Unsandboxed grades are never reused by a sandboxed run: student code was not contained.
        isolation = "sandboxed" if options.sandbox else "unsandboxed"
        self.results_cache = (options.cache_dir / "results" / assignment.name
                              / f"{cache_folder(assignment, self.runner, options.device).name}-{isolation}")

    def _reference_notebooks(self) -> dict[str, NotebookNode]:
        """What runs as the reference on each device a submission may compute on: the
        reference solution, or on a GPU the equivalent form `cuda_form` names."""
        notebook = reference_notebook(self.assignment)
        name = self.assignment.cuda_form
        forms = {form.name: form for form in self.forms.equivalent}
        if name and name not in forms:
            raise ConfigError(f"{self.assignment.folder / 'assignment.toml'}: cuda_form {name!r} is not an "
                              f"equivalent form in forms.toml (known: {', '.join(forms) or 'none'})")
        return {device: form_notebook(notebook, forms[name]) if name and device != "cpu" else notebook
                for device in self.options.devices}

    async def prepare(self) -> None:
        """Run (or read from the cache) the reference and the known mistakes, every variant."""
        self.reference = await self.reference_on(self.options.device)
        self.mistakes = await mistake_outcomes(self.assignment, self.runner, self.forms.mistakes)

    async def reference_on(self, device: str) -> dict[str, Captured]:
        """The reference's captured values computed on `device` (`cpu`, `cuda`), per variant:
        the grading run's device when prepared, another the first time a submission computed there."""
        if device not in self.references:
            self.references[device] = asyncio.ensure_future(
                reference_captures(self.assignment, self.runner, device, self.reference_notebooks[device]))
        return await asyncio.shield(self.references[device])

    @property
    def reference_losses(self) -> list[float]:
        """The PUBLIC reference run's loss curve: the only reference trace a student may see."""
        return [float(x) for x in self.reference[PUBLIC_VARIANT].trace.losses]

    def lookup(self, path: Path, root: Path) -> tuple[GradeReport, bytes | None]:
        """A finished report (invalid file, or identical content already graded in this
        setting), or a blank report plus the notebook's bytes still to be graded."""
        report = GradeReport(student_id(path, root), readable_name(str(path)), "ok")
        limit = self.assignment.execution.max_notebook_bytes
        try:
            if CHECKPOINT_DIR in path.parts:
                raise InvalidSubmission("a Jupyter autosave copy (.ipynb_checkpoints), not a submission")
            data = read_regular_file(path, limit)
            report.content_hash = hashlib.sha256(data).hexdigest()
            cached = self._cache_path(report)
            if cached.is_file() and not self.options.force:
                earlier = GradeReport.from_json(json.loads(cached.read_text(encoding="utf-8")))
                return replace(earlier, student=report.student, file=report.file, cached=True,
                               content_hash=report.content_hash), None
            read_notebook_bytes(data, limit)
            return report, data
        except UnsafeFile as exc:
            report.status = "invalid"
            report.set_reason(say(f"the file is {exc}", f"파일 문제: {exc}"))
        except InvalidSubmission as exc:
            report.status = "invalid"
            report.set_reason(said_by(exc))
        except OSError as exc:
            report.status = "invalid"
            report.set_reason(say(f"the file could not be read: {exc.strerror}",
                                  f"파일을 읽을 수 없습니다: {exc.strerror}"))
        report.checks = self._unrun_checks(not_graded(Said(report.reason, report.reason_ko or report.reason)))
        return report, None

    def _cache_path(self, report: GradeReport) -> Path:
        return self.results_cache / f"{report.content_hash[:32]}.json"

    def remember(self, report: GradeReport) -> None:
        """Cache a finished grade so identical content is not run again (grader errors are retried)."""
        if report.status != "grader-error":
            write_atomic(self._cache_path(report), json.dumps(report.to_json()))

    def forget(self, report: GradeReport) -> None:
        """Drop a cached grade whose outputs could not be written, so no re-run replays the failure."""
        if report.content_hash:
            self._cache_path(report).unlink(missing_ok=True)

    async def grade_file(self, path: Path, root: Path,
                         remote: Callable[[GradeReport, bytes], Awaitable[GradeReport]] | None = None) -> GradeReport:
        """Grade one file here (or through `remote`), unless it is invalid or already graded."""
        report, data = self.lookup(path, root)
        if data is not None:
            report = replace(await (remote or self.grade_bytes)(report, data), content_hash=report.content_hash)
            self.remember(report)
        return report

    async def grade_bytes(self, report: GradeReport, data: bytes) -> GradeReport:
        """Run every variant of a valid notebook, check each against what it should have
        given, and pay points only for values the notebook computed (see README's policy)."""
        submission = read_notebook_bytes(data, self.assignment.execution.max_notebook_bytes)
        runs = await self.runner.run_all(submission)
        results = {name: result for name, (_, result) in runs.items()}
        prepared, public = runs[PUBLIC_VARIANT]
        # Only the public run is reported (notes, time): a hidden run could signal through them.
        for note in prepared.notes + public.notes:
            report.note(note)
        report.problems = [asdict(p) | {"text": p.describe()} for p in public.problems]
        if public.captured:
            report.training = training_summary(public.captured.trace)
            report.modules = module_summaries(public.captured, self.assignment.capture)
            report.heatmap = student_heatmap(self.heatmap, public.captured) if self.heatmap else {}
        references, compared_with = {}, {}
        for variant in self.assignment.variants:
            result = results[variant.name]
            student = result.captured or NoCapture(result.capture_error or NOTHING_READ)
            # Compared with the reference computed where this run computed (a GPU rounds otherwise).
            device = result.captured.computed_on() if result.captured else self.options.device
            if not variant.hidden:
                report.device = device
            references[variant.name] = (await self.reference_on(device))[variant.name]
            expected = await self.replays.expected(variant, result.captured, references[variant.name], device)
            compared_with[variant.name] = expected
            values = {"student": student, "reference": expected, "run": result}
            report.checks += [run_check(c, variant.name, values) for c in self.checks if c.runs_on(variant.name)]
        settle(self.checks, report.checks)
        unchanged = unchanged_by_hidden_data({n: r.captured for n, r in results.items()}, references,
                                             self.assignment.capture)
        if unchanged:
            withhold(report.checks, unchanged_message(unchanged))  # also said as a note: the whole page's reason
            report.note(unchanged_message(unchanged))
        report.diagnoses = [{"name": m.name, "cause": m.cause, "cause_en": m.cause_en}
                            for m in diagnose(self.forms.mistakes, self.mistakes, results, self.assignment.capture)]
        expected = compared_with[PUBLIC_VARIANT]
        if (not report.diagnoses and public.captured and isinstance(expected, Captured)
                and any(c.points < c.max_points for c in report.checks)):
            try:
                causes = trace_causes(public.captured.trace, expected.trace)
            except CaptureError:  # no readable trace: the checks say so
                causes = []
            report.diagnoses = [{"name": TRACE_CAUSE, "cause": c.ko, "cause_en": str(c)} for c in causes]

        report.status = max((r.status for r in results.values()), key=STATUS_ORDER.index)
        reasons = [p.describe() for p in public.problems] + ([public.capture_error] if public.capture_error else [])
        if report.status != "ok" and not reasons:
            reasons = [HIDDEN_RUN_FAILED]
        if unchanged:
            reasons.append(unchanged_message(unchanged))
        crashed = [c.label for c in report.checks if c.status == "grader-error"]
        if crashed:
            report.status = "grader-error"
            names = ", ".join(crashed)
            reasons.insert(0, say(f"check(s) {names} crashed; a TA must review this submission",
                                  f"{names} 항목의 검사 코드가 실패했습니다. 조교가 이 제출물을 확인해야 합니다"))
        report.set_reason(joined(reasons))
        report.seconds = round(public.seconds, 2)
        report.answers = self._answers(prepared)
        return report

    def _answers(self, prepared: PreparedNotebook) -> dict[str, str | None]:
        """Each free-text answer; a cell left exactly as handed out counts as empty."""
        answers = {}
        for question in self.assignment.manual:
            cell = prepared.answer_cells.get(question.cell)
            unchanged = cell is not None and cell.source.strip() == self.answer_prompts[question.name].strip()
            answers[question.name] = None if cell is None else "" if unchanged else cell.source
        return answers

    def _unrun_checks(self, why: str) -> list[CheckResult]:
        results = [CheckResult(c.name, v.name, c.description, 0.0, c.points, "fail", description_ko=c.description_ko)
                   for v in self.assignment.variants for c in self.checks if c.runs_on(v.name)]
        for result in results:
            result.tell(why)
        return results

    async def grade_all(self, files: list[tuple[Path, Path]],
                        on_report: Callable[[GradeReport], None] | None = None,
                        remote: Callable[[GradeReport, bytes], Awaitable[GradeReport]] | None = None,
                        ) -> list[GradeReport]:
        """Grade every file concurrently, here or via `remote`. Locally at most `workers` files
        are read and held at once: the others wait as names, not as parsed notebooks."""
        in_flight = asyncio.Semaphore(self.options.workers if remote is None else max(1, len(files)))

        async def one(path: Path, root: Path) -> GradeReport:
            try:
                async with in_flight:
                    report = await self.grade_file(path, root, remote)
            except Exception as exc:  # a grader bug must not stop the batch or lose the row
                error = f"{type(exc).__name__}: {exc}"
                report = GradeReport(student_id(path, root), readable_name(str(path)), "grader-error",
                                     checks=self._unrun_checks(NOT_GRADED))
                report.set_reason(say(f"internal grading error: {error}", f"채점기 내부 오류: {error}"))
            if not self.options.sandbox:
                report.note(UNSANDBOXED)
                report.set_reason(joined([Said(report.reason, report.reason_ko), UNSANDBOXED] if report.reason
                                         else [UNSANDBOXED]))
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
                    report.note(say(f"this student has more than one file ({others}); each was graded",
                                    f"이 학생은 파일이 둘 이상이며 ({others}) 모두 채점했습니다"))
        return reports
