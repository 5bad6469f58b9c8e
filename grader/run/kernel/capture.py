# Runs in the student's kernel after the last student cell (see grader/run/kernel/__init__.py).
# Writes the declared values as JSON plus an .npz of plain arrays: nothing pickled.

MODULE_ATTRIBUTES = (
    "in_features", "out_features", "num_embeddings", "embedding_dim", "padding_idx",
    "input_size", "hidden_size", "num_layers", "nonlinearity", "bidirectional",
    "batch_first", "in_channels", "out_channels", "kernel_size", "stride", "padding",
    "dim", "p", "negative_slope", "normalized_shape", "num_features", "eps",
)


def capture(config_json):
    import json
    import os
    import sys

    import numpy as np
    import torch
    from IPython import get_ipython

    config = json.loads(config_json)
    namespace = get_ipython().user_ns
    arrays = {}

    def store_tensor(tensor):
        key = f"a{len(arrays)}"
        plain = tensor.detach().cpu()
        if plain.dtype == torch.bfloat16:
            plain = plain.float()
        arrays[key] = plain.numpy()
        return {"kind": "tensor", "array": key, "dtype": str(tensor.dtype).replace("torch.", ""),
                "shape": list(tensor.shape), "device": str(tensor.device)}

    def describe_module(module):
        layers = []
        for name, sub in module.named_modules():
            config_values = {}
            for attribute in MODULE_ATTRIBUTES:
                value = getattr(sub, attribute, None)
                if isinstance(value, (bool, int, float, str)) or (
                    isinstance(value, tuple) and all(isinstance(v, (int, float)) for v in value)
                ):
                    config_values[attribute] = value
            if hasattr(sub, "bias"):
                bias = sub.bias  # a bool on recurrent layers, a tensor or None elsewhere
                config_values["bias"] = bias if isinstance(bias, bool) else bias is not None
            layers.append({"name": name, "type": type(sub).__name__,
                           "children": len(list(sub.children())), "config": config_values})
        parameters = {name: {"shape": list(p.shape), "dtype": str(p.dtype).replace("torch.", ""),
                             "requires_grad": bool(p.requires_grad)}
                      for name, p in module.named_parameters()}
        state = {name: store_tensor(t) for name, t in module.state_dict().items()}
        return {"kind": "module", "type": type(module).__name__, "layers": layers,
                "parameters": parameters, "state_dict": state}

    def describe(value):
        if isinstance(value, torch.Tensor):
            return store_tensor(value)
        if isinstance(value, torch.nn.Module):
            return describe_module(value)
        if isinstance(value, (bool, np.bool_)):
            return {"kind": "scalar", "value": bool(value)}
        if isinstance(value, (int, np.integer)):
            return {"kind": "scalar", "value": int(value)}
        if isinstance(value, (float, np.floating)):
            return {"kind": "scalar", "value": float(value)}
        if isinstance(value, str):
            return {"kind": "text", "value": value[: config["max_text_chars"]]}
        if isinstance(value, np.ndarray) and value.dtype != object:
            return store_tensor(torch.from_numpy(np.ascontiguousarray(value)))
        if isinstance(value, dict) and value and all(isinstance(v, torch.Tensor) for v in value.values()):
            return {"kind": "state_dict", "entries": {str(k): store_tensor(v) for k, v in value.items()}}
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
            return store_tensor(torch.tensor(value))
        return {"kind": "unsupported", "type": type(value).__name__}

    values = {}
    for name in config["names"]:
        if name not in namespace:
            values[name] = {"kind": "missing"}
            continue
        try:
            values[name] = describe(namespace[name])
        except Exception as exc:  # a student's object may break in any way
            values[name] = {"kind": "unsupported", "type": type(namespace[name]).__name__,
                            "error": f"{type(exc).__name__}: {exc}"[:300]}

    state = sys.modules.get("__grader_state__")
    optimizers = []
    for reference, record, initial in getattr(state, "optimizers", []):
        alive = reference()
        final = state.hyperparameters(alive) if alive is not None else None
        start = [store_tensor(t) for t in initial] if initial is not None else None
        optimizers.append({**record, "last": final, "initial": start})
    arrays["trace_losses"] = np.asarray(getattr(state, "losses", []), dtype=np.float64)
    trace = {"backward_calls": int(getattr(state, "backward_calls", 0)), "optimizers": optimizers,
             "losses": "trace_losses"}
    manifest = {"values": values, "events": list(getattr(state, "events", [])), "trace": trace}
    folder = config["folder"]
    np.savez(os.path.join(folder, "arrays.tmp.npz"), **arrays)
    os.replace(os.path.join(folder, "arrays.tmp.npz"), os.path.join(folder, "arrays.npz"))
    with open(os.path.join(folder, "manifest.tmp.json"), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle)
    os.replace(os.path.join(folder, "manifest.tmp.json"), os.path.join(folder, "manifest.json"))
