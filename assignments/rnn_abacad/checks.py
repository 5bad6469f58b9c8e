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

from grader.check import assert_all_close, assert_close, assert_trained, check, heatmap, ModuleInfo, NotJudged, task

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
        raise AssertionError(f"`{name}` should be a torch.nn.{kind}, but it is {type(value).__name__}")
    return value


def size_problems(student) -> list[str]:
    """What keeps `rnn` and `cook` from being RNN(4, 2) and Linear(2, 4), read from the weights."""
    rnn, cook = module(student, "rnn", "RNN"), module(student, "cook", "Linear")
    problems = []
    if rnn.type != "RNN" or any(k not in rnn.state_dict for k in RNN_WEIGHTS) or len(rnn.state_dict) != 4:
        return [f"`rnn` is a {rnn.type} with weights {', '.join(rnn.state_dict) or 'none'}, "
                f"not a one-layer torch.nn.RNN with biases"]
    shape = tuple(rnn.state_dict["weight_ih_l0"].shape)
    if shape != (HIDDEN_SIZE, len(CHARACTERS)):
        problems.append(f"`rnn` maps {shape[1]} inputs to {shape[0]} hidden nodes, "
                        f"not {len(CHARACTERS)} inputs to {HIDDEN_SIZE}")
    if cook.type != "Linear" or set(cook.state_dict) != set(COOK_WEIGHTS):
        return problems + [f"`cook` is a {cook.type}, not a torch.nn.Linear with a bias"]
    shape = tuple(cook.state_dict["weight"].shape)
    if shape != (len(CHARACTERS), HIDDEN_SIZE):
        problems.append(f"`cook` maps {shape[1]} hidden nodes to {shape[0]} scores, "
                        f"not {HIDDEN_SIZE} to {len(CHARACTERS)}")
    return problems


def fitting(student) -> tuple[ModuleInfo, ModuleInfo]:
    if size_problems(student):
        raise NotJudged("`rnn` and `cook` are not RNN(4, 2) and Linear(2, 4) (see the sizes check), "
                        "so their results cannot be compared with the reference solution's")
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


@check(points=1)
def runs_without_error(run):
    """the notebook runs to the end without an error"""
    if run.problems:
        raise AssertionError(run.problems[0].describe())


@check(points=1)
def sizes(student):
    """`rnn` is RNN(4, 2) and `cook` is Linear(2, 4) (read from the weights' shapes)"""
    problems = size_problems(student)
    if problems:
        raise AssertionError("; ".join(problems))


@check(points=1, requires=["parameters"])
def training(student):
    """training ran Adam with lr 0.1 for 200 epochs"""
    assert_trained(student.trace, optimizer="Adam", lr=LR, steps=EPOCHS,
                   how="torch.optim.Adam(list(rnn.parameters())+list(cook.parameters()), lr=0.1)")


@check(points=2, variants="all")
def parameters(student, reference):
    """the trained weights of `rnn` and `cook` match the reference solution's"""
    got = weights(student)
    assert_all_close({name: (got[name], expected) for name, expected in weights(reference).items()},
                     atol=PARAMETER_ATOL, rtol=0)


@check(points=2, variants="all", name="probabilities")
def predicted_probabilities(student, reference):
    """the probabilities softmax(cook(rnn(X))) match the reference solution's"""
    assert_close(probabilities(student), probabilities(reference), name="probabilities",
                 atol=PROBABILITY_ATOL, rtol=0)


@check(points=1, variants="all")
def final_loss(student, reference):
    """the loss of the last epoch matches the reference solution's"""
    fitting(student)
    assert_close(student["loss"], reference["loss"], name="loss", rtol=LOSS_RTOL, atol=0)


@heatmap(title="p(next character), first 10 characters", rows=[CHARACTERS[i] for i in TEXT[:10]],
         columns=CHARACTERS, vmin=0, vmax=1)
def first_probabilities(student):
    """Drawn in the feedback like the lecture's matshow of the probabilities."""
    return probabilities(student)[:10]
