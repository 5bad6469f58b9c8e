"""Hidden checks: plain functions in `assignments/<name>/checks.py`, run in the grader.

A check names what it needs as parameters (`student`, `reference`, `run`) and passes by
returning, fails by raising `AssertionError` (the comparison helpers raise `Mismatch`),
earns part of its points by raising `PartialCredit`, or says it cannot be judged because
of a cause reported elsewhere by raising `NotJudged`.

    @check(points=3, variants="all")
    def parameters(student, reference):
        assert_close(student["alpha0"], reference["alpha0"], name="alpha0", atol=1e-4)

Points are paid only for values the notebook computed (see `settle`): a check that runs
on every variant pays its public points only when it holds under every hidden variant
too (`confirm_hidden`), and a check can require others (`requires`): a fact the kernel
reports about itself, such as the training trace, counts only where the values it
produced were confirmed.
"""

from __future__ import annotations

import importlib.util
import inspect
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

from grader.check.compare import Mismatch, recording_closeness
from grader.said import Said, korean, say
from grader.config import PUBLIC_VARIANT, Assignment
from grader.check.task import stating
from grader.errors import CaptureError, ConfigError, MissingValue

CHECK_ATTRIBUTE = "__grader_check__"
ARGUMENTS = ("student", "reference", "run")


class NotJudged(Exception):
    """The check cannot be judged because of a cause shown elsewhere (a value missing, a
    model whose sizes differ from the reference's); shown once, not as a failure of its own."""


class PartialCredit(Exception):
    """Award `fraction` of a check's points, with a message saying what was missing."""

    def __init__(self, fraction: float, message: str):
        super().__init__(message)
        self.fraction = min(max(float(fraction), 0.0), 1.0)
        self.message = message


@dataclass(frozen=True)
class Check:
    """One declared check; it runs once for each variant it names."""

    name: str
    points: float
    func: Callable
    variants: tuple[str, ...] | str
    description: str
    confirm_hidden: bool = False  # public points only when every hidden run passes too
    requires: tuple[str, ...] = ()  # checks that must pass on every run for this one to pay
    description_ko: str = ""  # the description on a Korean page (the English one when empty)

    def runs_on(self, variant: str) -> bool:
        return self.variants == "all" or variant in self.variants


def check(points: float, *, variants: str | tuple[str, ...] = (PUBLIC_VARIANT,), name: str | None = None,
          confirm_hidden: bool | None = None, requires: tuple[str, ...] | list[str] = (), ko: str = ""):
    """Declare a check worth `points` on each variant in `variants` ("all" for every run).

    The docstring's first line describes it; `ko` says the same in Korean, and messages
    raised with `say(en, ko)` (grader.said) are shown in the page's language.

    `confirm_hidden` (default: on for checks that run on every variant, the value
    comparisons) pays the public points only when the check also holds under every hidden
    variant; `requires` names checks that must hold on every run they run on.
    """

    def mark(func: Callable) -> Callable:
        unknown = set(inspect.signature(func).parameters) - set(ARGUMENTS)
        if unknown:
            raise ConfigError(f"check {func.__name__} asks for {', '.join(sorted(unknown))}; "
                              f"checks may take {', '.join(ARGUMENTS)}")
        doc = inspect.getdoc(func) or func.__name__.replace("_", " ")
        variant_set = variants if variants == "all" else tuple(variants)
        confirm = variants == "all" if confirm_hidden is None else confirm_hidden
        setattr(func, CHECK_ATTRIBUTE, Check(name or func.__name__, float(points), func, variant_set,
                                             doc.splitlines()[0], confirm, tuple(requires), ko))
        return func

    return mark


def import_checks(assignment: Assignment) -> ModuleType:
    """Import the assignment's checks.py in the grader's process."""
    spec = importlib.util.spec_from_file_location(f"grader_checks_{assignment.name}", assignment.checks_path)
    module = importlib.util.module_from_spec(spec)
    try:
        with stating(assignment):
            spec.loader.exec_module(module)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"{assignment.checks_path} failed to import: {type(exc).__name__}: {exc}") from exc
    return module


def marked(module: ModuleType, attribute: str) -> list:
    """What the module's decorated functions carry under `attribute`, in definition order."""
    found = [getattr(obj, attribute) for obj in vars(module).values() if hasattr(obj, attribute)]
    return sorted(found, key=lambda item: item.func.__code__.co_firstlineno)


def load_checks(assignment: Assignment, module: ModuleType | None = None) -> list[Check]:
    """The checks declared in checks.py (imported here unless given), in definition order."""
    found = marked(module or import_checks(assignment), CHECK_ATTRIBUTE)
    if not found:
        raise ConfigError(f"{assignment.checks_path} declares no checks (use @check(points=...))")
    variant_names = {v.name for v in assignment.variants}
    names = [c.name for c in found]
    for c in found:
        if c.variants != "all" and not set(c.variants) <= variant_names:
            raise ConfigError(f"check {c.name} names unknown variant(s) {sorted(set(c.variants) - variant_names)}")
        unknown = [r for r in c.requires if r not in names or r == c.name]
        if unknown:
            raise ConfigError(f"check {c.name} requires unknown check(s) {', '.join(unknown)}")
    return found


@dataclass
class CheckResult:
    """The outcome of one check on one variant."""

    name: str
    variant: str
    description: str
    points: float
    max_points: float
    status: str  # "pass", "partial", "fail", "not-judged" or "grader-error"
    message: str = ""  # full detail, for TAs
    feedback: str = ""  # what the student may see
    closeness: list[float] | None = None  # worst |got − expected| and its tolerance, if values were compared
    description_ko: str = ""  # Korean of `description`, "" when the check declares none
    feedback_ko: str = ""  # Korean of `feedback`, "" when its author wrote it only in English
    message_ko: str = ""  # Korean of `message`, "" when its author wrote it only in English

    @property
    def label(self) -> str:
        return self.name if self.variant == PUBLIC_VARIANT else f"{self.name}[{self.variant}]"

    def describe(self, lang: str) -> str:
        return (self.description_ko or self.description) if lang == "ko" else self.description

    def feedback_in(self, lang: str) -> str:
        return (self.feedback_ko or self.feedback) if lang == "ko" else self.feedback

    def message_in(self, lang: str) -> str:
        return (self.message_ko or self.message) if lang == "ko" else self.message

    def tell(self, text: str, *, message: str | None = None) -> None:
        """Set what the student reads and, unless given apart, the TA's message (each in both languages)."""
        message = text if message is None else message
        self.feedback, self.feedback_ko = str(text), korean(text)
        self.message, self.message_ko = str(message), korean(message)


HIDDEN_FAILURE = say("your notebook failed only when re-run with other data (a hidden variant): does it depend on "
                     "the exact numbers of this data?",
                     "다른 데이터로 다시 실행했을 때(숨겨진 데이터)만 결과가 정답과 달랐습니다. 코드가 이 데이터의 "
                     "특정한 숫자에 맞춰져 있지 않은지 확인하세요.")
# Messages about a hidden run's values may carry text its kernel chose (a type name, an
# exception message), so a hidden variant's feedback never quotes them.
HIDDEN_UNREADABLE = say("when your notebook was re-run with other data (a hidden variant), its values could not be "
                        "read back",
                        "다른 데이터로 다시 실행했을 때(숨겨진 데이터) 노트북의 값을 읽어 올 수 없었습니다")
CHECK_CRASHED = say("this check could not be graded automatically; a TA will look at it",
                    "이 항목은 자동으로 채점하지 못했습니다. 조교가 확인합니다")


def run_check(c: Check, variant: str, values: dict) -> CheckResult:
    """Run one check with the arguments it names; never raises."""
    result = CheckResult(c.name, variant, c.description, 0.0, c.points, "fail", description_ko=c.description_ko)
    hidden = variant != PUBLIC_VARIANT
    kwargs = {name: values[name] for name in inspect.signature(c.func).parameters}
    try:
        with recording_closeness() as closeness:
            try:
                c.func(**kwargs)
            finally:
                result.closeness = closeness.worst()
    except NotJudged as why:
        result.status = "not-judged"
        result.tell(said_by(why))
    except PartialCredit as partial:
        result.points, result.status = round(c.points * partial.fraction, 6), "partial"
        result.tell(HIDDEN_FAILURE if hidden else partial.message, message=partial.message)
    except Mismatch as mismatch:
        result.tell(mismatch.summary if hidden else mismatch.message, message=mismatch.message)
    except (MissingValue, CaptureError) as exc:
        result.status = "not-judged"
        result.tell(HIDDEN_UNREADABLE if hidden else said_by(exc), message=said_by(exc))
    except AssertionError as exc:
        said = said_by(exc) or "assertion failed"
        result.tell(HIDDEN_FAILURE if hidden else said, message=said)
    except Exception as exc:  # a bug in the check, or a value it did not expect
        result.status = "grader-error"
        error = f"{type(exc).__name__}: {exc}"
        result.tell(CHECK_CRASHED, message=say(f"the check itself crashed: {error}", f"검사 코드 자체가 실패했습니다: {error}"))
    else:
        result.points, result.status = c.points, "pass"
    return result


def said_by(exc: BaseException) -> str:
    """An exception's message, keeping its Korean when it was raised with `say(en, ko)`."""
    first = exc.args[0] if len(exc.args) == 1 else None
    return first if isinstance(first, Said) else str(exc)


CONFIRM_FAILED = say("this matched only in the public run: when your notebook was re-run with other data (a hidden "
                     "variant) it did not, so the values were not computed from the data (typed in, or tied to "
                     "this data?)",
                     "공개 데이터에서만 정답과 같았습니다. 다른 데이터로 다시 실행했을 때(숨겨진 데이터)는 달랐으므로, "
                     "값이 데이터로부터 계산되지 않았습니다 (직접 입력했거나 이 데이터에만 맞춘 코드인가요?)")


def settle(checks: list[Check], results: list[CheckResult]) -> None:
    """Pay points only for confirmed values: a public result of a `confirm_hidden` check
    keeps its points only when the check passes on every hidden run, and a check whose
    `requires` do not all pass on every run is not judged. Changes `results` in place."""
    by_name = {c.name: c for c in checks}
    for result in results:
        c = by_name[result.name]
        if (result.status == "pass" and c.confirm_hidden and result.variant == PUBLIC_VARIANT
                and any(r.name == c.name and r.variant != PUBLIC_VARIANT and r.status != "pass" for r in results)):
            result.points, result.status = 0.0, "fail"
            result.tell(CONFIRM_FAILED)
    changed = True
    while changed:  # a requirement may itself lose its points to one of its own
        changed = False
        failed = {r.name for r in results if r.status != "pass"}
        for result in results:
            missing = [by_name[r] for r in by_name[result.name].requires if r in failed]
            if missing and result.status != "not-judged":
                why = "; ".join(f"«{m.description}»" for m in missing)
                why_ko = "; ".join(f"«{m.description_ko or m.description}»" for m in missing)
                result.points, result.status, changed = 0.0, "not-judged", True
                result.tell(say(f"not graded: it counts only when {why} holds",
                                f"채점하지 않음: {why_ko} 항목이 맞아야 점수가 인정됩니다"))


def not_graded(why: str) -> Said:
    """"not graded: <why>", in both languages when `why` is."""
    return say(f"not graded: {why}", f"채점하지 않음: {korean(why) or why}")


NOT_GRADED = say("not graded", "채점하지 않음")


def withhold(results: list[CheckResult], why: str) -> None:
    """Take back every point, for one reason that concerns the whole submission."""
    for result in results:
        if result.points > 0 or result.status == "pass":
            result.points, result.status = 0.0, "not-judged"
            result.tell(not_graded(why))
