"""Causes read from the training trace where no known mistake matched: what to change,
said once, instead of the symptom every value check shows.

The student's trace is compared with the reference's run from the same starting weights
(the replay), so the first loss differs only where the loss itself is computed otherwise.
"""

from __future__ import annotations

import math

from grader.check.captured import Trace
from grader.said import Said, say

# A first loss this many times the reference's, from the same start, is a sum of squares
# (the reference takes the mean: the ratio is the number of samples, 100 or 1000 here).
SUM_RATIO = 10.0


def trace_causes(student: Trace, reference: Trace) -> list[Said]:
    """What the trace says went wrong, each at most once; empty where it looks like the reference's."""
    causes = []
    if student.losses.size and reference.losses.size:
        first, expected = float(student.losses[0]), float(reference.losses[0])
        if math.isfinite(first) and expected > 0 and first / expected >= SUM_RATIO:
            ratio = f"{first / expected:.4g}"
            causes.append(say(f"your first loss is {ratio}× the reference's from the same starting weights: did "
                              "you use sum instead of mean?",
                              f"같은 초기 가중치에서 시작했는데 첫 손실이 참고 답안의 {ratio}배입니다. 손실을 평균(mean) "
                              "대신 합(sum)으로 계산하지 않았나요?"))
    stepped, expected_runs = student.stepped(), reference.stepped()
    if not stepped and student.backward_calls:
        causes.append(say(f"backward() ran {student.backward_calls} times but no optimizer ever took a step: does "
                          "the loop call step()?",
                          f"backward()는 {student.backward_calls}번 호출되었지만 옵티마이저가 한 번도 step하지 "
                          "않았습니다. 학습 루프에서 step()을 호출했나요?"))
    if len(stepped) != 1 or len(expected_runs) != 1:
        return causes
    ran, expected_run = stepped[0], expected_runs[0]
    if ran.steps != expected_run.steps:
        causes.append(say(f"{ran.steps} steps, the task trains for {expected_run.steps}",
                          f"옵티마이저가 step을 {ran.steps}번 했습니다. 과제는 {expected_run.steps}번입니다"))
    if isinstance(ran.lr, (int, float)) and isinstance(expected_run.lr, (int, float)) and not math.isclose(
            ran.lr, expected_run.lr):
        causes.append(say(f"the optimizer stepped with lr {ran.lr:g}; the task uses lr {expected_run.lr:g}",
                          f"학습률이 {ran.lr:g}입니다. 과제의 학습률은 {expected_run.lr:g}입니다"))
    return causes
