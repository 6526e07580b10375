"""The registries: a backend declares itself in its own class, and the plan defaults, the settings checks on
the host and on the device, and doctor's remedies derive from that one declaration; the transports are named
once too."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import hilbench_agent
import pytest
from hilbench_agent.backends import (
    ALIASES,
    BACKENDS,
    DEFAULT_BACKEND,
    MODEL_SUFFIXES,
    SETTINGS,
    canonical_name,
    validate_settings,
)
from hilbench_agent.backends.base import COMMON_SETTINGS, Backend, Setting
from support.helpers import missing_in_ci, pyenv_python, run_agent, write_agent

from harness.config.plan import expand_jobs, load_plan
from harness.config.targets import LOCAL, TRANSPORTS, load_targets
from harness.errors import ConfigError
from harness.transport import TRANSPORT_CLASSES, transport_class

MODELS = Path(__file__).resolve().parents[1] / "harness" / "samples" / "models"


def test_every_backend_module_is_registered_under_its_own_name():
    folder = Path(hilbench_agent.__file__).parent / "backends"
    modules = {p.stem for p in folder.glob("*.py") if p.stem not in ("__init__", "base")}
    assert {cls.__module__.rpartition(".")[2] for cls in BACKENDS.values()} == modules
    for name, cls in BACKENDS.items():
        assert issubclass(cls, Backend) and cls.name == name
        assert all(isinstance(s, Setting) for s in cls.settings.values()), name
        assert set(cls.default_for) <= set(cls.model_suffixes or ()), name
        # each backend's own settings plus those every backend takes (require_offload)
        assert SETTINGS[name] == dict(COMMON_SETTINGS, **cls.settings) and MODEL_SUFFIXES[name] == cls.model_suffixes
    assert ALIASES == {"ort": "onnxruntime", "tflite": "litert", "trt": "tensorrt", "torch": "pytorch"}
    assert canonical_name("trt") == "tensorrt" and canonical_name("litert") == "litert"


def test_each_suffix_has_one_default_backend():
    claims: dict[str, list[str]] = {}
    for name, cls in BACKENDS.items():
        for suffix in cls.default_for:
            claims.setdefault(suffix, []).append(name)
    assert {s: n for s, n in claims.items() if len(n) > 1} == {}
    assert DEFAULT_BACKEND[".onnx"] == "onnxruntime" and DEFAULT_BACKEND[".tflite"] == "litert"
    assert DEFAULT_BACKEND[".engine"] == "tensorrt" and DEFAULT_BACKEND[".mlpackage"] == "coreml"


@pytest.mark.parametrize("backend, settings, problem", [
    ("onnxruntime", {"graph_optimization": "max"}, "must be one of disable, basic, extended, all, not 'max'"),
    ("ort", {"intra_op_threads": -4}, "must be at least 0, not -4"),
    ("litert", {"threads": -2}, "must be at least -1"),
    ("litert", {"xnnpack": 1}, "must be bool, not int"),
    ("onnxruntime", {"intra_op_threads": True}, "must be int, not a boolean"),
    ("coreml", {"compute_units": "NE"}, "must be one of ALL, CPU_ONLY"),
    ("tensorrt", {"workspace_mb": 0}, "must be at least 1"),
    ("synthetic", {"latency_ms": -1}, "must be at least 0"),
    ("litert", {"thread": 2}, "unknown setting 'thread' for backend litert"),
])
def test_settings_are_checked_against_the_one_schema(backend, settings, problem):
    problems = validate_settings(backend, settings)
    assert len(problems) == 1 and problem in problems[0]


def test_good_settings_pass():
    assert validate_settings("onnxruntime", {"graph_optimization": "basic", "intra_op_threads": 0,
                                             "execution_mode": "parallel"}) == []
    assert validate_settings("litert", {"threads": -1, "xnnpack": False}) == []
    assert validate_settings("synthetic", {"latency_ms": 0.5, "seed": 3}) == []


def _plan(tmp_path: Path, body: str) -> Path:
    shutil.copy(MODELS / "digits_cnn_fp32.onnx", tmp_path / "m.onnx")
    path = tmp_path / "plan.toml"
    path.write_text('models = [{ path = "m.onnx" }]\n' + textwrap.dedent(body), encoding="utf-8")
    return path


@pytest.mark.parametrize("body, where", [
    ('[backends.onnxruntime]\ngraph_optimization = "max"\n', "backends.onnxruntime: setting 'graph_optimization'"),
    ('[backends.ort]\nintra_op_threads = [1, -4]\n', "backends.ort: setting 'intra_op_threads' must be at least 0"),
])
def test_a_plan_with_a_bad_setting_value_fails_when_it_loads(tmp_path, body, where):
    path = _plan(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_plan(path)
    assert str(info.value).startswith(f"{path}: {where}")


def test_the_default_backend_of_a_model_comes_from_the_registry(tmp_path):
    plan = load_plan(_plan(tmp_path, ""))
    targets = load_targets([])
    (job,) = expand_jobs(plan, targets)
    assert job.backend == DEFAULT_BACKEND[".onnx"]


def test_target_runtimes_are_backend_names(tmp_path):
    (tmp_path / "a.toml").write_text('transport = "local"\nruntimes = ["tflite", "ort"]\n', encoding="utf-8")
    assert load_targets([tmp_path])["a"].runtimes == ("litert", "onnxruntime")
    (tmp_path / "a.toml").write_text('transport = "local"\nruntimes = ["tensorflow"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"a.toml: runtimes: unknown runtime 'tensorflow' \(known: coreml, "):
        load_targets([tmp_path])


@pytest.mark.slow
def test_adding_a_backend_is_one_new_file(tmp_path):
    """A copy of the agent with one more file in backends/: the host's plan checks and defaults know it."""
    agent = tmp_path / "hilbench_agent"
    shutil.copytree(Path(hilbench_agent.__file__).parent, agent, ignore=shutil.ignore_patterns("__pycache__"))
    (agent / "backends" / "echo.py").write_text(textwrap.dedent('''
        from hilbench_agent.backends.base import Backend, Setting


        class EchoBackend(Backend):
            name = "echo"
            aliases = ("ech",)
            model_suffixes = (".echo",)
            default_for = (".echo",)
            install_hint = "pip install echo-runtime"
            settings = {"gain": Setting((int,), "how loud", minimum=1)}

            @classmethod
            def probe(cls):
                return {"available": False, "reason": "not here"}
        '''), encoding="utf-8")
    script = textwrap.dedent('''
        from hilbench_agent.backends import DEFAULT_BACKEND, canonical_name, validate_settings
        from harness.doctor.checks import _install_hints
        print(DEFAULT_BACKEND[".echo"], canonical_name("ech"), _install_hints(["ech"]))
        print(validate_settings("echo", {"gain": 0}))
        print(validate_settings("echo", {"gain": 2}))
        ''')
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True,
                         env={"PYTHONPATH": f"{tmp_path}{':'}{root}", "PATH": "/usr/bin:/bin"}).stdout.splitlines()
    assert out == ["echo echo pip install echo-runtime", "[\"setting 'gain' must be at least 1, not 0\"]", "[]"]


@pytest.mark.slow
def test_the_agent_under_python37_refuses_a_bad_setting_from_the_same_schema(tmp_path):
    python = pyenv_python("3.7")
    if python is None:
        missing_in_ci("the agent under Python 3.7", "no such pyenv interpreter")
    job = {"v": 1, "job_id": "t1", "backend": "synthetic", "settings": {"latency_ms": -1},
           "warmup": {"count": 1}, "timed": {"count": 1}}
    code, msgs, err = run_agent(python, write_agent(tmp_path), job)
    error = [m for m in msgs if m.get("type") == "error"]
    assert error and error[0]["category"] == "backend", (msgs, err)
    assert "setting 'latency_ms' must be at least 0, not -1" in error[0]["message"]


def test_transports_are_named_once():
    # A target file may name every transport but the fake one, which a test builds in Python with its script.
    assert set(TRANSPORTS) | {"fake"} == set(TRANSPORT_CLASSES)
    for name in TRANSPORT_CLASSES:
        assert transport_class(replace(LOCAL, name=name, transport=name)).name == name


def test_every_transport_a_target_may_name_has_a_doctor():
    from harness.doctor.checks import DOCTORS

    assert set(DOCTORS) == set(TRANSPORTS)
