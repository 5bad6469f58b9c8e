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

    def runs_on(self, variant: str) -> bool:
        return self.variants == "all" or variant in self.variants


def check(points: float, *, variants: str | tuple[str, ...] = (PUBLIC_VARIANT,), name: str | None = None,
          confirm_hidden: bool | None = None, requires: tuple[str, ...] | list[str] = ()):
    """Declare a check worth `points` on each variant in `variants` ("all" for every run).

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
                                             doc.splitlines()[0], confirm, tuple(requires)))
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

    @property
    def label(self) -> str:
        return self.name if self.variant == PUBLIC_VARIANT else f"{self.name}[{self.variant}]"


HIDDEN_FAILURE = "under a hidden variant (your notebook re-run with other data) the result did not match"
# Messages about a hidden run's values may carry text its kernel chose (a type name, an
# exception message), so a hidden variant's feedback never quotes them.
HIDDEN_UNREADABLE = "under a hidden variant (your notebook re-run with other data) the values could not be read back"


def run_check(c: Check, variant: str, values: dict) -> CheckResult:
    """Run one check with the arguments it names; never raises."""
    result = CheckResult(c.name, variant, c.description, 0.0, c.points, "fail")
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
        result.message = result.feedback = str(why)
    except PartialCredit as partial:
        result.points, result.status = round(c.points * partial.fraction, 6), "partial"
        result.message = partial.message
        result.feedback = HIDDEN_FAILURE if hidden else partial.message
    except Mismatch as mismatch:
        result.message = mismatch.message
        result.feedback = mismatch.summary if hidden else mismatch.message
    except (MissingValue, CaptureError) as exc:
        result.status = "not-judged"
        result.message = str(exc)
        result.feedback = HIDDEN_UNREADABLE if hidden else result.message
    except AssertionError as exc:
        result.message = str(exc) or "assertion failed"
        result.feedback = HIDDEN_FAILURE if hidden else result.message
    except Exception as exc:  # a bug in the check, or a value it did not expect
        result.status = "grader-error"
        result.message = f"the check itself crashed: {type(exc).__name__}: {exc}"
        result.feedback = "this check could not be graded automatically; a TA will look at it"
    else:
        result.points, result.status = c.points, "pass"
    return result


CONFIRM_FAILED = ("this matched only in the public run: when your notebook was re-run with other data (a hidden "
                  "variant) it did not, so the values were not computed from the data (typed in, or tied to "
                  "this data?)")


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
            result.message = result.feedback = CONFIRM_FAILED
    changed = True
    while changed:  # a requirement may itself lose its points to one of its own
        changed = False
        failed = {r.name for r in results if r.status != "pass"}
        for result in results:
            missing = [by_name[r] for r in by_name[result.name].requires if r in failed]
            if missing and result.status != "not-judged":
                why = "; ".join(f"«{m.description}»" for m in missing)
                result.points, result.status, changed = 0.0, "not-judged", True
                result.message = result.feedback = f"not graded: it counts only when {why} holds"


def withhold(results: list[CheckResult], why: str) -> None:
    """Take back every point, for one reason that concerns the whole submission."""
    for result in results:
        if result.points > 0 or result.status == "pass":
            result.points, result.status = 0.0, "not-judged"
            result.message = result.feedback = f"not graded: {why}"
