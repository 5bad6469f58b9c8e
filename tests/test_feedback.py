"""Student feedback pages: content, hidden values kept out, tracebacks, loss curves, heat maps."""

import json
import math
import re
import types

import numpy as np
import pytest

from grader.check.captured import Captured
from grader.check.checks import CheckResult, marked
from grader.config import load_assignment
from grader.report.document import to_html, to_markdown
from grader.errors import ConfigError
from grader.run.execute import _shorten_traceback
from grader.report.feedback import feedback_page, trim_traceback
from grader.grade import GradeReport
from grader.check.heatmap import HEATMAP_ATTRIBUTE, find_heatmap, heatmap, student_heatmap
from grader.report.i18n import LANGUAGES, MESSAGES, Text, course_language
from grader.report.plots import wants_log_scale

from conftest import ROOT

EN, KO = Text("en"), Text("ko")
TRACEBACK = json.loads((ROOT / "tests" / "files" / "embedding_index_error.traceback.json").read_text())
HIDDEN_EXPECTED = "9.876543"


def assignment():
    return load_assignment(ROOT, "regression_ab")


def diverging_losses(n=100, first_inf=34, first_nan=72):
    """A poly_lr-like curve: grows ×11 per epoch, inf from `first_inf`, nan from `first_nan`."""
    losses = [48.6 * 11.385 ** i for i in range(first_inf - 1)]
    return losses + [math.inf] * (first_nan - first_inf) + [math.nan] * (n - first_nan + 1)


def report(**fields) -> GradeReport:
    checks = [
        CheckResult("parameters", "public", "α0 … match the reference", 0.0, 3.0, "fail",
                    "alpha0: got 1.2, expected 1.471162", "alpha0: got 1.2, expected 1.471162"),
        CheckResult("parameters", "hidden", "α0 … match the reference", 0.0, 3.0, "fail",
                    f"alpha0: got 0.3, expected {HIDDEN_EXPECTED}", "alpha0: 1 of 1 elements differ from the expected"),
        CheckResult("differences_unchanged", "public", "α0−β0 stays at −0.2", 1.0, 1.0, "pass"),
    ]
    losses = diverging_losses()
    training = {"optimizers": [{"class": "SGD", "lr": 0.1, "steps": 100, "parameters": 4, "hyperparameters": {}}],
                "epochs": 100, "backward_calls": 100, "first_nonfinite_epoch": 34, "first_nan_epoch": 72,
                "losses": losses}
    return GradeReport(**({"student": "alice", "file": "alice.ipynb", "status": "ok", "checks": checks,
                           "training": training} | fields))


def render(r: GradeReport, text=EN, reference=(1.0, 0.5)) -> tuple[str, str, dict]:
    title, blocks = feedback_page(r, assignment(), list(reference), text)
    images = {}

    def image_path(image):
        images[image.name] = image.svg
        return f"{r.student}.{image.name}.svg"

    return to_markdown(title, blocks, image_path), to_html(title, blocks, text.lang), images


def test_failed_checks_say_expected_vs_got_but_hidden_ones_never_show_values():
    markdown, page, _ = render(report())
    for text in (markdown, page):
        assert "alpha0: got 1.2, expected 1.471162" in text, "a public failure shows expected vs got"
        assert "1 of 1 elements differ from the expected" in text, "a hidden failure says what differed"
        assert HIDDEN_EXPECTED not in text, "a hidden variant's expected value leaked"
        assert "(hidden data)" in text
    assert "**Score: 1 / 7**" in markdown


def test_loss_curve_is_embedded_in_html_and_linked_from_markdown():
    markdown, page, images = render(report())
    assert set(images) == {"loss"} and images["loss"].startswith("<svg ")
    assert "![Loss curve](alice.loss.svg)" in markdown
    assert len(re.findall(r'<svg xmlns="http://www.w3.org/2000/svg"', page)) == 1, "the page must carry its image"
    assert "the loss first became inf at epoch 34" in markdown and "nan at epoch 72" in markdown
    assert "logarithmic" in markdown


def test_reference_divergence_is_mentioned_and_no_curve_without_training():
    markdown, _, _ = render(report(), reference=[2.0, math.inf, math.nan])
    assert "The reference's loss also became non-finite, first at epoch 2." in markdown
    untrained = report(training={"optimizers": [], "epochs": 0, "backward_calls": 0, "losses": [],
                                 "first_nonfinite_epoch": None, "first_nan_epoch": None})
    markdown, _, images = render(untrained)
    assert images == {} and "`backward()` was never called" in markdown


@pytest.mark.parametrize("curves, log", [
    ((np.array([13.6, 5.0, 0.98]),), False),  # regression_ab converging: ratio 14
    ((np.array(diverging_losses()),), True),  # inf and nan
    ((np.array([48.6, 5e9]),), True),  # finite but exploding
    ((np.array([1.0, 0.5]), np.array([1.0, math.nan])), True),  # the reference diverges
    ((np.array([0.0, math.nan]),), False),  # a zero loss cannot go on a log axis
])
def test_log_scale_only_where_the_loss_diverges(curves, log):
    assert wants_log_scale(*curves) is log


def test_traceback_keeps_the_students_cells_and_the_error_line():
    trimmed = trim_traceback("\n".join(TRACEBACK), EN)
    assert "\x1b[" not in trimmed
    assert "Cell In[2], line 2" in trimmed and "----> 2 yhat = f(x)" in trimmed
    assert "Cell In[1], line 4, in f(x)" in trimmed, "a function the student defined is their code"
    assert "site-packages" not in trimmed and "Traceback (most recent call last)" not in trimmed
    assert trimmed.count("[... frames inside torch or other libraries left out ...]") == 1
    assert trimmed.splitlines()[-1] == "IndexError: index out of range in self"
    assert "torch 등 라이브러리 내부 프레임 생략" in trim_traceback("\n".join(TRACEBACK), KO)


def test_syntax_error_traceback_keeps_the_caret():
    trimmed = trim_traceback("  Cell In[3], line 2\n    yhat = ???\n           ^\nSyntaxError: invalid syntax\n", EN)
    assert trimmed == "  Cell In[3], line 2\n    yhat = ???\n           ^\n\nSyntaxError: invalid syntax"


def test_engine_keeps_the_students_frames_of_a_long_traceback():
    kept = _shorten_traceback(TRACEBACK, 4000)
    assert len(kept) <= 4000
    assert "In[2]" in kept and "In[1]" in kept and kept.endswith(TRACEBACK[-1])


def test_korean_feedback_translates_fixed_text_and_keeps_descriptions():
    problem = {"cell_index": 8, "kind": "error", "ename": "NameError", "evalue": "name 'Y' is not defined",
               "traceback": "NameError: name 'Y' is not defined", "first_line": "for epoc in range(30):",
               "text": "ignored"}
    markdown, page, _ = render(report(status="error", problems=[problem]), KO)
    assert "점수: 1 / 7" in markdown and "셀에서 오류가 남" in markdown
    assert "9번째 셀(`for epoc in range(30):`)에서 오류가 났습니다: `NameError: name 'Y' is not defined`" in markdown
    assert "α0 … match the reference (숨겨진 데이터)" in markdown, "a check that declares no Korean keeps its English"
    assert '<html lang="ko">' in page
    for english in ("Score", "What to look at", "Checks", "feedback for"):
        assert english not in markdown


def test_every_fixed_string_exists_in_every_language():
    missing = [key for key, texts in MESSAGES.items() if set(texts) != set(LANGUAGES)]
    assert missing == []
    for key, texts in MESSAGES.items():
        fields = {lang: sorted(re.findall(r"\{(\w+)", text)) for lang, text in texts.items()}
        assert fields["ko"] == fields["en"], f"{key}: placeholders differ between languages"


def test_course_language_comes_from_course_toml(tmp_path):
    assert course_language(tmp_path) == "en"
    (tmp_path / "course.toml").write_text('lang = "ko"\n')
    assert course_language(tmp_path) == "ko"
    (tmp_path / "course.toml").write_text('lang = "fr"\n')
    with pytest.raises(ConfigError, match="lang = 'fr'"):
        course_language(tmp_path)
    assert course_language(ROOT) == "ko", "this course is taught in Korean"


def test_student_text_is_escaped_in_html():
    problem = {"cell_index": 0, "kind": "error", "ename": "ValueError", "evalue": "<script>alert(1)</script>",
               "traceback": "", "first_line": "x", "text": ""}
    _, page, _ = render(report(problems=[problem], student="<b>mallory</b>"))
    assert "<script>" not in page and "&lt;script&gt;" in page and "<b>mallory" not in page


def test_manual_answers_show_pending_or_the_tas_comment():
    manual = [CheckResult("why", "public", "Why does it diverge?", 0.0, 2.0, "pending", "x", "x"),
              CheckResult("how", "public", "How to fix it?", 2.0, 2.0, "pass", "graded by a TA: clear", "graded by a TA: clear")]
    markdown, _, _ = render(report(manual=manual, answers={"why": "lr is too large", "how": ""}))
    assert "| … | Why does it diverge? | – / 2 | not graded yet: a TA grades this answer by hand |" in markdown
    assert "| ✓ | How to fix it? | 2 / 2 | graded by a TA: clear |" in markdown
    assert "Your answer to «Why does it diverge?»:\n\n```\nlr is too large\n```" in markdown, "the student's own answer"
    assert "Your answer to «How to fix it?»:\n\n(no answer written)" in markdown


# ---------------------------------------------------------------- heat map hook

def probability_capture(matrix) -> Captured:
    array = np.asarray(matrix, dtype=np.float32)
    return Captured(values={"prob": {"kind": "tensor", "array": "a0", "dtype": "float32", "shape": list(array.shape)}},
                    arrays={"a0": array})


def checks_module(*functions) -> types.ModuleType:
    module = types.ModuleType("checks_under_test")
    for func in functions:
        setattr(module, func.__name__, func)
    return module


@heatmap(title="p(next character)", rows="abc", columns="abc", vmin=0, vmax=1)
def predicted(student):
    return student["prob"]


def test_heatmap_hook_gives_the_students_matrix_as_data():
    hook = find_heatmap(checks_module(predicted))
    data = student_heatmap(hook, probability_capture([[0.1, 0.9, 0.0], [0.0, 0.2, 0.8], [0.7, 0.0, 0.3]]))
    assert data["title"] == "p(next character)" and data["rows"] == ["a", "b", "c"]
    assert np.allclose(data["values"][0], [0.1, 0.9, 0.0])
    assert student_heatmap(hook, Captured(values={})) == {}, "a missing value gives no heat map, not a crash"
    assert student_heatmap(hook, probability_capture([1.0, 2.0])) == {}, "a 1-D value is not a heat map"
    assert student_heatmap(hook, probability_capture(np.zeros((0, 3)))) == {}, "nothing to show"
    _, blocks = feedback_page(report(heatmap=data), assignment(), [], EN)
    assert [b.name for b in blocks if hasattr(b, "svg")] == ["loss", "heatmap"]


def test_heatmap_declarations_are_checked():
    with pytest.raises(ConfigError, match="exactly one parameter"):
        heatmap(title="x")(lambda student, reference: None)
    second = heatmap(title="y")(lambda student: None)
    second.__name__ = "second"
    with pytest.raises(ConfigError, match="declares 2 heat maps"):
        find_heatmap(checks_module(predicted, second))
    assert [h.title for h in marked(checks_module(predicted), HEATMAP_ATTRIBUTE)] == ["p(next character)"]


def test_a_diagnosed_cause_comes_first_in_the_pages_language_and_one_cause_is_said_once():
    diagnosis = {"name": "no_zero_grad", "cause": "zero_grad를 부르지 않았습니다", "cause_en": "zero_grad was never called"}
    not_judged = [CheckResult(name, "public", name, 0, 1, "not-judged", "m", "your notebook never defined `loss`")
                  for name in ("final_loss", "predictions")]
    r = report(diagnoses=[diagnosis], checks=not_judged)
    for text, cause in ((KO, "zero_grad를 부르지 않았습니다"), (EN, "zero_grad was never called")):
        html = to_html(*feedback_page(r, assignment(), [], text), text.lang)
        assert html.count(cause) == 1, "one cause, said once"
        assert "your notebook never defined" not in html, "the cause, not its symptoms"
        under = html[html.index(cause):]
        assert "final_loss" in under and "predictions" in under, "the checks it cost are listed under it"


def test_a_cause_read_from_the_trace_comes_before_the_symptoms_each_said_once():
    diagnosis = {"name": "trace", "cause": "첫 손실이 1000배입니다", "cause_en": "your first loss is 1000×"}
    hidden = [CheckResult(name, "hidden", name, 0, 1, "fail", "m", "failed only when re-run with other data")
              for name in ("final_loss", "predictions")]
    html = to_html(*feedback_page(report(diagnoses=[diagnosis], checks=hidden), assignment(), [], EN), "en")
    assert html.index("your first loss is 1000×") < html.index("failed only when re-run")
    assert html.count("failed only when re-run with other data") == 1, "one text, with every check that says it"


def test_a_check_not_graded_for_one_reason_says_not_graded_once():
    from grader.check.checks import not_graded
    from grader.said import say
    skipped = CheckResult("final_loss", "public", "the loss matches", 0, 1, "not-judged", description_ko="손실")
    skipped.tell(not_graded(say("the model differs", "모델이 다릅니다")))
    for text, said in ((EN, "Not graded, for one reason: the model differs: **the loss matches**"),
                       (KO, "다음 이유 하나로 채점하지 않은 항목: 모델이 다릅니다: **손실**")):
        markdown, _, _ = render(report(checks=[skipped]), text)
        assert said in markdown


def test_the_summary_groups_students_by_diagnosed_cause():
    from grader.report.summary import cause_groups, failure_groups

    failed = [CheckResult("parameters", "public", "p", 0, 3, "fail", "alpha0: got 1, expected 2")]
    diagnosed = {"name": "no_zero_grad", "cause": "zero_grad 없음", "cause_en": "no zero_grad"}
    reports = [report(student=s, checks=failed, diagnoses=[diagnosed]) for s in ("ann", "bob")]
    reports.append(report(student="cy", checks=failed))
    assert cause_groups(reports, "en") == [("no zero_grad", ["ann", "bob"])]
    assert [students for _, _, students in failure_groups(reports, EN)] == [["cy"]]


def test_a_curve_that_turns_nan_early_is_not_squeezed_into_the_axis_start():
    from grader.report.plots import drawn_epochs
    diverged = np.asarray(diverging_losses(n=1000, first_inf=35, first_nan=73))
    assert drawn_epochs(diverged, diverged) == math.ceil(73 * 1.15) + 1
    assert drawn_epochs(np.linspace(2, 1, 1000)) is None, "a finite run is drawn whole"
    markdown, _, _ = render(report(training={"losses": list(diverged), "epochs": 1000, "backward_calls": 1000}),
                            reference=list(diverged))
    assert "The plot ends at epoch 85 of 1000" in markdown


def test_a_reference_that_diverges_early_next_to_a_finite_run_gets_a_log_epoch_axis():
    from grader.report.plots import early_end_only_in_one
    diverged, finite = np.asarray(diverging_losses(n=1000, first_inf=35, first_nan=73)), np.linspace(48, 1, 1000)
    assert early_end_only_in_one(finite, diverged) and not early_end_only_in_one(finite, finite)
    assert not early_end_only_in_one(diverged, diverged), "both end early: the axis is cut instead"
    markdown, _, _ = render(report(training={"losses": list(finite), "epochs": 1000, "backward_calls": 1000}),
                            reference=list(diverged))
    assert "The epoch axis is logarithmic" in markdown
