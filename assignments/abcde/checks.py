"""Hidden checks for abcde. The data is fixed, so the checks rebuild what the network
predicts for each of a–e from the captured weights instead of trusting notebook values,
and read the layer sizes from the weights' shapes, not from attributes a notebook can set.

Thresholds and tolerances come from measurements (torch 2.13 CPU, 5000 epochs of Adam):
- clean success: over 20 seeds, 2 hidden nodes reach min p(true) .723–.891 with 4 sign
  codes, 3 nodes .976–.988 with 5 codes; so p(true) ≥ 0.95 plus 5 codes separates them.
- reference comparison (seeds 43052 and 31415): a float64 model differs by at most
  2.3e-5 in the weights, 2.8e-7 in the probabilities and 2.3e-5 relative in the loss;
  one epoch more or less moves them by 4.0e-4, 7.1e-6 and 5.8e-4.
"""

import torch

from grader.check import (assert_all_close, assert_close, assert_trained, check, heatmap, joined, Mismatch, ModuleInfo,
                          NotJudged, say, task)

CHARACTERS = "abcde"
INPUTS = torch.arange(len(CHARACTERS))
TARGETS = (INPUTS + 1) % len(CHARACTERS)  # the next character: a→b, …, e→a
LAYER_TYPES = ["Embedding", "Tanh", "Linear"]
HIDDEN_NODES = task("hidden_nodes")
EPOCHS = task("epochs")
ADAM_DEFAULT_LR = task("lr")
MIN_TRUE_PROBABILITY = 0.95
PARAMETER_ATOL = 1e-4
PROBABILITY_ATOL = 2e-6
LOSS_RTOL = 1e-4

# Errors students hit with wrong sizes, recognised by exception name and message.
KNOWN_ERRORS = (
    ("IndexError", "index out of range in self",
     say("The Embedding has fewer rows than there are characters: x holds the codes 0–4 (a–e), "
         "so num_embeddings must cover all 5 characters (with 4 there is no row for 'e').",
         "Embedding의 행 수가 문자 수보다 적습니다. x에는 0–4(a–e)의 번호가 들어 있으므로 num_embeddings는 "
         "문자 5개를 모두 담아야 합니다 (4로 하면 'e'에 해당하는 행이 없습니다).")),
    ("IndexError", "out of bounds",
     say("CrossEntropyLoss needs one output per class: the targets y are 0–4, so the Linear "
         "layer needs out_features=5 (with 4 there is no score for 'e').",
         "CrossEntropyLoss는 클래스마다 출력이 하나씩 필요합니다. 정답 y가 0–4이므로 Linear 층은 "
         "out_features=5여야 합니다 (4로 하면 'e'의 점수가 없습니다).")),
    ("RuntimeError", "shapes cannot be multiplied",
     say("The Linear layer's in_features must equal the Embedding's embedding_dim "
         "(Tanh keeps the number of hidden nodes).",
         "Linear 층의 in_features는 Embedding의 embedding_dim과 같아야 합니다 "
         "(Tanh는 은닉 노드 수를 바꾸지 않습니다).")),
)


def network(student) -> ModuleInfo:
    net = student["net"]
    if not isinstance(net, ModuleInfo):
        kind = type(net).__name__
        raise AssertionError(say(f"`net` should be a torch.nn.Module, but it is {kind}",
                                 f"`net`은 torch.nn.Module이어야 하는데 {kind}입니다"))
    return net


def leaf_layers(net: ModuleInfo) -> list[dict]:
    return [layer for layer in net.layers if layer["children"] == 0]


def sizes(net: ModuleInfo) -> dict[str, int | None]:
    """The layer sizes as the weights' shapes give them: Embedding weight [num_embeddings,
    embedding_dim], Linear weight [out_features, in_features]."""
    e, _, w = (net.state_dict.get(f"{layer['name']}.weight", torch.empty(0)).shape for layer in leaf_layers(net))
    return {"num_embeddings": e[0] if len(e) == 2 else None, "embedding_dim": e[1] if len(e) == 2 else None,
            "out_features": w[0] if len(w) == 2 else None, "in_features": w[1] if len(w) == 2 else None}


def architecture_problems(net: ModuleInfo) -> list[str]:
    """What keeps `net` from being Embedding(5, k) → Tanh → Linear(k, 5)."""
    types = [layer["type"] for layer in leaf_layers(net)]
    if types != LAYER_TYPES:
        got, wanted = ' → '.join(types), ' → '.join(LAYER_TYPES)
        problems = [say(f"the layers are {got or 'none'}, not {wanted}",
                        f"층이 {wanted}가 아니라 {got or '없음'}입니다")]
        if "Tanh" not in types:
            problems.append(say("without a Tanh the hidden values are not squashed into (−1, 1), "
                                "so they form no sign codes",
                                "Tanh가 없으면 은닉값이 (−1, 1)로 눌리지 않아서 부호 패턴이 생기지 않습니다"))
        return problems
    size = sizes(net)
    problems = []
    if size["num_embeddings"] != len(CHARACTERS):
        problems.append(say(f"num_embeddings is {size['num_embeddings']}, but there are "
                            f"{len(CHARACTERS)} characters to embed",
                            f"num_embeddings가 {size['num_embeddings']}인데, 임베딩할 문자는 "
                            f"{len(CHARACTERS)}개입니다"))
    if size["in_features"] != size["embedding_dim"]:
        problems.append(say(f"the Linear layer takes in_features={size['in_features']}, but the "
                            f"Embedding gives embedding_dim={size['embedding_dim']} hidden values",
                            f"Linear 층은 in_features={size['in_features']}인데, Embedding은 "
                            f"embedding_dim={size['embedding_dim']}개의 은닉값을 냅니다"))
    if size["out_features"] != len(CHARACTERS):
        problems.append(say(f"out_features is {size['out_features']}, but the network must score "
                            f"all {len(CHARACTERS)} characters",
                            f"out_features가 {size['out_features']}인데, 신경망은 문자 {len(CHARACTERS)}개 "
                            "모두에 점수를 내야 합니다"))
    return problems


def fitting_network(student) -> ModuleInfo:
    """`net`, if its layers fit the task; otherwise the check is not judged, pointing at why."""
    net = network(student)
    if architecture_problems(net):
        raise NotJudged(say("the network is not Embedding(5, k) → Tanh → Linear(k, 5) "
                            "(see the layers check), so it cannot be evaluated",
                            "신경망이 Embedding(5, k) → Tanh → Linear(k, 5)가 아니어서 평가할 수 없습니다 "
                            "(층 구성 항목 참고)"))
    return net


def weights(net: ModuleInfo) -> dict[str, torch.Tensor]:
    """The trained tensors by role, whatever the layers are named."""
    embedding, _, linear = (layer["name"] for layer in leaf_layers(net))
    return {"Embedding weight": net.state_dict[f"{embedding}.weight"],
            "Linear weight": net.state_dict[f"{linear}.weight"],
            "Linear bias": net.state_dict[f"{linear}.bias"]}


def hidden_and_probabilities(net: ModuleInfo) -> tuple[torch.Tensor, torch.Tensor]:
    """tanh hidden values and softmax probabilities for the inputs a–e (rows), in float64."""
    w = {role: tensor.double() for role, tensor in weights(net).items()}
    hidden = torch.tanh(w["Embedding weight"][INPUTS])
    return hidden, torch.softmax(hidden @ w["Linear weight"].T + w["Linear bias"], dim=1)


def clean_success_problems(net: ModuleInfo) -> list[str]:
    hidden, probabilities = hidden_and_probabilities(net)
    problems = []
    predicted = probabilities.argmax(dim=1)
    wrong = [CHARACTERS[i] for i in INPUTS.tolist() if predicted[i] != TARGETS[i]]
    if wrong:
        problems.append(say(f"the most probable next character is wrong after {', '.join(wrong)}",
                            f"{', '.join(wrong)} 다음 문자를 잘못 예측했습니다 (가장 높은 확률을 준 문자가 틀렸습니다)"))
    true = probabilities[INPUTS, TARGETS]
    worst = int(true.argmin())
    if true[worst] < MIN_TRUE_PROBABILITY:
        p, c = f"{float(true[worst]):.3f}", CHARACTERS[worst]
        problems.append(say(f"after '{c}' the true next character gets probability only "
                            f"{p} (a clean success needs ≥ {MIN_TRUE_PROBABILITY} for every character)",
                            f"'{c}' 다음에 실제로 오는 문자의 확률이 {p}밖에 되지 않습니다 (깔끔한 성공에는 모든 문자에서 "
                            f"{MIN_TRUE_PROBABILITY} 이상이 필요합니다)"))
    codes = {tuple((row > 0).tolist()) for row in hidden}
    if len(codes) < len(CHARACTERS):
        problems.append(say(f"the tanh hidden nodes take only {len(codes)} distinct sign patterns for the "
                            f"{len(CHARACTERS)} characters, so some characters share a code",
                            f"tanh 은닉 노드가 문자 {len(CHARACTERS)}개에 대해 서로 다른 부호 패턴을 "
                            f"{len(codes)}개만 만들어서, 같은 코드를 쓰는 문자가 있습니다"))
    return problems


def same_layers_as_reference(student, reference) -> ModuleInfo:
    net = fitting_network(student)
    if sizes(net) != sizes(reference["net"]):
        raise NotJudged(say("your network's sizes differ from the reference solution's, so its results "
                            "cannot be compared with it (see the fewest-hidden-nodes check)",
                            "신경망의 크기가 참고 답안과 달라서 결과를 참고 답안과 비교할 수 없습니다 "
                            "(가장 적은 은닉 노드 항목 참고)"))
    return net


@check(points=1, ko="노트북이 오류 없이 끝까지 실행됩니다")
def runs_without_error(run):
    """the notebook runs to the end without an error"""
    if not run.problems:
        return
    problem = run.problems[0]
    explanations = [why for ename, text, why in KNOWN_ERRORS if problem.ename == ename and text in problem.evalue]
    described = problem.describe()
    raise AssertionError(say(" ".join([described.rstrip(".") + ".", *explanations[:1]]),
                             " ".join([described.ko.rstrip(".") + ".", *(e.ko for e in explanations[:1])])))


@check(points=2, ko="층 구성이 과제에 맞습니다: Embedding(5, k) → Tanh → Linear(k, 5)")
def layers(student):
    """the layers fit the task: Embedding(5, k) → Tanh → Linear(k, 5)"""
    problems = architecture_problems(network(student))
    if problems:
        raise AssertionError(joined(problems))


@check(points=1, requires=["parameters"], ko="Adam을 기본 학습률 lr=0.001로 5000 에폭 학습했습니다")
def training(student):
    """training ran Adam at its default lr 0.001 for 5000 epochs"""
    assert_trained(student.trace, optimizer="Adam", lr=ADAM_DEFAULT_LR, steps=EPOCHS,
                   how=say("torch.optim.Adam(net.parameters()), its default lr",
                           "torch.optim.Adam(net.parameters()) (기본 학습률)"))


@check(points=2, variants="all",
       ko="깔끔한 성공: a–e 각각에서 실제 다음 문자의 확률 ≥ 0.95, 그리고 서로 다른 tanh 부호 패턴 5개")
def clean_success(student):
    """clean success: p(true next character) ≥ 0.95 for each of a–e, and 5 distinct tanh sign codes"""
    problems = clean_success_problems(fitting_network(student))
    if problems:
        # Only the student's own numbers and the public criterion: safe to show for hidden runs.
        raise Mismatch(joined(problems))


@check(points=2, ko="깔끔하게 성공하는 가장 적은 은닉 노드 수")
def fewest_hidden_nodes(student):
    """the fewest hidden nodes that still succeed cleanly"""
    net = fitting_network(student)
    k = sizes(net)["embedding_dim"]
    if k > HIDDEN_NODES:
        why = f"2^{HIDDEN_NODES} = {2 ** HIDDEN_NODES} ≥ {len(CHARACTERS)}"
        raise AssertionError(say(f"{k} hidden nodes are more than needed: k tanh nodes give up to 2^k sign "
                                 f"patterns, and {len(CHARACTERS)} characters need only {HIDDEN_NODES} ({why})",
                                 f"은닉 노드 {k}개는 필요보다 많습니다. tanh 노드 k개는 부호 패턴을 최대 2^k개 "
                                 f"만들므로, 문자 {len(CHARACTERS)}개에는 {HIDDEN_NODES}개면 충분합니다 ({why})"))
    if k < HIDDEN_NODES:
        raise AssertionError(say(f"{k} hidden node(s) give at most {2 ** k} sign patterns, fewer than the "
                                 f"{len(CHARACTERS)} characters, so the network cannot succeed cleanly",
                                 f"은닉 노드 {k}개로는 부호 패턴이 최대 {2 ** k}개라서 문자 {len(CHARACTERS)}개보다 "
                                 "적으므로, 깔끔하게 성공할 수 없습니다"))
    if clean_success_problems(net):
        raise AssertionError(say(f"{HIDDEN_NODES} hidden nodes is the right size, but this network did not succeed "
                                 "cleanly (see the clean-success check), so it does not show that they are enough",
                                 f"은닉 노드 {HIDDEN_NODES}개는 맞는 크기지만, 이 신경망은 깔끔하게 성공하지 못해서 "
                                 "그 수로 충분하다는 것을 보여 주지 못합니다 (깔끔한 성공 항목 참고)"))


@check(points=1, variants="all", ko="학습된 가중치가 참고 답안의 값과 같습니다")
def parameters(student, reference):
    """the trained weights match the reference solution's"""
    got = weights(same_layers_as_reference(student, reference))
    assert_all_close({role: (got[role], expected) for role, expected in weights(reference["net"]).items()},
                     atol=PARAMETER_ATOL, rtol=0)


@check(points=1, variants="all", ko="a–e에 대한 확률 softmax(net(x))가 참고 답안의 값과 같습니다")
def probabilities(student, reference):
    """the probabilities softmax(net(x)) for a–e match the reference solution's"""
    _, got = hidden_and_probabilities(same_layers_as_reference(student, reference))
    _, expected = hidden_and_probabilities(reference["net"])
    assert_close(got, expected, name=say("probabilities (rows a–e)", "확률 (행: a–e)"), atol=PROBABILITY_ATOL, rtol=0)


@check(points=1, variants="all", ko="마지막 에폭의 손실이 참고 답안의 값과 같습니다")
def final_loss(student, reference):
    """the loss of the last epoch matches the reference solution's"""
    same_layers_as_reference(student, reference)
    assert_close(student["loss"], reference["loss"], name="loss", rtol=LOSS_RTOL, atol=0)


@heatmap(title=say("tanh hidden values h and p(next character | character)", "tanh 은닉값 h와 다음 문자의 확률"),
         rows=CHARACTERS, vmin=-1, vmax=1,
         row_title=say("current character", "현재 문자"),
         column_title=say("hidden nodes h1…hk, then the next character", "은닉 노드 h1…hk, 이어서 다음 문자"),
         caption=say("The h columns are each character's code: red is +, blue is −. A clean success gives every "
                     "character its own sign pattern and puts a dark red cell on its next character.",
                     "h 열은 문자마다의 코드입니다 (빨강 +, 파랑 −). 깔끔한 성공이라면 문자마다 부호 패턴이 모두 다르고, "
                     "다음 문자 칸이 진한 빨강입니다."))
def hidden_values_and_probabilities(student):
    """Drawn in the feedback like the lecture's matshow of [hidden | softmax]."""
    hidden, probabilities = hidden_and_probabilities(fitting_network(student))
    labels = [f"h{i + 1}" for i in range(hidden.shape[1])] + list(CHARACTERS)
    return torch.cat([hidden, probabilities], dim=1), labels
