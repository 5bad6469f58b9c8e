"""Hidden checks for rnn_abacad. The data is fixed, so the checks rebuild the hidden states
and the probabilities from the captured weights (in float64, on the CPU) instead of
trusting notebook values, and read the sizes from the weights' shapes.

Tolerances come from measurements (torch 2.13 CPU, 200 epochs of Adam(lr=0.1); seed 4
public, 2718 hidden; `grader check-reference rnn_abacad` prints the margins):
- a float64 model differs from the float32 reference by at most 4.3e-5 in the weights,
  1.6e-5 in the probabilities and 1.3e-5 relative in the loss (seed 4; 1.9e-5, 1.0e-7,
  8.5e-6 at seed 2718; 5.2e-6, 7.2e-7, 3.0e-7 when `cook` is built first);
- one epoch more or less moves them by at least 5.8e-3, 6.8e-5 and 1.6e-4, lr 0.01 by
  1.6 in the weights.
So weights are compared at atol 1e-3, probabilities at 1e-4 and the loss at rtol 1e-4.
The lecture's GPU run differs from its CPU run by 8e-5 in a probability: a submission is
compared with the reference run on the device its tensors ran on.
"""

import torch

from grader.check import (assert_all_close, assert_close, assert_trained, check, heatmap, joined, ModuleInfo, NotJudged,
                          say, task)

CHARACTERS = ["A", "b", "c", "d"]
TEXT = [CHARACTERS.index(c) for c in "AbAcAd" * 50]
INPUTS = torch.nn.functional.one_hot(torch.tensor(TEXT[:-1]), len(CHARACTERS)).double()
TARGETS = torch.tensor(TEXT[1:])
EPOCHS = task("epochs")
LR = task("lr")
HIDDEN_SIZE = task("hidden_size")
PARAMETER_ATOL = 1e-3
PROBABILITY_ATOL = 1e-4
LOSS_RTOL = 1e-4

RNN_WEIGHTS = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
COOK_WEIGHTS = ("weight", "bias")


def module(student, name: str, kind: str) -> ModuleInfo:
    value = student[name]
    if not isinstance(value, ModuleInfo):
        got = type(value).__name__
        raise AssertionError(say(f"`{name}` should be a torch.nn.{kind}, but it is {got}",
                                 f"`{name}`은 torch.nn.{kind} 모듈이어야 하는데 {got}입니다"))
    return value


def size_problems(student) -> list[str]:
    """What keeps `rnn` and `cook` from being RNN(4, 2) and Linear(2, 4), read from the weights."""
    rnn, cook = module(student, "rnn", "RNN"), module(student, "cook", "Linear")
    problems = []
    if rnn.type != "RNN" or any(k not in rnn.state_dict for k in RNN_WEIGHTS) or len(rnn.state_dict) != 4:
        names = ", ".join(rnn.state_dict)
        return [say(f"`rnn` is a {rnn.type} with weights {names or 'none'}, not a one-layer torch.nn.RNN with biases",
                    f"`rnn`이 편향(bias)이 있는 한 층짜리 torch.nn.RNN이 아닙니다 "
                    f"(종류: {rnn.type}, 가중치: {names or '없음'})")]
    shape = tuple(rnn.state_dict["weight_ih_l0"].shape)
    if shape != (HIDDEN_SIZE, len(CHARACTERS)):
        problems.append(say(f"`rnn` maps {shape[1]} inputs to {shape[0]} hidden nodes, "
                            f"not {len(CHARACTERS)} inputs to {HIDDEN_SIZE}",
                            f"`rnn`은 입력 {shape[1]}개를 은닉 노드 {shape[0]}개로 보냅니다. "
                            f"과제는 입력 {len(CHARACTERS)}개, 은닉 노드 {HIDDEN_SIZE}개입니다"))
    if cook.type != "Linear" or set(cook.state_dict) != set(COOK_WEIGHTS):
        return problems + [say(f"`cook` is a {cook.type}, not a torch.nn.Linear with a bias",
                               f"`cook`이 편향(bias)이 있는 torch.nn.Linear가 아닙니다 (종류: {cook.type})")]
    shape = tuple(cook.state_dict["weight"].shape)
    if shape != (len(CHARACTERS), HIDDEN_SIZE):
        problems.append(say(f"`cook` maps {shape[1]} hidden nodes to {shape[0]} scores, "
                            f"not {HIDDEN_SIZE} to {len(CHARACTERS)}",
                            f"`cook`은 은닉 노드 {shape[1]}개를 점수 {shape[0]}개로 보냅니다. "
                            f"과제는 은닉 노드 {HIDDEN_SIZE}개, 점수 {len(CHARACTERS)}개입니다"))
    return problems


def fitting(student) -> tuple[ModuleInfo, ModuleInfo]:
    if size_problems(student):
        raise NotJudged(say("`rnn` and `cook` are not RNN(4, 2) and Linear(2, 4) (see the sizes check), "
                            "so their results cannot be compared with the reference solution's",
                            "`rnn`과 `cook`이 RNN(4, 2)와 Linear(2, 4)가 아니어서 결과를 참고 답안과 비교할 수 "
                            "없습니다 (크기 항목 참고)"))
    return student["rnn"], student["cook"]


def weights(student) -> dict[str, torch.Tensor]:
    rnn, cook = fitting(student)
    return {**{f"rnn.{k}": rnn.state_dict[k] for k in RNN_WEIGHTS},
            **{f"cook.{k}": cook.state_dict[k] for k in COOK_WEIGHTS}}


def probabilities(student) -> torch.Tensor:
    """softmax(cook(rnn(X))) for every character, starting from a zero hidden state, in float64."""
    w = {k: v.double().cpu() for k, v in weights(student).items()}
    state, rows = torch.zeros(HIDDEN_SIZE, dtype=torch.float64), []
    pre_input = INPUTS @ w["rnn.weight_ih_l0"].T + w["rnn.bias_ih_l0"] + w["rnn.bias_hh_l0"]
    for row in pre_input:
        state = torch.tanh(row + w["rnn.weight_hh_l0"] @ state)
        rows.append(state)
    scores = torch.stack(rows) @ w["cook.weight"].T + w["cook.bias"]
    return torch.softmax(scores, dim=1)


@check(points=1, ko="노트북이 오류 없이 끝까지 실행됩니다")
def runs_without_error(run):
    """the notebook runs to the end without an error"""
    if run.problems:
        raise AssertionError(run.problems[0].describe())


@check(points=1, ko="`rnn`은 RNN(4, 2), `cook`은 Linear(2, 4)입니다 (가중치의 shape으로 확인)")
def sizes(student):
    """`rnn` is RNN(4, 2) and `cook` is Linear(2, 4) (read from the weights' shapes)"""
    problems = size_problems(student)
    if problems:
        raise AssertionError(joined(problems))


@check(points=1, requires=["parameters"], ko="Adam, 학습률 lr=0.1로 200 에폭 학습했습니다")
def training(student):
    """training ran Adam with lr 0.1 for 200 epochs"""
    assert_trained(student.trace, optimizer="Adam", lr=LR, steps=EPOCHS,
                   how="torch.optim.Adam(list(rnn.parameters())+list(cook.parameters()), lr=0.1)")


@check(points=2, variants="all", ko="학습된 `rnn`과 `cook`의 가중치가 참고 답안의 값과 같습니다")
def parameters(student, reference):
    """the trained weights of `rnn` and `cook` match the reference solution's"""
    got = weights(student)
    assert_all_close({name: (got[name], expected) for name, expected in weights(reference).items()},
                     atol=PARAMETER_ATOL, rtol=0)


@check(points=2, variants="all", name="probabilities", ko="확률 softmax(cook(rnn(X)))가 참고 답안의 값과 같습니다")
def predicted_probabilities(student, reference):
    """the probabilities softmax(cook(rnn(X))) match the reference solution's"""
    assert_close(probabilities(student), probabilities(reference), name=say("probabilities", "확률"),
                 atol=PROBABILITY_ATOL, rtol=0)


@check(points=1, variants="all", ko="마지막 에폭의 손실이 참고 답안의 값과 같습니다")
def final_loss(student, reference):
    """the loss of the last epoch matches the reference solution's"""
    fitting(student)
    assert_close(student["loss"], reference["loss"], name="loss", rtol=LOSS_RTOL, atol=0)


@heatmap(title=say("p(next character), first 10 characters", "다음 문자의 확률 (처음 10글자)"),
         rows=[CHARACTERS[i] for i in TEXT[:10]], columns=CHARACTERS, vmin=0, vmax=1,
         row_title=say("current character", "현재 문자"), column_title=say("next character", "다음 문자"))
def first_probabilities(student):
    """Drawn in the feedback like the lecture's matshow of the probabilities."""
    return probabilities(student)[:10]
