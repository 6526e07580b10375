"""The Edge TPU rules (issue 11, item 3): on the host before anything is shipped (plan expansion), in the agent's
LiteRT backend (real LiteRT, and under Python 3.7), and what an Edge TPU run records.

No Edge TPU and no libedgetpu here. The compiled models are our own fixtures in the Edge TPU compiler's format
(tests/support/edgetpu_model.py: a stand-in payload in place of the TPU executable). The delegate is a STAND-IN
shaped like libedgetpu (``StandinLiteRT`` below: its ``load_delegate`` takes the library name and options the real one
would, and the interpreter runs the model on LiteRT's CPU kernels); the sysfs tree, dpkg status file and the
library's ``edgetpu_version()`` are stand-ins too. The missing-library path uses the real LiteRT loader."""

from __future__ import annotations

import ctypes.util
import gc
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hilbench_agent import edgetpu
from hilbench_agent.backends import litert
from hilbench_agent.backends.litert import LiteRTBackend
from hilbench_agent.protocol import AgentError
from support.edgetpu_model import write

from harness.cli import main
from harness.config.plan import expand_jobs, load_plan
from harness.config.targets import LOCAL
from harness.errors import ConfigError

MODELS = Path(__file__).resolve().parents[1] / "harness" / "samples" / "models"
PLAIN = MODELS / "digits_cnn_int8.tflite"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    pytest.importorskip("ai_edge_litert")  # its schema bindings write the fixture
    return write(tmp_path_factory.mktemp("edgetpu"))[0]


def _plan(tmp_path: Path, model: Path, settings: str) -> Path:
    path = tmp_path / "plan.toml"
    path.write_text(f'name = "etpu"\n[[models]]\npath = "{model}"\nbackends = ["litert"]\n'
                    f"[backends.litert]\n{settings}\n[policy]\ntimed = {{ count = 5 }}\ntelemetry = false\n")
    return path


# ---------------------------------------------------------------- host pre-check


@pytest.mark.parametrize("which, settings, needle", [
    ("compiled", "", 'runs only with its delegate: set delegate = "libedgetpu.so.1"'),
    ("plain", 'delegate = "libedgetpu.so.1"', "was not compiled for the Edge TPU"),
    ("plain", 'delegate = "edgetpu"', "set allow_cpu_fallback = true"),
    ("plain", 'delegate = ["/usr/lib/libedgetpu.so.1", "libother.so"]', "edgetpu_compiler digits_cnn_int8.tflite"),
])
def test_the_host_refuses_before_anything_is_shipped(tmp_path, compiled, capsys, which, settings, needle):
    model = compiled if which == "compiled" else PLAIN
    plan = _plan(tmp_path, model, settings)
    with pytest.raises(ConfigError) as err:
        expand_jobs(load_plan(plan), {"local": LOCAL})
    assert needle in str(err.value) and model.name in str(err.value)
    store = tmp_path / "store"
    assert main(["run", str(plan), "--store", str(store), "--quiet"]) == 1
    out = capsys.readouterr()
    assert len(out.err.strip().splitlines()) == 1 and needle in out.err
    assert not store.exists()  # nothing half-written


@pytest.mark.parametrize("which, settings", [
    ("compiled", 'delegate = "libedgetpu.so.1"'),
    ("compiled", 'delegate = "edgetpu"'),
    ("plain", 'delegate = "libedgetpu.so.1"\nallow_cpu_fallback = true'),
    ("plain", ""),
])
def test_the_host_lets_allowed_combinations_through(tmp_path, compiled, which, settings):
    jobs = expand_jobs(load_plan(_plan(tmp_path, compiled if which == "compiled" else PLAIN, settings)),
                       {"local": LOCAL})
    assert len(jobs) == 1


def test_the_name_in_metadata_is_not_an_op(tmp_path):
    """The host's quick scan finds the op's name; the flatbuffer then says it is no operator."""
    from support.edgetpu_model import build

    pytest.importorskip("ai_edge_litert")
    model = tmp_path / "mention.tflite"
    model.write_bytes(build(compiled=False, description="to be compiled: edgetpu-custom-op later"))
    assert edgetpu.is_compiled(str(model))  # the scan alone would be fooled
    with pytest.raises(ConfigError, match="was not compiled for the Edge TPU"):
        expand_jobs(load_plan(_plan(tmp_path, model, 'delegate = "edgetpu"')), {"local": LOCAL})


# ---------------------------------------------------------------- the agent's LiteRT backend


def test_the_agent_refuses_a_compiled_model_without_the_delegate(compiled):
    pytest.importorskip("ai_edge_litert")
    with pytest.raises(AgentError) as err:
        LiteRTBackend().load(str(compiled), {})
    assert err.value.category == "model" and 'delegate = "libedgetpu.so.1"' in str(err.value)
    with pytest.raises(AgentError) as err:
        LiteRTBackend().load(str(PLAIN), {"delegate": "edgetpu"})
    assert err.value.category == "model" and "allow_cpu_fallback" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # LiteRT's Delegate.__del__ after a failed load
def test_a_device_without_libedgetpu_names_the_package(compiled):
    """The real LiteRT delegate loader, on a machine without the Edge TPU runtime."""
    pytest.importorskip("ai_edge_litert")
    if ctypes.util.find_library("edgetpu"):
        pytest.skip("this machine has libedgetpu: the missing-library path cannot be shown here")
    for model, settings in ((compiled, {"delegate": "libedgetpu.so.1"}),
                            (PLAIN, {"delegate": "edgetpu", "allow_cpu_fallback": True})):
        with pytest.raises(AgentError) as err:
            LiteRTBackend().load(str(model), settings)
        text = str(err.value)
        assert err.value.category == "backend" and "\n" not in text
        assert "cannot load delegate libedgetpu.so.1" in text and "install libedgetpu1-std" in text
        del err
        gc.collect()  # LiteRT's half-made Delegate complains in __del__: let it do so under this test's filter


class StandinLiteRT:
    """A STAND-IN for LiteRT with an Edge TPU: ``load_delegate`` accepts libedgetpu's names and options and returns a
    token; the interpreter is the real LiteRT one, run without that token (so on the CPU)."""

    def __init__(self) -> None:
        from ai_edge_litert import interpreter as real

        self.real = real
        self.loaded: list[tuple[str, dict]] = []

    def load_delegate(self, library, options=None):
        self.loaded.append((library, dict(options or {})))
        return ("stand-in delegate", library)

    def Interpreter(self, **kwargs):  # noqa: N802 - LiteRT's name
        delegates = kwargs.pop("experimental_delegates", [])
        assert delegates == [("stand-in delegate", self.loaded[-1][0])]
        return self.real.Interpreter(**kwargs)


class StandinLibedgetpu:
    """A STAND-IN for ctypes' view of libedgetpu.so.1: only ``edgetpu_version()`` (edgetpu_c.h)."""

    opened: list[str] = []

    def __init__(self, name: str) -> None:
        StandinLibedgetpu.opened.append(name)

        def edgetpu_version():
            return b"BuildLabel(stand-in), RuntimeVersion(14)"

        self.edgetpu_version = edgetpu_version


def _standin_device(tmp_path: Path, clock: str = "max") -> None:
    apex = tmp_path / "sys" / "class" / "apex" / "apex_0"
    apex.mkdir(parents=True)
    for name, ids in (("2-1", ("18d1", "9302")), ("2-2", ("1d6b", "0003")), ("3-1", ("1a6e", "089a"))):
        dev = tmp_path / "sys" / "bus" / "usb" / "devices" / name
        dev.mkdir(parents=True)
        (dev / "idVendor").write_text(ids[0] + "\n")
        (dev / "idProduct").write_text(ids[1] + "\n")
    (tmp_path / "status").write_text(
        "Package: libc6\nStatus: install ok installed\nVersion: 2.36\n\n"
        "Package: libedgetpu1-std\nStatus: deinstall ok config-files\nVersion: 16.0\n\n"
        f"Package: libedgetpu1-{clock}\nStatus: install ok installed\nArchitecture: arm64\nVersion: 16.0\n")


def test_an_edge_tpu_run_records_interface_runtime_and_clock(tmp_path, monkeypatch):
    pytest.importorskip("ai_edge_litert")
    standin = StandinLiteRT()
    monkeypatch.setattr(litert, "_import_interpreter", lambda: (standin, "ai-edge-litert", "stand-in"))
    monkeypatch.setattr(edgetpu.ctypes, "CDLL", StandinLibedgetpu)
    _standin_device(tmp_path)
    monkeypatch.setattr(edgetpu, "SYS_ROOT", str(tmp_path))
    monkeypatch.setattr(edgetpu, "DPKG_STATUS", str(tmp_path / "status"))
    backend = LiteRTBackend()
    backend.load(str(PLAIN), {"delegate": "edgetpu", "allow_cpu_fallback": True, "delegate_options": {"device": "usb"}})
    assert standin.loaded == [(edgetpu.library_name(), {"device": "usb"})]  # the alias, resolved for this platform
    spec = backend.input_specs()[0]
    backend.set_inputs({spec.name: np.zeros(spec.shape, np.int8)})
    backend.invoke()
    assert backend.outputs()[0].shape == (1, 10)
    assert backend.effective_settings()["edgetpu"] == {
        "compiled": False, "interface": "pcie+usb", "pcie_devices": 1, "usb_devices": 2,
        "runtime_version": "BuildLabel(stand-in), RuntimeVersion(14)", "clock": "max",
        "runtime_package": "libedgetpu1-max 16.0", "device": "usb", "allow_cpu_fallback": True}
    assert StandinLibedgetpu.opened[-1] == edgetpu.library_name()
    # Without the Edge TPU delegate nothing about it is recorded.
    monkeypatch.undo()
    other = LiteRTBackend()
    other.load(str(PLAIN), {})
    assert "edgetpu" not in other.effective_settings()


def test_nothing_readable_is_none(tmp_path, monkeypatch):
    monkeypatch.setattr(edgetpu, "SYS_ROOT", str(tmp_path / "none"))
    monkeypatch.setattr(edgetpu, "DPKG_STATUS", str(tmp_path / "none" / "status"))
    info = edgetpu.record("/nonexistent/libedgetpu.so.1", None, True)
    assert info == {"compiled": True, "interface": None, "pcie_devices": 0, "usb_devices": 0,
                    "runtime_version": None, "clock": None, "runtime_package": None}


def test_edgetpu_delegate_names():
    for name in ("edgetpu", "libedgetpu.so.1", "/usr/lib/aarch64-linux-gnu/libedgetpu.so.1", "libedgetpu.1.dylib",
                 "edgetpu.dll", "EdgeTPU"):
        assert edgetpu.is_edgetpu_delegate(name), name
    for name in (None, "", "libxnnpack.so", "/opt/libedgetpux/libgpu.so"):
        assert not edgetpu.is_edgetpu_delegate(name), name
    assert edgetpu.library_name("linux") == "libedgetpu.so.1"
    assert edgetpu.library_name("darwin") == "libedgetpu.1.dylib"
    assert edgetpu.library_name("win32") == "edgetpu.dll"


def test_summary_counts_and_caps_the_cpu_ops():
    ops = ["QUANTIZE", "edgetpu-custom-op", "DEQUANTIZE", "edgetpu-custom-op"] + [f"OP{i}" for i in range(40)]
    got = edgetpu.summary(ops)
    assert got["compiled"] and got["ops_tpu"] == 2 and got["ops_cpu"] == 42
    assert got["cpu_ops"][:3] == ["QUANTIZE", "DEQUANTIZE", "OP0"] and len(got["cpu_ops"]) == 32
    assert edgetpu.summary(["ADD", "ADD"]) == {"compiled": False, "ops_tpu": 0, "ops_cpu": 2, "cpu_ops": ["ADD"]}


_PY37 = r"""
import sys
assert sys.version_info[:2] == (3, 7), sys.version
from hilbench_agent import edgetpu
from hilbench_agent.backends.litert import LiteRTBackend
from hilbench_agent.protocol import AgentError
compiled, plain, root = sys.argv[1:4]
print(edgetpu.is_compiled(compiled), edgetpu.is_compiled(plain))
print(edgetpu.refusal("c.tflite", edgetpu.is_compiled(compiled), None, False).split(" (")[0])
for model, settings in ((compiled, {"delegate": "libedgetpu.so.1"}), (plain, {"delegate": "edgetpu"})):
    try:
        LiteRTBackend().load(model, settings)
    except AgentError as exc:
        print(exc.category, str(exc).split(" (")[0].split(":")[0])
edgetpu.SYS_ROOT, edgetpu.DPKG_STATUS = root, root + "/status"
print(edgetpu.interface(), edgetpu.runtime_package())
"""


@pytest.mark.slow
def test_the_rules_on_python37(tmp_path, compiled):
    """The agent side runs on a device's Python 3.7 (no LiteRT needed to refuse: the rules come first). This
    interpreter has no LiteRT, so a job the rules let through stops at the runtime check."""
    from support.helpers import missing_in_ci, pyenv_python

    py37 = pyenv_python("3.7")
    if py37 is None:
        missing_in_ci("the Edge TPU rules under Python 3.7", "no Python 3.7 interpreter here")
    _standin_device(tmp_path, clock="std")
    plain = tmp_path / "plain.tflite"
    plain.write_bytes(PLAIN.read_bytes())
    agent_dir = Path(__file__).resolve().parents[1] / "device_agents"
    proc = subprocess.run([py37, "-c", _PY37, str(compiled), str(plain), str(tmp_path)], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(agent_dir),
                                                          PYTHONDONTWRITEBYTECODE="1"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "True False",
        "c.tflite is compiled for the Edge TPU",
        "backend LiteRT is not installed on this device",  # the rules let it through; this Python has no LiteRT
        "model plain.tflite was not compiled for the Edge TPU",
        "('pcie+usb', 1, 2) ('std', 'libedgetpu1-std 16.0')",
    ]


@pytest.mark.hardware("edgetpu")
def test_a_real_edge_tpu_runs_a_compiled_model_and_records_it():
    """On a machine with a Coral (USB accelerator, or the PCIe/M.2 card) and libedgetpu: a model compiled by
    edgetpu_compiler, named by $HILBENCH_EDGETPU_MODEL (e.g. Coral's test_data/mobilenet_v2_1.0_224_quant_edgetpu.tflite),
    runs with the delegate and the run records the interface, the runtime version and the clock."""
    pytest.importorskip("ai_edge_litert")
    model = os.environ.get("HILBENCH_EDGETPU_MODEL")
    assert model and Path(model).is_file(), "set HILBENCH_EDGETPU_MODEL to a .tflite compiled by edgetpu_compiler"
    from harness.prep.inspect import inspect_model

    assert inspect_model(Path(model))["edgetpu"]["compiled"], f"{model} is not compiled for the Edge TPU"
    backend = LiteRTBackend()
    backend.load(model, {"delegate": "edgetpu"})
    from hilbench_agent.backends.base import generate_inputs

    backend.set_inputs(generate_inputs(backend.input_specs(), seed=0))
    backend.invoke()
    assert backend.outputs()
    info = backend.effective_settings()["edgetpu"]
    assert info["compiled"] is True and info["interface"] in ("usb", "pcie", "pcie+usb")
    assert info["runtime_version"], "libedgetpu did not say its version"
    backend.close()
