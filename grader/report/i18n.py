"""Fixed text of feedback, summary and release, in Korean and English.

Check descriptions and messages come in both languages from checks.py (`ko=`, `say(en, ko)`);
everything else the grader itself says goes through `Text` or `say`. The language comes from
`--lang`, else the course's `course.toml` (`lang = "ko"`), else English.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from grader.errors import ConfigError

LANGUAGES = ("ko", "en")
DEFAULT_LANGUAGE = "en"
COURSE_FILE = "course.toml"

MESSAGES: dict[str, dict[str, str]] = {
    # Student feedback
    "feedback_title": {"en": "{title}: feedback for {student}", "ko": "{title}: {student} 피드백"},
    "score": {"en": "Score: {score} / {max_score}", "ko": "점수: {score} / {max_score}"},
    "status": {"en": "status", "ko": "상태"},
    "status_ok": {"en": "ran to the end", "ko": "끝까지 실행됨"},
    "status_error": {"en": "a cell raised an error", "ko": "셀에서 오류가 남"},
    "status_timeout": {"en": "ran out of time", "ko": "시간 초과"},
    "status_invalid": {"en": "not gradable as a notebook", "ko": "노트북으로 채점할 수 없음"},
    "status_grader-error": {"en": "a TA must review it (the grader had a problem)",
                            "ko": "조교 확인 필요 (채점기 쪽 문제)"},
    "invalid": {"en": "Your file could not be graded: {reason}.", "ko": "제출한 파일을 채점할 수 없습니다: {reason}."},
    "note": {"en": "Note: {note}", "ko": "참고: {note}"},
    "checks": {"en": "Checks", "ko": "채점 항목"},
    "check": {"en": "check", "ko": "항목"},
    "points": {"en": "points", "ko": "점수"},
    "hidden_data": {"en": "(hidden data)", "ko": "(숨겨진 데이터)"},
    "what_to_look_at": {"en": "What to look at", "ko": "확인할 점"},
    "diagnosis": {"en": "What went wrong", "ko": "진단"},
    "diagnosis_intro": {"en": "Your results are exactly what this known mistake gives:",
                        "ko": "제출한 결과가 다음과 같은 흔한 실수를 했을 때의 결과와 정확히 같습니다:"},
    "cause_checks": {"en": "checks that lost points because of it: {checks}",
                     "ko": "이 때문에 점수를 잃은 항목: {checks}"},
    "trace_intro": {"en": "What your training trace shows:", "ko": "학습 기록에서 보이는 원인:"},
    "not_judged": {"en": "Not graded, for one reason: {reason}", "ko": "다음 이유 하나로 채점하지 않은 항목: {reason}"},
    "hidden_explained": {
        "en": "Checks marked *hidden data* ran your notebook again with a different seed, so other data and "
              "other initial weights; their expected values are not shown.",
        "ko": "*숨겨진 데이터* 표시가 있는 항목은 노트북을 다른 시드(다른 데이터, 다른 초기 가중치)로 다시 실행한 "
              "결과입니다. 그 정답 값은 보여 주지 않습니다."},
    "manual": {"en": "Answers graded by a TA", "ko": "조교가 채점하는 답안"},
    "your_answer": {"en": "Your answer to «{question}»:", "ko": "«{question}»에 쓴 답:"},
    "no_answer": {"en": "(no answer written)", "ko": "(작성한 답이 없습니다)"},
    "manual_pending": {"en": "not graded yet: a TA grades this answer by hand",
                       "ko": "아직 채점 전: 조교가 직접 채점합니다"},
    "notebook_feedback": {"en": "Grader feedback", "ko": "채점 피드백"},
    "public_score": {"en": "Score on public checks: {score} / {max_score}",
                     "ko": "공개 항목 점수: {score} / {max_score}"},
    "hidden_after_publishing": {
        "en": "Checks on hidden data, and the total score that includes them, are shown once grades are published.",
        "ko": "숨겨진 데이터로 한 채점과 그 점수를 포함한 총점은 성적이 공개된 뒤에 보입니다."},
    "gradescope_no_notebook": {"en": "Nothing was graded: {reason}.", "ko": "채점하지 못했습니다: {reason}."},
    "gradescope_grader_error": {
        "en": "The autograder could not grade this submission; a TA will look at it. Your score is not final.",
        "ko": "자동 채점기가 이 제출물을 채점하지 못했습니다. 조교가 확인합니다. 현재 점수는 최종 점수가 아닙니다."},
    "problems": {"en": "Problems while running your notebook", "ko": "노트북 실행 중 생긴 문제"},
    "problem_error": {"en": "cell {cell} (`{first_line}`) raised `{ename}: {evalue}`",
                      "ko": "{cell}번째 셀(`{first_line}`)에서 오류가 났습니다: `{ename}: {evalue}`"},
    "problem_timeout": {"en": "cell {cell} (`{first_line}`) did not finish in time and was interrupted",
                        "ko": "{cell}번째 셀(`{first_line}`)이 제한 시간 안에 끝나지 않아 중단되었습니다"},
    "problem_dead-kernel": {"en": "the kernel died while running cell {cell} (`{first_line}`): a crash, "
                                  "os._exit, or running out of memory",
                            "ko": "{cell}번째 셀(`{first_line}`)을 실행하는 중에 커널이 죽었습니다 (충돌, os._exit, "
                                  "메모리 부족)"},
    "frames_hidden": {"en": "[... frames inside torch or other libraries left out ...]",
                      "ko": "[... torch 등 라이브러리 내부 프레임 생략 ...]"},
    "training": {"en": "What your notebook did", "ko": "노트북이 실제로 한 일"},
    "optimizer_lr": {"en": "optimizer `{kind}` with lr {lr} over {parameters} parameter values: {steps} step(s)",
                     "ko": "옵티마이저 `{kind}`, lr {lr}, 파라미터 값 {parameters}개: step {steps}번"},
    "optimizer": {"en": "optimizer `{kind}`: {steps} step(s)", "ko": "옵티마이저 `{kind}`: step {steps}번"},
    "backward_calls": {"en": "`backward()` was called {calls} time(s); that is {epochs} epoch(s) of full-batch training",
                       "ko": "`backward()` 호출 {calls}번, 즉 전체 배치 학습 {epochs} 에폭"},
    "loss_first_last": {"en": "loss: first {first}, last {last}", "ko": "손실: 처음 {first}, 마지막 {last}"},
    "no_training": {"en": "no loss was backpropagated: `backward()` was never called on a scalar loss",
                    "ko": "역전파된 손실이 없습니다: 스칼라 손실에 `backward()`가 호출되지 않았습니다"},
    "first_inf": {"en": "the loss first became inf at epoch {epoch}",
                  "ko": "손실이 {epoch}번째 에폭에서 처음 inf가 되었습니다"},
    "first_nan": {"en": "the loss first became nan at epoch {epoch}",
                  "ko": "손실이 {epoch}번째 에폭에서 처음 nan이 되었습니다"},
    "loss_curve": {"en": "Loss curve", "ko": "손실 곡선"},
    "loss_caption": {"en": "Your loss per epoch (solid) drawn over the reference solution's (dashed).",
                     "ko": "에폭별 내 손실(실선)과 참고 답안의 손실(점선)."},
    "loss_caption_log": {"en": "The vertical axis is logarithmic because the loss spans many orders of magnitude.",
                         "ko": "손실의 크기 차이가 커서 세로축을 로그 눈금으로 그렸습니다."},
    "loss_caption_clipped": {"en": "Losses beyond ±{limit} are drawn at ±{limit}.",
                             "ko": "±{limit}보다 큰 손실은 ±{limit} 높이에 그렸습니다."},
    "loss_caption_log_epochs": {"en": "The epoch axis is logarithmic so that a curve that diverges early stays "
                                      "visible next to one that does not.",
                                "ko": "일찍 발산하는 곡선과 그렇지 않은 곡선이 함께 보이도록 에폭 축을 로그 눈금으로 "
                                      "그렸습니다."},
    "loss_caption_cut": {"en": "The plot ends at epoch {epoch} of {epochs}: after it every loss is inf or nan.",
                         "ko": "그림은 {epochs} 에폭 중 {epoch}번째 에폭까지만 그렸습니다. 그 뒤의 손실은 모두 "
                               "inf나 nan입니다."},
    "reference_diverged": {"en": "The reference's loss also became non-finite, first at epoch {epoch}.",
                           "ko": "참고 답안의 손실도 {epoch}번째 에폭에서 처음 inf/nan이 되었습니다."},
    "plot_epoch": {"en": "epoch", "ko": "에폭"},
    "plot_loss": {"en": "loss", "ko": "손실"},
    "plot_yours": {"en": "your notebook", "ko": "내 노트북"},
    "plot_reference": {"en": "reference", "ko": "참고 답안"},
    "plot_first_inf": {"en": "first inf (epoch {epoch})", "ko": "처음 inf (에폭 {epoch})"},
    "plot_first_nan": {"en": "first nan (epoch {epoch})", "ko": "처음 nan (에폭 {epoch})"},
    "plot_reference_nonfinite": {"en": "reference: first inf/nan (epoch {epoch})",
                                 "ko": "참고 답안: 처음 inf/nan (에폭 {epoch})"},
    "heatmap_caption": {"en": "Values from your notebook's run (public data).",
                        "ko": "내 노트북 실행(공개 데이터)에서 나온 값입니다."},
    # TA summary
    "summary_title": {"en": "{title}: grading summary", "ko": "{title}: 채점 요약"},
    "summary_counts": {"en": "{count} submission file(s); mean {mean:.2f} / {max_score:g}, median {median:g}",
                       "ko": "제출 파일 {count}개; 평균 {mean:.2f} / {max_score:g}, 중앙값 {median:g}"},
    "settings": {"en": "Settings of this run", "ko": "이번 채점 설정"},
    "setting": {"en": "setting", "ko": "설정"},
    "value": {"en": "value", "ko": "값"},
    "setting_graded_at": {"en": "graded at", "ko": "채점 시각"},
    "setting_grader": {"en": "grader version", "ko": "채점기 버전"},
    "setting_torch": {"en": "torch version", "ko": "torch 버전"},
    "setting_device": {"en": "device", "ko": "장치"},
    "setting_sandbox": {"en": "sandbox", "ko": "샌드박스"},
    "setting_workers": {"en": "kernels at once", "ko": "동시 실행 커널"},
    "setting_language": {"en": "feedback language", "ko": "피드백 언어"},
    "setting_reused": {"en": "results reused (unchanged files)", "ko": "재사용한 결과 (바뀌지 않은 파일)"},
    "on": {"en": "on", "ko": "켜짐"},
    "off": {"en": "off", "ko": "꺼짐"},
    "histogram": {"en": "Score histogram", "ko": "점수 분포"},
    "plot_score": {"en": "score", "ko": "점수"},
    "plot_students": {"en": "submissions", "ko": "제출 수"},
    "statuses": {"en": "Statuses", "ko": "상태별 수"},
    "count": {"en": "count", "ko": "수"},
    "pass_rate": {"en": "Pass rate per check", "ko": "항목별 통과율"},
    "passed": {"en": "passed", "ko": "통과"},
    "mean_points": {"en": "mean points", "ko": "평균 점수"},
    "failures": {"en": "Most common failure reasons", "ko": "가장 흔한 실패 원인"},
    "causes": {"en": "Diagnosed causes", "ko": "진단된 원인"},
    "cause": {"en": "cause", "ko": "원인"},
    "undiagnosed": {"en": "Other failures (no known mistake matched), by check",
                    "ko": "그 밖의 실패 (알려진 실수와 맞지 않음), 항목별"},
    "reason": {"en": "reason (numbers but lr, inf and nan replaced by #)",
               "ko": "원인 (lr, inf, nan 외의 숫자는 #로 바꿈)"},
    "suspicious": {"en": "Submissions to review (no points were paid for these values)",
                   "ko": "살펴볼 제출물 (이 값들에는 점수를 주지 않았습니다)"},
    "suspicious_untrained": {"en": "values match although no training ran", "ko": "학습을 하지 않았는데 값이 맞음"},
    "suspicious_public_only": {"en": "values match the public run but not the hidden one",
                               "ko": "공개 데이터에서만 값이 맞고 숨겨진 데이터에서는 틀림"},
    "suspicious_identical": {"en": "identical files from different students", "ko": "여러 학생이 낸 똑같은 파일"},
    "reason_plain": {"en": "reason", "ko": "원인"},
    "students": {"en": "students", "ko": "학생"},
    "no_failures": {"en": "No check failed.", "ko": "실패한 항목이 없습니다."},
    "trouble": {"en": "Timeouts, errors and files that need a TA", "ko": "시간 초과, 오류, 조교 확인이 필요한 파일"},
    "student": {"en": "student", "ko": "학생"},
    "no_trouble": {"en": "Every notebook ran to the end.", "ko": "모든 노트북이 끝까지 실행되었습니다."},
    "manual_waiting": {"en": "{count} free-text answer(s) wait for a TA: see {review} and {grades}.",
                       "ko": "조교 채점을 기다리는 서술형 답안 {count}개: {review}, {grades} 참고."},
    "duplicates": {"en": "Students with more than one file (each file graded; the LMS export keeps the highest score): "
                         "{students}",
                   "ko": "파일이 둘 이상인 학생 (모든 파일 채점, LMS 내보내기에는 최고 점수): {students}"},
    "files": {"en": "Files", "ko": "파일"},
    "files_list": {"en": "Gradebook: {gradebook}; LMS import: {lms}; Gradescope results: {gradescope}; "
                         "per-student feedback: {feedback}",
                   "ko": "성적부: {gradebook}; LMS 가져오기: {lms}; Gradescope 결과: {gradescope}; "
                         "학생별 피드백: {feedback}"},
    "feedback_link": {"en": "feedback of", "ko": "피드백"},
    # Release (the student notebook is bilingual: these are joined Korean first)
    "selfcheck_intro": {
        "en": "**Self-checks (not your grade).** The `grader.check(...)` cells catch easy mistakes early: a "
              "variable that is missing, a wrong shape, training that did not run, a loss that is nan. "
              "Passing them does not mean your answer is right, and they give no points: the grade comes "
              "from other checks, run again on other data after you submit. The cells need otter-grader "
              "(`pip install otter-grader`).",
        "ko": "**자가 점검 (점수가 아닙니다).** `grader.check(...)` 셀은 흔한 실수를 일찍 찾아 줍니다: 정의하지 않은 "
              "변수, 잘못된 모양(shape), 실행되지 않은 학습, nan이 된 손실. 통과해도 답이 맞다는 뜻은 아니며 점수도 "
              "없습니다. 점수는 제출 후 다른 데이터로 다시 실행하는 별도의 채점으로 정해집니다. 이 셀을 실행하려면 "
              "otter-grader가 필요합니다 (`pip install otter-grader`)."},
    "selfcheck_missing": {"en": "not defined yet: {names}; run the cells above first",
                          "ko": "아직 정의되지 않은 변수가 있습니다: {names}. 위의 셀을 먼저 실행하세요"},
    "selfcheck_cell_failed": {"en": "the cell above raised an error ({error}): fix it first, then run this check "
                                    "again",
                              "ko": "위의 셀에서 오류가 났습니다 ({error}). 먼저 그 오류를 고친 뒤 이 점검을 다시 "
                                    "실행하세요"},
    "selfcheck_not_tensor": {"en": "`{name}` should be a tensor, but it is a {type}",
                             "ko": "`{name}` 변수는 텐서여야 하는데 {type}입니다"},
    "selfcheck_shape": {"en": "`{name}` has shape {got}; it should have shape {expected}",
                        "ko": "`{name}`의 shape이 {got}입니다. {expected}이어야 합니다"},
    "selfcheck_nonfinite": {"en": "`{name}` contains nan or inf: did training diverge?",
                            "ko": "`{name}`에 nan 또는 inf가 있습니다. 학습이 발산했나요?"},
    "selfcheck_unwritten": {"en": "the answer cell «{cell}» is still empty or as handed out in {path}, the notebook "
                                  "as last saved: write your answer there, save the notebook (Ctrl+S), then run this "
                                  "check again",
                            "ko": "마지막으로 저장된 노트북({path})에서 «{cell}» 답안 셀이 아직 비어 있거나 처음 그대로입니다. "
                                  "답을 쓰고 노트북을 저장(Ctrl+S)한 뒤 이 점검을 다시 실행하세요"},
    "selfcheck_cell_gone": {"en": "the answer cell «{cell}» is not in {path}, the notebook as last saved (deleted, or "
                                  "replaced by a new cell?): write your answer in the cell handed out, save, then run "
                                  "this check again",
                            "ko": "마지막으로 저장된 노트북({path})에 «{cell}» 답안 셀이 없습니다 (지웠거나 새 셀로 "
                                  "바꾸었나요?). 처음 받은 그 셀에 답을 쓰고 저장한 뒤 이 점검을 다시 실행하세요"},
    "selfcheck_no_notebook": {"en": "this check reads your answers from the saved notebook file, which it cannot find "
                                    "from here (Colab?): check by hand that the cell «{cell}» now holds your answer, "
                                    "and save the notebook (Ctrl+S)",
                              "ko": "이 점검은 저장된 노트북 파일에서 답을 읽는데, 여기서는 그 파일을 찾지 못했습니다 "
                                    "(Colab인가요?). «{cell}» 셀에 답을 썼는지 직접 확인하고 노트북을 저장(Ctrl+S)하세요"},
}


class Text:
    """The fixed strings of one language: `text("score", score=3, max_score=12)`."""

    def __init__(self, lang: str):
        if lang not in LANGUAGES:
            raise ConfigError(f"unknown language {lang!r}; known: {', '.join(LANGUAGES)}")
        self.lang = lang

    def __call__(self, key: str, **values) -> str:
        return MESSAGES[key][self.lang].format(**values)


def both(key: str, sep: str = " / ", **values) -> str:
    """Korean, then English: for the bilingual student notebook."""
    return sep.join(Text(lang)(key, **values) for lang in LANGUAGES)


def course_language(course_dir: Path) -> str:
    """The course's default language from `course.toml`, English when it has none."""
    path = course_dir / COURSE_FILE
    if not path.is_file():
        return DEFAULT_LANGUAGE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    unknown = sorted(set(data) - {"lang"})
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: lang")
    lang = data.get("lang", DEFAULT_LANGUAGE)
    if lang not in LANGUAGES:
        raise ConfigError(f"{path}: lang = {lang!r}; known: {', '.join(LANGUAGES)}")
    return lang
