"""What a student sees: score, checks, expected vs got, their traceback, their loss curve.

Only what a student may see goes in: a check's `feedback` (never its TA `message`), the
PUBLIC reference run's loss curve (never a hidden variant's), and values from the
student's own public run.
"""

from __future__ import annotations

import re
from decimal import Decimal

import numpy as np

from grader.check.captured import Trace
from grader.check.checks import NOT_GRADED
from grader.config import PUBLIC_VARIANT, Assignment
from grader.report.document import Block, Bullets, Code, Heading, Image, Paragraph, Table
from grader.grade import TRACE_CAUSE, GradeReport
from grader.report.i18n import Text
from grader.said import in_language
from grader.report.plots import (DRAWN_LIMIT, beyond_drawn_limit, drawn_epochs, early_end_only_in_one, heatmap_svg,
                                 loss_curve_svg, wants_log_scale)

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
FRAME = re.compile(r"^(Cell In\[\d+\]|Cell [\d?]+, line|Input In \[\d+\]|<ipython-input-|File )")
STUDENT_FRAME = re.compile(r"^(Cell In\[\d+\]|Cell [\d?]+, line|Input In \[\d+\]|<ipython-input-)")
TRACEBACK_HEADER = re.compile(r"^-{20,}$|Traceback \(most recent call last\)")
MARKS = {"pass": "✓", "partial": "◐", "pending": "…", "not-judged": "–"}


def points(x: float) -> str:
    return f"{x:g}"


def number_text(x: int | float) -> str:
    """A number as `{:g}` writes it, also for an int too large for a float (lr=10**400)."""
    try:
        return f"{float(x):g}"
    except OverflowError:
        return f"{Decimal(x):.6e}"


def trim_traceback(traceback: str, text: Text) -> str:
    """The student's frames (`Cell In[...]`) and the final error line, colour codes removed.

    Each run of frames inside libraries is replaced by one line saying so (not how many:
    the engine may already have dropped some from the middle of a long traceback).
    """
    lines = [line.rstrip() for line in ANSI.sub("", traceback).splitlines()]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        return ""
    *body, last = lines
    out: list[str] = []
    skipped = False  # library frames seen since the last line kept
    frame: list[str] | None = None

    def close_frame() -> None:
        nonlocal skipped
        if frame is None:
            return
        if STUDENT_FRAME.match(frame[0].lstrip()):
            if skipped:
                out.append(text("frames_hidden"))
                skipped = False
            out.extend(frame + [""])
        else:
            skipped = True

    for line in body:
        if FRAME.match(line.lstrip()):
            close_frame()
            frame = [line]
        elif frame is not None and line.strip():
            frame.append(line)
        else:
            close_frame()
            frame = None
            if line.strip() and not TRACEBACK_HEADER.search(line):
                out.append(line)
    close_frame()
    if skipped:
        out.append(text("frames_hidden"))
    return "\n".join(out + [last])


def problem_text(problem: dict, text: Text) -> str:
    fields = {"cell": problem["cell_index"] + 1, "first_line": problem["first_line"],
              "ename": problem["ename"], "evalue": problem["evalue"]}
    return text(f"problem_{problem['kind']}", **fields)


def _training_items(report: GradeReport, text: Text) -> list[str]:
    """What the notebook's training actually did, as the grader saw it run."""
    training = report.training
    items = [f"`{name}`: " + " → ".join(f"`{layer}`" for layer in layers) for name, layers in report.modules.items()]
    for o in training.get("optimizers", []):
        if isinstance(o.get("lr"), (int, float)):
            items.append(text("optimizer_lr", kind=o["class"], lr=number_text(o["lr"]), parameters=o["parameters"],
                              steps=o["steps"]))
        else:
            items.append(text("optimizer", kind=o["class"], steps=o["steps"]))
    if training:
        items.append(text("backward_calls", calls=training["backward_calls"], epochs=training["epochs"]))
    losses = training.get("losses", [])
    if losses:
        items.append(text("loss_first_last", first=f"{losses[0]:.6g}", last=f"{losses[-1]:.6g}"))
    elif training:
        items.append(text("no_training"))
    first_bad, first_nan = training.get("first_nonfinite_epoch"), training.get("first_nan_epoch")
    if first_bad and first_bad != first_nan:
        items.append(text("first_inf", epoch=first_bad))
    if first_nan:
        items.append(text("first_nan", epoch=first_nan))
    return items


def _loss_curve(report: GradeReport, reference_losses: list[float], text: Text) -> list[Block]:
    losses = report.training.get("losses", [])
    if not losses:
        return []
    student, reference = np.asarray(losses, dtype=float), np.asarray(reference_losses, dtype=float)
    caption = [text("loss_caption")]
    if wants_log_scale(student, reference):
        caption.append(text("loss_caption_log"))
    if early_end_only_in_one(student, reference):
        caption.append(text("loss_caption_log_epochs"))
    if beyond_drawn_limit(student, reference):
        caption.append(text("loss_caption_clipped", limit=f"{DRAWN_LIMIT:g}"))
    reference_bad = Trace(reference, 0, []).first_nonfinite_epoch
    if reference_bad:
        caption.append(text("reference_diverged", epoch=reference_bad))
    end = drawn_epochs(student, reference)
    if end:
        caption.append(text("loss_caption_cut", epoch=end, epochs=max(student.size, reference.size)))
    return [Heading(text("loss_curve"), 3),
            Image(loss_curve_svg(losses, reference_losses, text), text("loss_curve"), "loss"),
            Paragraph(" ".join(caption))]


def _heatmap(report: GradeReport, text: Text) -> list[Block]:
    heatmap = report.heatmap
    if not heatmap:
        return []
    said = {key: (heatmap.get(f"{key}_ko") if text.lang == "ko" else "") or heatmap.get(key, "")
            for key in ("title", "row_title", "column_title", "caption")}
    svg = heatmap_svg(heatmap["values"], heatmap["rows"], heatmap["columns"], heatmap["vmin"], heatmap["vmax"],
                      said["row_title"], said["column_title"])
    caption = " ".join(filter(None, [said["caption"], text("heatmap_caption")]))
    return [Heading(said["title"]), Image(svg, said["title"], "heatmap"), Paragraph(caption)]


def cause_text(diagnosis: dict, lang: str) -> str:
    """A diagnosed mistake's cause in the page's language (the other one if it has none)."""
    if lang == "ko":
        return diagnosis.get("cause") or diagnosis.get("cause_en", "")
    return diagnosis.get("cause_en") or diagnosis.get("cause", "")


def _check_label(c, text: Text) -> str:
    return c.describe(text.lang) + (f" {text('hidden_data')}" if c.variant != PUBLIC_VARIANT else "")


def score_blocks(report: GradeReport, text: Text) -> list[Block]:
    """Score, status, why an invalid file was not graded, and notes."""
    score = text("score", score=points(report.score), max_score=points(report.max_score))
    blocks: list[Block] = [Paragraph(f"**{score}** · {text('status')}: {text('status_' + report.status)}", "score")]
    if report.status == "invalid":
        blocks.append(Paragraph(text("invalid", reason=report.reason_in(text.lang))))
    if report.notes:
        blocks.append(Bullets([text("note", note=note) for note in report.notes_in(text.lang)]))
    return blocks


def problem_blocks(problem: dict, text: Text) -> list[Block]:
    """One cell's error or timeout, with the student's own traceback."""
    blocks: list[Block] = [Paragraph(problem_text(problem, text))]
    if problem.get("traceback"):
        blocks.append(Code(trim_traceback(problem["traceback"], text)))
    return blocks


def check_blocks(report: GradeReport, text: Text) -> list[Block]:
    """Points per check, then what to look at for each check not passed."""
    if not report.checks:
        return []
    blocks: list[Block] = [Heading(text("checks")),
                           Table(["", text("check"), text("points")],
                                 [[MARKS.get(c.status, "✗"), _check_label(c, text),
                                   f"{points(c.points)} / {points(c.max_points)}"] for c in report.checks],
                                 [c.status for c in report.checks])]
    lost = [c for c in report.checks if c.status != "pass"]
    known = [d for d in report.diagnoses if d["name"] != TRACE_CAUSE]
    if known:  # a known mistake explains every point lost: the checks go under it, not their symptoms
        labels = ", ".join(f"«{described}»" for described in dict.fromkeys(c.describe(text.lang) for c in lost))
        blocks += [Heading(text("diagnosis")), Paragraph(text("diagnosis_intro")),
                   Bullets([cause_text(d, text.lang) + (f" ({text('cause_checks', checks=labels)})" if lost else "")
                            for d in known])]
        return blocks + _hidden_explained(report, text)
    if report.diagnoses:
        blocks += [Heading(text("diagnosis")), Paragraph(text("trace_intro")),
                   Bullets([cause_text(d, text.lang) for d in report.diagnoses])]
    if lost:
        blocks += [Heading(text("what_to_look_at")), Bullets(_symptoms(lost, text))]
    return blocks + _hidden_explained(report, text)


def _symptoms(lost: list, text: Text) -> list[str]:
    """What each check not passed says, each text once with every check that says it."""
    by_text: dict[tuple[bool, str], list[str]] = {}
    for c in lost:
        by_text.setdefault((c.status == "not-judged", c.feedback_in(text.lang)), []).append(_check_label(c, text))
    items = []
    already_said = in_language(NOT_GRADED, text.lang) + ": "  # the item says it: "not graded: not graded: ..."
    for (not_judged, said), labels in by_text.items():
        names = ", ".join(f"**{label}**" for label in labels)
        items.append(f"{text('not_judged', reason=said.removeprefix(already_said))}: {names}" if not_judged
                     else f"{names}: {said}")
    return items


def _hidden_explained(report: GradeReport, text: Text) -> list[Block]:
    if any(c.variant != PUBLIC_VARIANT for c in report.checks):
        return [Paragraph(text("hidden_explained"))]
    return []


def manual_blocks(results: list, text: Text, answers: dict[str, str | None] | None = None) -> list[Block]:
    """Answers graded by a TA: points and the TA's comment, or that grading is pending, each
    followed by the student's own answer (what the TA will read)."""
    if not results:
        return []
    rows = [[MARKS.get(c.status, "✗"), c.describe(text.lang),
             f"– / {points(c.max_points)}" if c.status == "pending" else f"{points(c.points)} / {points(c.max_points)}",
             text("manual_pending") if c.status == "pending" else c.feedback_in(text.lang)] for c in results]
    blocks: list[Block] = [Heading(text("manual")),
                           Table(["", text("check"), text("points"), ""], rows, [c.status for c in results])]
    for c in results:
        if answers and c.name in answers:
            answer = answers[c.name]
            blocks += [Paragraph(text("your_answer", question=c.describe(text.lang))),
                       Code(answer) if answer and answer.strip() else Paragraph(text("no_answer"))]
    return blocks


def feedback_page(report: GradeReport, assignment: Assignment, reference_losses: list[float],
                  text: Text) -> tuple[str, list[Block]]:
    """The title and blocks of one student's feedback page."""
    title = text("feedback_title", title=assignment.title_in(text.lang), student=report.student)
    blocks = score_blocks(report, text)
    if report.problems:
        blocks.append(Heading(text("problems")))
        for problem in report.problems:
            blocks += problem_blocks(problem, text)
    blocks += check_blocks(report, text)
    training = _training_items(report, text)
    if training:
        blocks += [Heading(text("training")), Bullets(training)]
        blocks += _loss_curve(report, reference_losses, text)
    blocks += _heatmap(report, text)
    blocks += manual_blocks(report.manual, text, report.answers)
    return title, blocks
