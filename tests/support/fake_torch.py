"""A stand-in ``torch`` shaped like the parts of PyTorch's API the agent's PyTorch backend calls on CUDA
(``torch.cuda``: ``is_available``, ``device_count``, ``get_device_name``, ``set_device``, ``current_stream``,
``Stream``, ``stream``, ``synchronize``, ``Event(enable_timing=)`` with ``record``/``synchronize``/
``elapsed_time`` (milliseconds), ``CUDAGraph`` with ``replay``, ``graph``; ``torch.device``; ``torch.jit.load``
with ``_extra_files``; ``torch.export.load``; ``torch.from_numpy``), so the CUDA path runs on a machine without
a GPU. Every call is logged in ``FakeTorch.calls``. The signatures follow torch 2.x's documentation
(torch.cuda.Event.elapsed_time returns float milliseconds; torch.cuda.graph is a context manager over a
CUDAGraph; torch.jit.load fills the ``_extra_files`` dict it is given)."""

from __future__ import annotations

import contextlib
import types
from typing import Any

import numpy as np


class FakeDevice:
    def __init__(self, kind: str, index: int | None = None) -> None:
        if ":" in kind:
            kind, _, idx = kind.partition(":")
            index = int(idx)
        if kind not in ("cpu", "cuda", "mps", "meta"):
            raise RuntimeError(f"Expected one of cpu, cuda, ... device type at start of device string: {kind}")
        self.type, self.index = kind, index

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"


class FakeTensor:
    def __init__(self, array: np.ndarray, device: Any = "cpu") -> None:
        self.array, self.device = array, str(device)

    def to(self, device: Any) -> FakeTensor:
        return FakeTensor(self.array, device)

    def detach(self) -> FakeTensor:
        return self

    def cpu(self) -> FakeTensor:
        return FakeTensor(self.array, "cpu")

    def numpy(self) -> np.ndarray:
        if self.device != "cpu":
            raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() first.")
        return self.array


class FakeEvent:
    def __init__(self, torch: FakeTorch, enable_timing: bool = False) -> None:
        self.torch, self.enable_timing, self.t = torch, enable_timing, None

    def record(self, stream: Any = None) -> None:
        self.torch.calls.append("event.record")
        self.t = self.torch.gpu_clock

    def synchronize(self) -> None:
        self.torch.calls.append("event.synchronize")

    def elapsed_time(self, end: FakeEvent) -> float:
        if not (self.enable_timing and end.enable_timing):
            raise RuntimeError("Both events must be created with argument 'enable_timing=True'.")
        return (end.t - self.t) / 1e6  # milliseconds


class FakeGraph:
    def __init__(self, torch: FakeTorch) -> None:
        self.torch, self.replays = torch, 0

    def replay(self) -> None:
        self.replays += 1
        self.torch.calls.append("graph.replay")
        self.torch.gpu_clock += self.torch.kernel_ns


class FakeModule:
    """A model: out = input * 2 + 1 summed over the last axis; each forward pass takes ``kernel_ns`` GPU time."""

    def __init__(self, torch: FakeTorch, argument_names: tuple[str, ...] = ("input",)) -> None:
        self.torch = torch
        self.forward = types.SimpleNamespace(schema=types.SimpleNamespace(
            arguments=[types.SimpleNamespace(name="self")] + [types.SimpleNamespace(name=n) for n in argument_names]))
        self.device = "cpu"

    def eval(self) -> FakeModule:
        return self

    def to(self, device: Any) -> FakeModule:
        self.device = str(device)
        return self

    def __call__(self, *tensors: FakeTensor) -> FakeTensor:
        torch = self.torch
        if torch.capturing is not None:
            torch.calls.append("graph.capture")
        else:
            torch.calls.append("forward")
            torch.gpu_clock += torch.kernel_ns
        for t in tensors:
            if t.device != self.device:
                raise RuntimeError(f"Expected all tensors to be on the same device, but found {t.device} and {self.device}")
        return FakeTensor((tensors[0].array * 2 + 1).sum(axis=-1), tensors[0].device)


class FakeTorch(types.ModuleType):
    """``torch`` with CUDA: ``gpus`` devices named ``name``; each forward pass advances the fake GPU clock by
    ``kernel_ns``; ``extra`` is the TorchScript archive's extra files (``hilbench.json``)."""

    def __init__(self, gpus: int = 1, name: str = "NVIDIA Fake GPU", kernel_ns: int = 250_000,
                 extra: dict[str, bytes] | None = None) -> None:
        super().__init__("torch")
        self.calls: list[str] = []
        self.gpu_clock = 0
        self.kernel_ns = kernel_ns
        self.capturing: FakeGraph | None = None
        self.threads = 4
        self.__version__ = "2.5.0+cu124"
        self.version = types.SimpleNamespace(cuda="12.4" if gpus else None)
        self.Tensor = FakeTensor
        self.device = FakeDevice
        outer = self

        def load(path: str, map_location: Any = None, _extra_files: dict[str, Any] | None = None) -> FakeModule:
            outer.calls.append("jit.load")
            for key in _extra_files or {}:
                if extra and key in extra:
                    _extra_files[key] = extra[key]  # type: ignore[index]
            return FakeModule(outer).to(map_location)

        self.jit = types.SimpleNamespace(load=load)
        self.export = types.SimpleNamespace(load=lambda path: (_ for _ in ()).throw(RuntimeError("not in the fake")))

        @contextlib.contextmanager
        def stream(s: Any):
            yield s

        @contextlib.contextmanager
        def graph(g: FakeGraph):
            outer.capturing = g
            outer.calls.append("graph.begin")
            try:
                yield g
            finally:
                outer.capturing = None

        def synchronize(device: Any = None) -> None:
            outer.calls.append("cuda.synchronize")

        def current_stream(device: Any = None) -> Any:
            return types.SimpleNamespace(wait_stream=lambda other: None)

        self.cuda = types.SimpleNamespace(
            is_available=lambda: gpus > 0, device_count=lambda: gpus, get_device_name=lambda d=None: name,
            set_device=lambda d: outer.calls.append(f"set_device {d}"), current_stream=current_stream,
            Stream=lambda device=None: types.SimpleNamespace(wait_stream=lambda other: None), stream=stream,
            synchronize=synchronize, Event=lambda enable_timing=False: FakeEvent(outer, enable_timing),
            CUDAGraph=lambda: FakeGraph(outer), graph=graph)

    def from_numpy(self, array: np.ndarray) -> FakeTensor:
        return FakeTensor(array)

    def set_num_threads(self, n: int) -> None:
        self.threads = n

    def get_num_threads(self) -> int:
        return self.threads

    def set_grad_enabled(self, on: bool) -> None:
        self.calls.append(f"grad {on}")
