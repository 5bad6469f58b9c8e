"""Progress while grading and the summary table after it.

On a terminal one line is redrawn (done / total, failures so far, ETA); elsewhere (CI,
a log file) each finished submission is one plain line.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

FAILED = ("error", "timeout", "invalid", "grader-error")
BAR_WIDTH = 24


class Progress:
    def __init__(self, label: str, total: int, stream=None, manual_points: float = 0.0):
        self.label, self.total = label, total
        self.manual_points = manual_points  # TA-graded answers: in the maximum, scored after grading
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.done = self.failed = 0
        self.started = time.monotonic()

    def update(self, report) -> None:
        self.done += 1
        self.failed += report.status in FAILED
        if self.live:
            elapsed = time.monotonic() - self.started
            eta = elapsed / self.done * (self.total - self.done)
            filled = int(BAR_WIDTH * self.done / max(self.total, 1))
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total}, {self.failed} failed, "
                              f"ETA {eta:.0f} s   ")
        else:
            how = "unchanged, reused" if report.cached else f"{report.seconds:.1f} s"
            maximum = report.max_score + (0.0 if report.manual else self.manual_points)
            by_ta = f", {self.manual_points:g} of them for TA-graded answers, not counted yet" if (
                self.manual_points and not report.manual) else ""
            self.stream.write(f"[{self.done}/{self.total}] {report.student}: {report.score:g}/{maximum:g} "
                              f"{report.status} ({how}{by_ta})\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class AssignmentSummary:
    """One row of the table printed after grading."""

    assignment: str
    statuses: dict[str, int] = field(default_factory=dict)
    graded: int = 0
    reused: int = 0
    mean: float = 0.0
    maximum: float = 0.0
    seconds: float = 0.0
    gradebook: str = ""

    @classmethod
    def of(cls, assignment: str, reports, seconds: float, gradebook: str) -> "AssignmentSummary":
        statuses = {}
        for r in reports:
            statuses[r.status] = statuses.get(r.status, 0) + 1
        mean = sum(r.score for r in reports) / len(reports) if reports else 0.0
        return cls(assignment, statuses, len(reports), sum(r.cached for r in reports), mean,
                   max((r.max_score for r in reports), default=0.0), seconds, gradebook)

    def line(self) -> str:
        parts = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items(), key=lambda kv: _order(kv[0])))
        reused = f"; {self.reused} unchanged, reused" if self.reused else ""
        return (f"{self.assignment}: {self.graded} graded ({parts or 'nothing to grade'}{reused}); "
                f"mean {self.mean:.2f}/{self.maximum:g}; gradebook {self.gradebook}")


def _order(status: str) -> int:
    order = ("ok",) + FAILED
    return order.index(status) if status in order else len(order)


def summary_table(rows: list[AssignmentSummary]) -> str:
    header = ["assignment", "graded", "ok", "error", "timeout", "invalid", "grader-error", "mean score", "wall"]
    body = [[r.assignment, str(r.graded), *(str(r.statuses.get(s, 0)) for s in ("ok",) + FAILED),
             f"{r.mean:.2f} / {r.maximum:g}", f"{r.seconds:.1f} s"] for r in rows]
    widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in [header] + body]
    return "\n".join(lines)
