"""Hidden checks for poly_lr: SGD with lr=0.1 on the lecture's cubic regression diverges,
so the loss curve, the weights and the predictions are compared nan/inf-aware.

The reference's loss grows ×11.4 per epoch, overflows float32 to inf at epoch 35 and
turns nan at epoch 73 (epochs count from 1 here; the lecture's `epoc` is 34 and 72);
its final weights and predictions are all nan. Measured (torch 2.13 CPU, seeds 43052
and 8128) for the tolerances:
- equivalent forms (`loss_fn(yhat, y)`, `torch.mean((y-yhat)**2)`, `.sum()/100`,
  `F.mse_loss`, `X @ net.weight.T + net.bias`) keep the first inf epoch; the mean and
  sum forms turn nan one epoch earlier under seed 8128 (inf enters the gradient through
  another product), hence NAN_EPOCH_SLACK;
- their finite losses, and float64's, stay within 1.9e-6 relative of the reference,
  while lr 0.0999 or 0.1001 already differs by 1e-2 within five epochs, hence LOSS_RTOL.
"""


from grader.check import assert_close, assert_state_dict_close, assert_trained, check, Mismatch, ModuleInfo, say, task
from grader.errors import ReferenceRunError, SubmissionError

LR = task("lr")
EPOCHS = task("epochs")
NAN_EPOCH_SLACK = 2
LOSS_RTOL = 1e-4
VALUE_TOLERANCE = {"rtol": 1e-4, "atol": 1e-4, "equal_nan": True}


def reference_divergence(reference) -> tuple[int, int]:
    """The reference's first inf and first nan epochs; a variant where it does not diverge
    cannot grade this assignment, so that is the grader's error, not the student's."""
    trace = reference.trace
    if trace.first_nonfinite_epoch is None or trace.first_nan_epoch is None:
        raise ReferenceRunError("the reference solution's loss does not become inf and nan in this run; "
                                "choose a variant seed where lr=0.1 diverges (2/λmax < 0.1)")
    return trace.first_nonfinite_epoch, trace.first_nan_epoch


def is_float64(student) -> bool:
    try:
        net = student["net"]
    except SubmissionError:  # missing or unreadable: the parameters check says so
        return False
    return isinstance(net, ModuleInfo) and any(p["dtype"] == "float64" for p in net.parameters.values())


# The trace is what the notebook reports about itself: it counts only where the losses it
# produced match the reference's (or the reference re-run from the student's start).
@check(points=1, requires=["loss_curve"], ko="SGD, 학습률 lr=0.1로 1000 에폭 학습했습니다")
def training(student):
    """training ran SGD with lr=0.1 for 1000 epochs"""
    assert_trained(student.trace, optimizer="SGD", lr=LR, steps=EPOCHS,
                   how=f"torch.optim.SGD(net.parameters(), lr={LR})")


@check(points=2, variants="all", ko="손실이 참고 답안과 같은 에폭에서 inf가 되고, 이어서 nan이 됩니다")
def divergence(student, reference):
    """the loss becomes inf, then nan, at the same epochs as the reference solution's"""
    expected_inf, expected_nan = reference_divergence(reference)
    trace = student.trace
    got_inf, got_nan = trace.first_nonfinite_epoch, trace.first_nan_epoch
    if got_inf is None:
        epochs = len(trace.losses)
        raise Mismatch(say(f"your loss stayed finite in all {epochs} epochs; the reference's became "
                           f"inf at epoch {expected_inf} and nan at epoch {expected_nan}",
                           f"손실이 {epochs} 에폭 내내 inf/nan이 되지 않았습니다. 참고 답안의 손실은 "
                           f"{expected_inf}번째 에폭에서 inf, {expected_nan}번째 에폭에서 nan이 되었습니다"),
                       say(f"your loss stayed finite in all {epochs} epochs, but the reference's diverges",
                           f"손실이 {epochs} 에폭 내내 inf/nan이 되지 않았지만, 참고 답안의 손실은 발산합니다"))
    if got_inf != expected_inf:
        later = got_inf > expected_inf and is_float64(student)
        hint = " (a float64 model has a wider range than float32, so its loss overflows later)" if later else ""
        hint_ko = " (float64 모델은 float32보다 표현 범위가 넓어서 손실이 더 늦게 inf가 됩니다)" if later else ""
        raise Mismatch(say(f"your loss first became inf or nan at epoch {got_inf}, the reference's at epoch "
                           f"{expected_inf}{hint}",
                           f"손실이 {got_inf}번째 에폭에서 처음 inf/nan이 되었습니다. 참고 답안은 "
                           f"{expected_inf}번째 에폭입니다{hint_ko}"),
                       say(f"your loss first became inf or nan at epoch {got_inf}, not when the reference's did{hint}",
                           f"손실이 {got_inf}번째 에폭에서 처음 inf/nan이 되었는데, 참고 답안과 다른 때입니다{hint_ko}"))
    if got_nan is None or abs(got_nan - expected_nan) > NAN_EPOCH_SLACK:
        got = f"at epoch {got_nan}" if got_nan else f"in none of the {len(trace.losses)} epochs"
        got_ko = (f"{got_nan}번째 에폭에서 nan이 되었습니다" if got_nan
                  else f"{len(trace.losses)} 에폭 동안 한 번도 nan이 되지 않았습니다")
        raise Mismatch(say(f"your loss became nan {got}, the reference's at epoch {expected_nan} "
                           f"(±{NAN_EPOCH_SLACK} accepted)",
                           f"손실이 {got_ko}. 참고 답안은 {expected_nan}번째 에폭입니다 (±{NAN_EPOCH_SLACK} 허용)"),
                       say(f"your loss became nan {got}, not when the reference's did",
                           f"손실이 {got_ko}. 참고 답안과 다른 때입니다"))


@check(points=2, variants="all", ko="발산하기 전까지의 손실이 참고 답안의 값과 같습니다")
def loss_curve(student, reference):
    """the losses before the divergence match the reference solution's"""
    expected_inf, _ = reference_divergence(reference)
    expected = reference.trace.losses[:expected_inf - 1]
    got = student.trace.losses
    if len(got) < len(expected):
        raise Mismatch(say(f"your training recorded {len(got)} losses; the reference's first {len(expected)} "
                           f"are finite and compared",
                           f"손실이 {len(got)}개만 기록되었습니다. 참고 답안에서 발산하기 전의 손실 {len(expected)}개와 "
                           "비교합니다"),
                       say(f"your training recorded only {len(got)} losses, fewer than are compared",
                           f"학습에서 손실이 {len(got)}개만 기록되어 비교할 개수보다 적습니다"))
    try:
        assert_close(got[:len(expected)], expected, name=say("loss per epoch before the divergence", "발산 전 에폭별 손실"),
                     rtol=LOSS_RTOL, atol=0)
    except Mismatch as mismatch:
        # The default summary counts the compared epochs, which tells the hidden inf epoch.
        raise Mismatch(mismatch.message, say("your losses before the divergence differ from the reference "
                                             "solution's beyond the tolerance",
                                             "발산하기 전의 손실이 참고 답안의 값과 허용 오차 이상으로 다릅니다")) from None


# nan weights and predictions count only where the loss trace shows the divergence that made them.
@check(points=1, variants="all", requires=["divergence", "loss_curve"],
       ko="마지막 가중치(weight)와 편향(bias)이 참고 답안의 값과 같습니다 (참고 답안이 nan인 곳은 nan)")
def parameters(student, reference):
    """the final weight and bias match the reference solution's (nan where they are nan)"""
    net = student["net"]
    if not isinstance(net, ModuleInfo):
        kind = type(net).__name__
        raise AssertionError(say(f"`net` should be the torch.nn.Linear model, but it is {kind}",
                                 f"`net`은 torch.nn.Linear 모델이어야 하는데 {kind}입니다"))
    assert_state_dict_close(net.state_dict, reference["net"].state_dict, name="net", **VALUE_TOLERANCE)


@check(points=1, variants="all", requires=["divergence", "loss_curve"],
       ko="마지막 에폭의 예측값 yhat이 참고 답안의 값과 같습니다 (참고 답안이 nan인 곳은 nan)")
def predictions(student, reference):
    """the predictions yhat of the last epoch match the reference solution's (nan where they are nan)"""
    assert_close(student["yhat"], reference["yhat"], name="yhat", **VALUE_TOLERANCE)
