"""Submissions a TA should look at although the grade already pays them nothing for it:
values that match without any training, values that match only the public run, and the
same file handed in by several students."""

from __future__ import annotations

from grader.check.checks import CONFIRM_FAILED
from grader.config import PUBLIC_VARIANT
from grader.grade import GradeReport
from grader.report.i18n import Text


def _trained(report: GradeReport) -> bool:
    """A loss was backpropagated (an optimizer's steps or a hand-written update may follow)."""
    return bool(report.training.get("losses"))


def _matched_without_training(report: GradeReport) -> bool:
    """A value check held (before the policy took its points back) although nothing trained."""
    held = [c for c in report.checks if c.status == "pass" or c.message == str(CONFIRM_FAILED)]
    return report.status == "ok" and bool(held) and not _trained(report)


def _matched_only_publicly(report: GradeReport) -> bool:
    return any(c.variant == PUBLIC_VARIANT and c.message == str(CONFIRM_FAILED) for c in report.checks)


def suspicious_groups(reports: list[GradeReport], text: Text) -> list[tuple[str, list[str]]]:
    """(why to review, students), each reason once, students sorted."""
    groups = [(text("suspicious_untrained"), [r.student for r in reports if _matched_without_training(r)]),
              (text("suspicious_public_only"), [r.student for r in reports if _matched_only_publicly(r)])]
    by_content: dict[str, list[str]] = {}
    for report in reports:
        if report.content_hash:
            by_content.setdefault(report.content_hash, []).append(report.student)
    for students in by_content.values():
        if len(set(students)) > 1:
            groups.append((text("suspicious_identical"), students))
    return [(why, sorted(set(students))) for why, students in groups if students]
