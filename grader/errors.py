"""The grader's error tree.

Two families, kept apart on purpose: a `SubmissionError` is the student's fault and is
shown in feedback and scored; a `GraderError` is the course staff's or the grader's fault
and marks the submission as not gradable instead of silently scoring it zero.
"""

from grader.said import say


class SubmissionError(Exception):
    """Something about the student's submission that is reported to the student."""


class InvalidSubmission(SubmissionError):
    """The file cannot be graded at all (not a notebook, unreadable, too large)."""


class CaptureError(SubmissionError):
    """The values written back by the student's kernel could not be read."""


class MissingValue(SubmissionError):
    """A value the checks need was never defined by the notebook."""

    def __init__(self, name: str, reason: str = ""):
        self.name = name
        detail = reason or say(f"your notebook never defined `{name}`", f"노트북에서 `{name}` 변수를 정의하지 않았습니다")
        super().__init__(detail)


class GraderError(Exception):
    """A fault on the grading side: bad assignment files, reference failure, check bug."""


class ConfigError(GraderError):
    """An assignment folder is missing a file or declares something invalid."""


class ReferenceRunError(GraderError):
    """The reference solution did not run cleanly, so nothing can be compared against it."""


class UsageError(Exception):
    """A command-line argument the user can fix."""
