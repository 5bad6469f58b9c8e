"""Hidden checks for regression_ab. Tolerances come from measurements (see forms.toml and
`grader check-reference`, which prints the margins): equivalent correct forms differ from
the reference by at most 5e-7, the nearest wrong answer (29 or 31 epochs) moves the
parameters by at least 3.8e-3.

Every check compares values with the reference, public and hidden, and the public points
count only when the hidden run agrees too: a fill-in answer earns points by reproducing
the training, not by landing near the truth (typed-in numbers land there as well).
"""

from grader.check import assert_all_close, assert_close, check

PARAMETERS = ("alpha0", "alpha1", "beta0", "beta1")
PARAMETER_ATOL = 1e-4


@check(points=3, variants="all", ko="30 에폭 뒤의 α0, α1, β0, β1이 참고 답안의 값과 같습니다")
def parameters(student, reference):
    """α0, α1, β0, β1 after 30 epochs match the reference"""
    assert_all_close({name: (student[name], reference[name]) for name in PARAMETERS}, atol=PARAMETER_ATOL, rtol=0)


@check(points=1, variants="all", ko="마지막 에폭의 손실이 참고 답안의 값과 같습니다")
def final_loss(student, reference):
    """the loss of the last epoch matches the reference"""
    assert_close(student["loss"], reference["loss"], name="loss", rtol=1e-4, atol=1e-6)


@check(points=1, variants="all", ko="마지막 에폭의 예측값 yhat이 참고 답안의 값과 같습니다")
def predictions(student, reference):
    """the predictions yhat of the last epoch match the reference"""
    assert_close(student["yhat"], reference["yhat"], name="yhat", atol=PARAMETER_ATOL, rtol=0)
