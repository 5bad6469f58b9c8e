# Runs in the student's kernel before the first student cell (see grader/kernel/__init__.py).


def install(config_json):
    import json
    import sys
    import types

    import torch

    config = json.loads(config_json)
    state = types.ModuleType("__grader_state__")
    state.events = []
    sys.modules["__grader_state__"] = state

    torch.set_num_threads(config["threads"])
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    import torch.optim  # noqa: F401  (first use costs ~1 s; keep it out of the student's timing)

    if config["map_cuda_to_cpu"]:
        _map_cuda_to_cpu(torch, state)


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
