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

from grader.check import task
from grader.check import assert_all_close, assert_close, assert_trained, check, heatmap, Mismatch, ModuleInfo, NotJudged

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
     "The Embedding has fewer rows than there are characters: x holds the codes 0–4 (a–e), "
     "so num_embeddings must cover all 5 characters (with 4 there is no row for 'e')."),
    ("IndexError", "out of bounds",
     "CrossEntropyLoss needs one output per class: the targets y are 0–4, so the Linear "
     "layer needs out_features=5 (with 4 there is no score for 'e')."),
    ("RuntimeError", "shapes cannot be multiplied",
     "The Linear layer's in_features must equal the Embedding's embedding_dim "
     "(Tanh keeps the number of hidden nodes)."),
)


def network(student) -> ModuleInfo:
    net = student["net"]
    if not isinstance(net, ModuleInfo):
        raise AssertionError(f"`net` should be a torch.nn.Module, but it is {type(net).__name__}")
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
        problems = [f"the layers are {' → '.join(types) or 'none'}, not {' → '.join(LAYER_TYPES)}"]
        if "Tanh" not in types:
            problems.append("without a Tanh the hidden values are not squashed into (−1, 1), "
                            "so they form no sign codes")
        return problems
    size = sizes(net)
    problems = []
    if size["num_embeddings"] != len(CHARACTERS):
        problems.append(f"num_embeddings is {size['num_embeddings']}, but there are "
                        f"{len(CHARACTERS)} characters to embed")
    if size["in_features"] != size["embedding_dim"]:
        problems.append(f"the Linear layer takes in_features={size['in_features']}, but the "
                        f"Embedding gives embedding_dim={size['embedding_dim']} hidden values")
    if size["out_features"] != len(CHARACTERS):
        problems.append(f"out_features is {size['out_features']}, but the network must score "
                        f"all {len(CHARACTERS)} characters")
    return problems


def fitting_network(student) -> ModuleInfo:
    """`net`, if its layers fit the task; otherwise the check is not judged, pointing at why."""
    net = network(student)
    if architecture_problems(net):
        raise NotJudged("the network is not Embedding(5, k) → Tanh → Linear(k, 5) "
                             "(see the layers check), so it cannot be evaluated")
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
        problems.append(f"the most probable next character is wrong after {', '.join(wrong)}")
    true = probabilities[INPUTS, TARGETS]
    worst = int(true.argmin())
    if true[worst] < MIN_TRUE_PROBABILITY:
        problems.append(f"after '{CHARACTERS[worst]}' the true next character gets probability only "
                        f"{float(true[worst]):.3f} (a clean success needs ≥ {MIN_TRUE_PROBABILITY} for every character)")
    codes = {tuple((row > 0).tolist()) for row in hidden}
    if len(codes) < len(CHARACTERS):
        problems.append(f"the tanh hidden nodes take only {len(codes)} distinct sign patterns for the "
                        f"{len(CHARACTERS)} characters, so some characters share a code")
    return problems


def same_layers_as_reference(student, reference) -> ModuleInfo:
    net = fitting_network(student)
    if sizes(net) != sizes(reference["net"]):
        raise NotJudged("your network's sizes differ from the reference solution's, so its results "
                        "cannot be compared with it (see the fewest-hidden-nodes check)")
    return net


@check(points=1)
def runs_without_error(run):
    """the notebook runs to the end without an error"""
    if not run.problems:
        return
    problem = run.problems[0]
    explanations = [why for ename, text, why in KNOWN_ERRORS if problem.ename == ename and text in problem.evalue]
    raise AssertionError(" ".join([problem.describe().rstrip(".") + ".", *explanations[:1]]))


@check(points=2)
def layers(student):
    """the layers fit the task: Embedding(5, k) → Tanh → Linear(k, 5)"""
    problems = architecture_problems(network(student))
    if problems:
        raise AssertionError("; ".join(problems))


@check(points=1, requires=["parameters"])
def training(student):
    """training ran Adam at its default lr 0.001 for 5000 epochs"""
    assert_trained(student.trace, optimizer="Adam", lr=ADAM_DEFAULT_LR, steps=EPOCHS,
                   how="torch.optim.Adam(net.parameters()), its default lr")


@check(points=2, variants="all")
def clean_success(student):
    """clean success: p(true next character) ≥ 0.95 for each of a–e, and 5 distinct tanh sign codes"""
    problems = clean_success_problems(fitting_network(student))
    if problems:
        # Only the student's own numbers and the public criterion: safe to show for hidden runs.
        raise Mismatch("; ".join(problems))


@check(points=2)
def fewest_hidden_nodes(student):
    """the fewest hidden nodes that still succeed cleanly"""
    net = fitting_network(student)
    k = sizes(net)["embedding_dim"]
    if k > HIDDEN_NODES:
        raise AssertionError(f"{k} hidden nodes are more than needed: k tanh nodes give up to 2^k sign "
                             f"patterns, and {len(CHARACTERS)} characters need only {HIDDEN_NODES} "
                             f"(2^{HIDDEN_NODES} = {2 ** HIDDEN_NODES} ≥ {len(CHARACTERS)})")
    if k < HIDDEN_NODES:
        raise AssertionError(f"{k} hidden node(s) give at most {2 ** k} sign patterns, fewer than the "
                             f"{len(CHARACTERS)} characters, so the network cannot succeed cleanly")
    if clean_success_problems(net):
        raise AssertionError(f"{HIDDEN_NODES} hidden nodes is the right size, but this network did not succeed "
                             "cleanly (see the clean-success check), so it does not show that they are enough")


@check(points=1, variants="all")
def parameters(student, reference):
    """the trained weights match the reference solution's"""
    got = weights(same_layers_as_reference(student, reference))
    assert_all_close({role: (got[role], expected) for role, expected in weights(reference["net"]).items()},
                     atol=PARAMETER_ATOL, rtol=0)


@check(points=1, variants="all")
def probabilities(student, reference):
    """the probabilities softmax(net(x)) for a–e match the reference solution's"""
    _, got = hidden_and_probabilities(same_layers_as_reference(student, reference))
    _, expected = hidden_and_probabilities(reference["net"])
    assert_close(got, expected, name="probabilities (rows a–e)", atol=PROBABILITY_ATOL, rtol=0)


@check(points=1, variants="all")
def final_loss(student, reference):
    """the loss of the last epoch matches the reference solution's"""
    same_layers_as_reference(student, reference)
    assert_close(student["loss"], reference["loss"], name="loss", rtol=LOSS_RTOL, atol=0)


@heatmap(title="p(next character | character)", rows=CHARACTERS, columns=CHARACTERS, vmin=0, vmax=1)
def predicted_probabilities(student):
    """Drawn in the feedback like the lecture's matshow of the softmax outputs."""
    return hidden_and_probabilities(fitting_network(student))[1]
