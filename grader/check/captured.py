"""Values read back from a kernel: parsed, never executed or unpickled, and size-capped."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from grader.errors import CaptureError, MissingValue
from grader.fsutil import FileTooLarge, UnsafeFile, read_regular_file

MANIFEST, ARRAYS = "manifest.json", "arrays.npz"
NAME_CHARS = 200  # a type, layer, key or event name read back from the kernel
TEXT_CHARS = 100_000  # a captured `str` value (the kernel keeps as many)
TORCH_DTYPES = {
    name: getattr(torch, name)
    for name in ("float16", "bfloat16", "float32", "float64", "complex64", "complex128",
                 "int8", "int16", "int32", "int64", "uint8", "bool")
}
# What the kernel writes (bfloat16 goes as float32); torch.from_numpy takes each of them.
ARRAY_DTYPES = {np.dtype(name) for name in TORCH_DTYPES if name != "bfloat16"}


@dataclass(frozen=True)
class ModuleInfo:
    """A captured `nn.Module`: its structure as data and its weights, never the object."""

    type: str
    layers: list[dict]
    parameters: dict[str, dict]
    state_dict: dict[str, torch.Tensor]

    def layer_types(self) -> list[str]:
        """Types of the leaf layers, in order (containers like Sequential left out)."""
        return [layer["type"] for layer in self.layers if layer["children"] == 0]


@dataclass(frozen=True)
class OptimizerRecord:
    """An optimizer the notebook constructed, as recorded by the kernel's preamble."""

    kind: str
    steps: int
    parameters: int
    hyperparameters: dict  # at construction
    first_step: dict | None  # at the first step() call
    last: dict | None  # when the values were captured
    initial: list[torch.Tensor] | None = None  # its parameters when it was built (None: not copied)
    devices: tuple[str, ...] = ()  # device types its parameters were on when it stepped (`cpu`, `cuda`)

    @property
    def lr(self) -> float | None:
        """The learning rate it stepped with (the first step's, else the constructed one)."""
        return (self.first_step or self.hyperparameters).get("lr")


@dataclass(frozen=True)
class Trace:
    """What training actually did: every backpropagated scalar loss, every optimizer."""

    losses: np.ndarray
    backward_calls: int
    optimizers: list[OptimizerRecord]

    @property
    def epochs(self) -> int:
        """Full-batch epochs: steps of the busiest optimizer, or backward calls without one."""
        steps = [o.steps for o in self.optimizers if o.steps]
        return max(steps) if steps else self.backward_calls

    def stepped(self) -> list[OptimizerRecord]:
        return [o for o in self.optimizers if o.steps]

    @property
    def starting_parameters(self) -> list[torch.Tensor] | None:
        """Where training started: the parameters of the one optimizer that stepped, as they
        were when it was built; None when no single optimizer did or they were not copied."""
        stepped = self.stepped()
        return stepped[0].initial if len(stepped) == 1 else None

    def first_epoch_where(self, mask: np.ndarray) -> int | None:
        """1-based epoch of the first loss where `mask` holds, or None."""
        hits = np.flatnonzero(mask)
        return int(hits[0]) + 1 if hits.size else None

    @property
    def first_nonfinite_epoch(self) -> int | None:
        return self.first_epoch_where(~np.isfinite(self.losses))

    @property
    def first_nan_epoch(self) -> int | None:
        return self.first_epoch_where(np.isnan(self.losses))


def _trace_from(raw: dict, arrays: dict[str, np.ndarray]) -> Trace:
    try:
        losses = arrays[raw["losses"]].astype(np.float64).ravel()
        optimizers = [OptimizerRecord(str(o["class"]), int(o["steps"]), int(o["parameters"]),
                                      dict(o["hyperparameters"]),
                                      dict(o["first_step"]) if o.get("first_step") else None,
                                      dict(o["last"]) if o.get("last") else None,
                                      _starting_parameters(o.get("initial"), arrays),
                                      tuple(_device_types(o.get("devices", []))))
                      for o in raw["optimizers"]]
        return Trace(losses, int(raw["backward_calls"]), optimizers)
    except (KeyError, TypeError, ValueError, AttributeError, CaptureError) as exc:
        raise CaptureError(f"the training trace is malformed: {type(exc).__name__}") from None


def _device_types(devices) -> list[str]:
    if not isinstance(devices, list):
        raise TypeError("devices")
    return [str(d).partition(":")[0] for d in devices]


def _starting_parameters(entries, arrays: dict[str, np.ndarray]) -> list[torch.Tensor] | None:
    if not entries:
        return None
    for entry in entries:
        _check_tensor("an optimizer's starting parameters", entry, arrays)
    return [_tensor(entry, arrays) for entry in entries]


def _tensor(entry: dict, arrays: dict[str, np.ndarray]) -> torch.Tensor:
    """A captured tensor entry (validated when the capture was loaded) as a tensor."""
    return torch.from_numpy(arrays[entry["array"]].copy()).to(TORCH_DTYPES[entry["dtype"]])


@dataclass
class Captured:
    """The manifest written by the kernel plus its arrays, with typed accessors."""

    values: dict[str, dict]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    trace_record: dict = field(default_factory=dict)

    @property
    def trace(self) -> Trace:
        return _trace_from(self.trace_record, self.arrays)

    def value_devices(self) -> set[str]:
        """The device types (`cpu`, `cuda`) the captured tensors were on, modules' weights included."""
        def tensors(entry: dict):
            if entry.get("kind") == "tensor":
                yield entry
            for nested in ("entries", "state_dict"):
                yield from (e for e in entry.get(nested, {}).values() if isinstance(e, dict))

        return {str(t.get("device", "cpu")).partition(":")[0] for e in self.values.values() for t in tensors(e)}

    def training_devices(self) -> set[str]:
        """The device types the stepped optimizers' parameters were on when they stepped."""
        if not self.trace_record:
            return set()
        return {d for o in self.trace.stepped() for d in o.devices}

    def devices(self) -> set[str]:
        """Every device type the kernel says it used: captured tensors and training."""
        return self.value_devices() | self.training_devices()

    def computed_on(self) -> str:
        """Where the submission computed, to compare it with the reference run there: `cuda`
        when its training stepped parameters on a GPU, or (nothing trained) when a captured
        tensor is on one; else `cpu`. Training decides first: weights trained on the CPU and
        moved to a GPU afterwards hold CPU results."""
        return "cuda" if "cuda" in (self.training_devices() or self.value_devices()) else "cpu"

    def __contains__(self, name: str) -> bool:
        return self.values.get(name, {}).get("kind", "missing") != "missing"

    def __getitem__(self, name: str):
        entry = self.values.get(name)
        if entry is None or entry.get("kind") == "missing":
            raise MissingValue(name)
        kind = entry["kind"]
        if kind == "unsupported":
            detail = f" ({entry['error']})" if entry.get("error") else ""
            raise MissingValue(name, f"`{name}` is a {entry.get('type')}, which the grader cannot read{detail}")
        if kind == "tensor":
            return self._tensor(entry)
        if kind in ("scalar", "text"):
            return entry["value"]
        if kind == "state_dict":
            return {k: self._tensor(v) for k, v in entry["entries"].items()}
        if kind == "module":
            return ModuleInfo(entry["type"], entry["layers"], entry["parameters"],
                              {k: self._tensor(v) for k, v in entry["state_dict"].items()})
        raise CaptureError(f"unknown kind {kind!r} for {name!r}")

    def _tensor(self, entry: dict) -> torch.Tensor:
        return _tensor(entry, self.arrays)

    def save(self, folder: Path) -> None:
        """Write the capture so `load_captured` reads it back (used by the reference cache)."""
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / ARRAYS, **self.arrays)
        manifest = {"values": self.values, "events": self.events, "trace": self.trace_record}
        (folder / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")


def _read_plain_file(path: Path, max_bytes: int) -> bytes:
    """A capture file's bytes. The kernel can write in its capture folder, so a link (to a
    file of the grader's), a FIFO (which would block) or a device is refused."""
    try:
        return read_regular_file(path, max_bytes)
    except FileNotFoundError:
        raise CaptureError("no values were written back (the capture did not complete)") from None
    except FileTooLarge:
        raise CaptureError(f"the captured values take more than {max_bytes:,} bytes, the limit") from None
    except UnsafeFile as exc:
        raise CaptureError(f"{path.name} in the capture folder cannot be opened: it is {exc}") from None
    except OSError as exc:
        raise CaptureError(f"{path.name} in the capture folder cannot be opened: {exc.strerror}") from None


def _check_tensor(name: str, entry, arrays: dict[str, np.ndarray]) -> None:
    if not (isinstance(entry, dict) and entry.get("dtype") in TORCH_DTYPES and isinstance(entry.get("array"), str)
            and entry["array"] in arrays and arrays[entry["array"]].dtype in ARRAY_DTYPES):
        raise CaptureError(f"the captured tensor `{name}` is malformed")


def _check_value(name: str, entry, arrays: dict[str, np.ndarray]) -> None:
    """Raise `CaptureError` unless `entry` has the shape `Captured.__getitem__` relies on."""
    kind = entry.get("kind") if isinstance(entry, dict) else None
    if kind == "tensor":
        _check_tensor(name, entry, arrays)
    elif kind == "state_dict" and isinstance(entry.get("entries"), dict):
        for key, tensor in entry["entries"].items():
            _check_tensor(f"{name}[{key}]", tensor, arrays)
    elif kind == "module" and isinstance(entry.get("type"), str) and isinstance(entry.get("layers"), list) \
            and isinstance(entry.get("parameters"), dict) and isinstance(entry.get("state_dict"), dict):
        if not all(isinstance(layer, dict) and isinstance(layer.get("type"), str)
                   and isinstance(layer.get("children"), int) and isinstance(layer.get("config"), dict)
                   for layer in entry["layers"]):
            raise CaptureError(f"the captured layers of `{name}` are malformed")
        for key, tensor in entry["state_dict"].items():
            _check_tensor(f"{name}.{key}", tensor, arrays)
    elif not ((kind == "scalar" and isinstance(entry.get("value"), (bool, int, float)))
              or (kind == "text" and isinstance(entry.get("value"), str))
              or (kind == "unsupported" and isinstance(entry.get("type"), str))
              or kind == "missing"):
        raise CaptureError(f"the captured entry for `{name}` is malformed")


def _cut_texts(value, limit: int = NAME_CHARS):
    """Every string of a manifest cut to size and marked so: only a captured `str` may be
    long; a name (a 20 MB class name) would otherwise be copied into every output."""
    if isinstance(value, str):
        return value if len(value) <= limit else f"{value[:limit]}… [cut from {len(value):,} characters]"
    if isinstance(value, dict):
        text = value.get("kind") == "text"
        return {_cut_texts(k): _cut_texts(v, TEXT_CHARS if text and k == "value" else NAME_CHARS)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_cut_texts(v) for v in value]
    return value


def load_captured(folder: Path, max_bytes: int) -> Captured:
    """Read a capture, refusing anything oversized, pickled or malformed with `CaptureError`."""
    manifest_bytes = _read_plain_file(folder / MANIFEST, max_bytes)
    arrays_bytes = _read_plain_file(folder / ARRAYS, max_bytes - len(manifest_bytes))
    try:
        manifest = _cut_texts(json.loads(manifest_bytes))
        values, events, trace = manifest["values"], manifest.get("events", []), manifest.get("trace", {})
        if not isinstance(values, dict) or not isinstance(events, list) or not isinstance(trace, dict):
            raise TypeError("wrong structure")
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise CaptureError(f"the capture manifest is malformed: {type(exc).__name__}") from None
    try:
        with zipfile.ZipFile(io.BytesIO(arrays_bytes)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > max_bytes:
            raise CaptureError(f"the captured arrays unpack to {unpacked:,} bytes, over the limit of {max_bytes:,}")
        with np.load(io.BytesIO(arrays_bytes), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise CaptureError(f"the captured arrays are unreadable: {exc}") from None
    for name, entry in values.items():
        _check_value(str(name)[:60], entry, arrays)
    captured = Captured(values=values, arrays=arrays, events=[str(e) for e in events], trace_record=trace)
    if trace:
        captured.trace  # noqa: B018  (validates the record now, so a bad one is a capture error)
    return captured


def plain_values(captured: Captured, names: tuple[str, ...], skip_missing: bool = False) -> dict[str, object]:
    """Tensors, numbers and text of a capture, modules split into weights and layer types,
    plus the training trace (the loss curve and the optimizers' step counts); names the
    notebook never defined are left out with `skip_missing`, else raise `MissingValue`."""
    trace = captured.trace
    plain: dict[str, object] = {
        "trace:losses": torch.from_numpy(trace.losses),
        "trace:optimizers": " ".join(f"{o.kind}(lr={o.lr}, steps={o.steps})" for o in trace.optimizers),
    }
    for name in names:
        try:
            value = captured[name]
        except MissingValue:
            if skip_missing:
                continue
            raise
        if isinstance(value, ModuleInfo):
            plain[f"{name}:layers"] = " ".join(value.layer_types())
            plain.update({f"{name}.{k}": v for k, v in value.state_dict.items()})
        elif isinstance(value, dict):
            plain.update({f"{name}[{k}]": v for k, v in value.items()})
        else:
            plain[name] = value
    return plain


@dataclass
class NoCapture:
    """Stands in for a capture that never came back, so every check says why (raising
    `error`, which a subclass may change)."""

    reason: str
    events: list[str] = field(default_factory=list)
    error = CaptureError

    def __contains__(self, name: str) -> bool:
        return False

    def __getitem__(self, name: str):
        raise self.error(self.reason)

    @property
    def trace(self) -> Trace:
        raise self.error(self.reason)
