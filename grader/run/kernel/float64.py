# Runs in a kernel as the first cell of `grader probe`'s float64 run (see grader/author/probe.py),
# never in a graded one: the notebook as written, computed in float64.
#
# The default dtype becomes float64 and explicit float32 (`.float()`, `dtype=torch.float32`,
# `.to(torch.float32)`) means float64, so every tensor the notebook makes is float64. Random
# numbers are still drawn as float32 and widened: torch draws other numbers for float64 (a
# float64 `randn` is not a widened float32 one), so only this keeps the task's data and
# initial weights and leaves the arithmetic as the one difference.

RANDOM_FILLS = ("uniform_", "normal_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_",
                "xavier_normal_", "trunc_normal_", "orthogonal_", "sparse_")


def install(config_json):
    import torch
    from torch.overrides import TorchFunctionMode

    narrow, wide = torch.float32, torch.float64
    draws = {torch.rand, torch.randn, torch.rand_like, torch.randn_like}
    fills = {getattr(torch.Tensor, name) for name in ("uniform_", "normal_")}
    fills |= {getattr(torch.nn.init, name) for name in RANDOM_FILLS if hasattr(torch.nn.init, name)}

    def widened(value):
        return wide if value is narrow else value

    class Float64(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            args = tuple(widened(a) for a in args)
            kwargs = {k: widened(v) for k, v in (kwargs or {}).items()}
            if func is torch.Tensor.float:
                func = torch.Tensor.double
            # A fill's target: `self` of a Tensor method, `tensor=` of torch.nn.init's (dispatched by keyword).
            target = (args[0] if args else kwargs.get("tensor")) if func in fills else None
            if isinstance(target, torch.Tensor) and target.dtype == wide:
                drawn = target.detach().to(narrow)
                if args:
                    func(drawn, *args[1:], **kwargs)
                else:
                    func(**{**kwargs, "tensor": drawn})
                with torch.no_grad():
                    target.copy_(drawn)
                return target
            if func in draws and kwargs.get("dtype", wide) == wide:
                requires_grad = kwargs.pop("requires_grad", False)
                drawn = func(*args, **{**kwargs, "dtype": narrow}).to(wide)
                return drawn.requires_grad_(requires_grad)
            return func(*args, **kwargs)

    torch.set_default_dtype(wide)
    Float64().__enter__()
