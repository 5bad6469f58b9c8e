# Runs in the student's kernel before the first student cell (see grader/run/kernel/__init__.py).


def install(config_json):
    import json
    import sys
    import types

    import torch

    config = json.loads(config_json)
    state = types.ModuleType("__grader_state__")
    state.events = []
    state.hyperparameters = _hyperparameters
    sys.modules["__grader_state__"] = state

    torch.set_num_threads(config["threads"])
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    import torch.optim  # noqa: F401  (first use costs ~1 s; keep it out of the student's timing)

    _record_training(torch, state, config["max_losses"], config["max_snapshot_elements"],
                     config.get("initial_parameters"))
    if config.get("seed_map"):
        _map_seeds(torch, config["seed_map"])
    if config["map_cuda_to_cpu"]:
        _map_cuda_to_cpu(torch, state)


def _plain(value):
    """A hyperparameter as JSON-able data (tensors become floats, unknown objects their type)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        return type(value).__name__


def _hyperparameters(optimizer):
    group = optimizer.param_groups[0] if optimizer.param_groups else {}
    return {k: _plain(v) for k, v in group.items() if k != "params"}


def _map_seeds(torch, seed_map):
    """A hidden variant's random stream: every seeding call with a public seed seeds the
    variant's seed instead, in whichever cell it is written (torch, numpy, random)."""
    import random

    import numpy as np

    mapping = {int(public): int(hidden) for public, hidden in seed_map.items()}

    def mapped(seed):
        try:
            return mapping.get(int(seed), seed)
        except (TypeError, ValueError, OverflowError):
            return seed

    def wrap(original):
        def seed(value=None, *args, **kwargs):
            return original(mapped(value), *args, **kwargs)
        seed.__wrapped__ = original
        seed.__name__ = getattr(original, "__name__", "seed")
        seed.__doc__ = getattr(original, "__doc__", None)
        return seed

    torch.manual_seed = torch.random.manual_seed = wrap(torch.random.manual_seed)
    torch.cuda.manual_seed = wrap(torch.cuda.manual_seed)
    torch.cuda.manual_seed_all = wrap(torch.cuda.manual_seed_all)
    np.random.seed = wrap(np.random.seed)
    np.random.default_rng = wrap(np.random.default_rng)
    random.seed = wrap(random.seed)


def _snapshot(state, optimizer):
    """The parameters as they are when the optimizer is built: the start of training.
    Copies stop once `state.snapshot_budget` elements are used (an optimizer built in
    every epoch must not copy the model thousands of times)."""
    tensors = [p for group in optimizer.param_groups for p in group["params"]]
    size = sum(p.numel() for p in tensors)
    if size > state.snapshot_budget:
        return None
    state.snapshot_budget -= size
    return [p.detach().to("cpu", copy=True) for p in tensors]


def _start_from(torch, optimizer, path):
    """Replay: put the given starting values into the first optimizer's parameters."""
    import numpy as np

    with np.load(path, allow_pickle=False) as arrays:
        values = [arrays[f"p{i}"] for i in range(len(arrays.files))]
    tensors = [p for group in optimizer.param_groups for p in group["params"]]
    if [tuple(p.shape) for p in tensors] != [v.shape for v in values]:
        raise RuntimeError("replay: the starting values do not fit the optimizer's parameters")
    with torch.no_grad():
        for tensor, value in zip(tensors, values):
            tensor.copy_(torch.from_numpy(value))


def _record_training(torch, state, max_losses, max_snapshot_elements, initial_parameters=None):
    """Record, without the student's help, every loss backpropagated and every optimizer.

    `torch.autograd.backward` is what `Tensor.backward` calls, so wrapping it sees both;
    optimizers are seen through `Optimizer.__init__` (every subclass calls it) and
    torch's global step hook. Each optimizer's parameters are copied when it is built, so
    the grader knows where training started; a replay (`initial_parameters`, a file of
    arrays) sets them instead, in the first optimizer built. Each step records the device
    its parameters are on: where the training computed.
    """
    import weakref

    state.losses = []
    state.backward_calls = 0
    state.optimizers = []  # [weak reference, record, parameters when built]
    state.snapshot_budget = max_snapshot_elements
    original_backward = torch.autograd.backward

    def backward(tensors, *args, **kwargs):
        state.backward_calls += 1
        try:
            if isinstance(tensors, torch.Tensor) and tensors.numel() == 1 and len(state.losses) < max_losses:
                state.losses.append(float(tensors.detach().reshape(())))
        except Exception:
            pass
        return original_backward(tensors, *args, **kwargs)

    torch.autograd.backward = backward

    original_init = torch.optim.Optimizer.__init__

    def init(optimizer, *args, **kwargs):
        original_init(optimizer, *args, **kwargs)
        if initial_parameters and not state.optimizers:
            _start_from(torch, optimizer, initial_parameters)
        try:
            record = {"class": type(optimizer).__name__, "steps": 0,
                      "parameters": sum(p.numel() for g in optimizer.param_groups for p in g["params"]),
                      "hyperparameters": _hyperparameters(optimizer), "first_step": None, "devices": []}
            state.optimizers.append([weakref.ref(optimizer), record, _snapshot(state, optimizer)])
        except Exception:
            pass

    torch.optim.Optimizer.__init__ = init

    def after_step(optimizer, args, kwargs):
        for reference, record, _ in state.optimizers:
            if reference() is optimizer:
                record["steps"] += 1
                if record["first_step"] is None:
                    record["first_step"] = _hyperparameters(optimizer)
                device = next((p.device.type for g in optimizer.param_groups for p in g["params"]), None)
                if device is not None and device not in record["devices"]:
                    record["devices"].append(device)
                return

    from torch.optim.optimizer import register_optimizer_step_post_hook

    register_optimizer_step_post_hook(after_step)


def _map_cuda_to_cpu(torch, state):
    """Run notebooks that hard-code "cuda" on a machine without a GPU, and say so."""
    from torch.overrides import TorchFunctionMode

    def is_cuda(value):
        if isinstance(value, str):
            return value.strip().lower().startswith("cuda")
        return isinstance(value, torch.device) and value.type == "cuda"

    def note(what):
        if what not in state.events:
            state.events.append(what)

    class CudaToCpu(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = dict(kwargs or {})
            if func is torch.Tensor.cuda:
                note("cuda_mapped_to_cpu")
                return args[0]
            if is_cuda(kwargs.get("device")):
                note("cuda_mapped_to_cpu")
                kwargs["device"] = "cpu"
            if any(is_cuda(a) for a in args):
                note("cuda_mapped_to_cpu")
                args = tuple("cpu" if is_cuda(a) else a for a in args)
            return func(*args, **kwargs)

    CudaToCpu().__enter__()
