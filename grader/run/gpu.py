"""Which GPU a kernel may use, and the device files and environment that give it that one.

With `--device cuda` each worker slot gets one GPU, round robin over the GPUs the grader
itself may use (its own `CUDA_VISIBLE_DEVICES` if set, else every `/dev/nvidiaN`): a
kernel's device is then `cuda:N`, its sandbox binds the driver's control files and
`/dev/nvidiaN` only, and `CUDA_VISIBLE_DEVICES=N` (in PCI order, the order of the device
files) makes that GPU its `cuda:0`. Slots share GPUs when there are more workers than GPUs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# The driver's shared device files every CUDA process opens, whichever GPU it uses.
CONTROL_NODES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")
GPU_NODE = re.compile(r"^nvidia(\d+)$")


def visible_gpus(dev: Path = Path("/dev"), environ: dict[str, str] | None = None) -> list[str]:
    """The GPUs this grader may hand out, as indices."""
    environ = os.environ if environ is None else environ
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [item.strip() for item in listed.split(",") if item.strip().isdigit()]
    found = [GPU_NODE.match(p.name) for p in dev.glob("nvidia*")]
    return sorted((m[1] for m in found if m), key=int)


def kernel_device(device: str, slot: int, gpus: list[str]) -> str:
    """The device of the kernel run in worker slot `slot`: `cpu`, or `cuda:N` for its GPU."""
    if device != "cuda" or not gpus:
        return device
    return f"cuda:{gpus[slot % len(gpus)]}"


def gpu_of(device: str) -> str | None:
    """N of `cuda:N`; None for the CPU or a kernel given every GPU (`cuda`)."""
    kind, _, index = device.partition(":")
    return index if kind == "cuda" and index else None


def device_binds(device: str, dev: Path = Path("/dev")) -> list[str]:
    """bubblewrap options binding exactly the device files the kernel's GPU needs."""
    if not device.startswith("cuda"):
        return []
    gpu = gpu_of(device)
    nodes = [dev / name for name in CONTROL_NODES]
    nodes += [dev / f"nvidia{gpu}"] if gpu is not None else sorted(
        (p for p in dev.glob("nvidia*") if GPU_NODE.match(p.name)), key=lambda p: int(GPU_NODE.match(p.name)[1]))
    return [arg for node in nodes if node.exists() for arg in ("--dev-bind", str(node), str(node))]


def device_environment(device: str) -> dict[str, str]:
    """The kernel's CUDA variables: no GPU for `cpu`, only its own for `cuda:N`."""
    if device == "cpu":
        return {"CUDA_VISIBLE_DEVICES": ""}
    gpu = gpu_of(device)
    return {} if gpu is None else {"CUDA_VISIBLE_DEVICES": gpu, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
