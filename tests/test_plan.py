"""Plans and targets: validation errors name file and key; the matrix expands as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config.plan import QUICKSTART_PLAN, expand_jobs, load_plan
from harness.config.targets import LOCAL, load_target, load_targets, parse_target_spec
from harness.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
ONNX_HEAD = b"\x08\x07\x12\x04test"  # looks like an ONNX ModelProto to the host's sniff
TFLITE_HEAD = b"\x1c\x00\x00\x00TFL3" + b"\x00" * 24


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


@pytest.fixture
def models(tmp_path):
    (tmp_path / "a.onnx").write_bytes(ONNX_HEAD)
    (tmp_path / "b.tflite").write_bytes(TFLITE_HEAD)
    return tmp_path


def plan_text(extra: str = "", backends: str = "") -> str:
    return f"""
name = "p"
[[models]]
path = "a.onnx"
tags = {{ precision = "fp32" }}
[[models]]
path = "b.tflite"
name = "bee"
tags = {{ precision = "int8" }}
{backends}
{extra}
"""


def test_matrix_by_format_and_settings_axes(models):
    path = write(models, "plan.toml", plan_text(backends="""
[backends.onnxruntime]
intra_op_threads = [1, 2]
providers = ["CPUExecutionProvider"]
[backends.litert]
threads = [1, 2, 4]
"""))
    plan = load_plan(path)
    jobs = expand_jobs(plan, {"local": LOCAL})
    got = sorted((j.model.name, j.backend, tuple(sorted(j.settings.items()))) for j in jobs)
    assert got == sorted([
        ("a", "onnxruntime", (("intra_op_threads", 1), ("providers", ["CPUExecutionProvider"]))),
        ("a", "onnxruntime", (("intra_op_threads", 2), ("providers", ["CPUExecutionProvider"]))),
        ("bee", "litert", (("threads", 1),)),
        ("bee", "litert", (("threads", 2),)),
        ("bee", "litert", (("threads", 4),)),
    ])
    assert len({j.key for j in jobs}) == 5  # distinct, stable identities
    assert [j.key for j in expand_jobs(load_plan(path), {"local": LOCAL})] == [j.key for j in jobs]


def test_exclude_and_include_rules(models):
    path = write(models, "plan.toml", plan_text(backends="""
[backends.litert]
threads = [1, 2, 4]
[backends.onnxruntime]
intra_op_threads = 1
""", extra="""
[[exclude]]
backend = "litert"
threads = 4
[[exclude]]
"tags.precision" = "fp32"
[[include]]
model = "bee"
backend = "litert"
threads = 8
xnnpack = false
"""))
    jobs = expand_jobs(load_plan(path), {"local": LOCAL})
    got = sorted((j.model.name, j.backend, j.settings.get("threads")) for j in jobs)
    assert got == [("bee", "litert", 1), ("bee", "litert", 2), ("bee", "litert", 8)]


def test_model_paths_resolve_relative_to_the_plan(models, tmp_path, monkeypatch):
    path = write(models, "plan.toml", plan_text())
    monkeypatch.chdir("/")
    plan = load_plan(path)
    assert plan.models[0].path == models / "a.onnx"
    assert len(plan.models[0].sha256) == 64


@pytest.mark.parametrize("text, where", [
    ('name = "p"\nmodels = []\n', "models: the plan names no models"),
    ('[[models]]\npath = "a.onnx"\nbogus = 1\n', "models[0].bogus: unknown key"),
    ('[[models]]\npath = "a.onnx"\n[policy]\nwarmup = "sometimes"\n', "policy.warmup"),
    ('[[models]]\npath = "a.onnx"\n[policy]\ntimed = { count = "many" }\n', "policy.timed.count: expected an integer"),
    ('[[models]]\npath = "a.onnx"\n[policy.timeouts]\nwarmup = 3\n', "policy.timeouts.warmup: unknown key"),
    ('[[models]]\npath = "a.onnx"\n[policy.timeouts]\nload_s = 0\n', "policy.timeouts.load_s: must be > 0"),
    ('[[models]]\npath = "a.onnx"\n[backends.tensorflow]\nx = 1\n', "backends.tensorflow: unknown backend"),
    ('[[models]]\npath = "a.onnx"\n[backends.onnxruntime]\nthreads = 2\n', "unknown setting 'threads' for backend onnxruntime"),
    ('[[models]]\npath = "a.onnx"\n[backends.litert]\nthreads = "two"\n', "setting 'threads' must be int"),
    ('[[models]]\npath = "missing.onnx"\n', "models[0].path: model file not found"),
    ('[[models]]\npath = "a.onnx"\n[[exclude]]\ncolour = "red"\n', "exclude[0].colour: unknown key"),
    ('targets = "local"\n[[models]]\npath = "a.onnx"\n', "targets: expected a list"),
    ('[[models]]\npath = "a.onnx"\n[models.inputs]\nshapes = { x = [1, -3] }\n', "models[0].inputs.shapes.x"),
    ('[[models]\npath = "a.onnx"\n', "invalid TOML"),
])
def test_bad_plans_name_file_and_key(models, text, where):
    path = write(models, "plan.toml", text)
    with pytest.raises(ConfigError) as info:
        load_plan(path)
    message = str(info.value)
    assert str(path) in message and where in message
    assert "\n" not in message


def test_non_model_files_are_refused_before_running(models):
    (models / "empty.onnx").write_bytes(b"")
    (models / "text.tflite").write_text("this is not a flatbuffer at all")
    (models / "html.onnx").write_text("<html>404</html>")
    (models / "model.pth").write_bytes(b"PK\x03\x04")
    (models / "pickle.pt").write_bytes(b"\x80\x02}q\x00.")  # a torch.save pickle, not an archive
    for name, why in [("empty.onnx", "empty"), ("text.tflite", "not a TFLite model"),
                      ("html.onnx", "does not look like an ONNX model"), ("model.pth", "unknown model format"),
                      ("pickle.pt", "not a PyTorch archive")]:
        path = write(models, "plan.toml", f'[[models]]\npath = "{name}"\n')
        with pytest.raises(ConfigError, match=why):
            load_plan(path)


def test_unknown_target_in_plan(models):
    path = write(models, "plan.toml", 'targets = ["jetson-x"]\n[[models]]\npath = "a.onnx"\n')
    with pytest.raises(ConfigError, match=r"targets: unknown target 'jetson-x' \(known: local\)"):
        expand_jobs(load_plan(path), {"local": LOCAL})


def test_quickstart_plan_is_valid():
    if not (QUICKSTART_PLAN.parent / "models" / "digits_cnn_fp32.onnx").exists():
        pytest.skip("sample models not built")
    jobs = expand_jobs(load_plan(QUICKSTART_PLAN), {"local": LOCAL})
    assert {j.backend for j in jobs} == {"onnxruntime", "litert"}
    assert {j.model.tags["precision"] for j in jobs} == {"fp32", "int8"}


# ------------------------------------------------------------------ targets
def test_shipped_target_files_are_valid():
    targets = load_targets([ROOT / "targets"])
    assert {"local", "jetson-orin-nano", "raspberry-pi-5", "coral-dev-board", "pixel-8", "macbook-m3"} <= set(targets)
    assert targets["jetson-orin-nano"].transport == "ssh"
    assert targets["jetson-orin-nano"].user == "nvidia" and targets["jetson-orin-nano"].port == 22
    assert targets["pixel-8"].transport == "adb"
    assert targets["raspberry-pi-5"].facts["price_usd"] == 80
    # targets/local.toml says the same as the built-in default
    local_file = load_target(ROOT / "targets" / "local.toml")
    assert (local_file.name, local_file.transport, local_file.tags) == (LOCAL.name, LOCAL.transport, LOCAL.tags)


@pytest.mark.parametrize("text, where", [
    ('transport = "serial"\n', "transport: must be one of local, ssh, adb"),
    ('transport = "ssh"\n', "host: an ssh target needs host"),
    ('transport = "ssh"\nhost = "h"\nport = 70000\n', "port: must be 1-65535"),
    ('transport = "ssh"\nhost = "h"\n[ssh]\npassword = "hunter2"\n', "ssh.password: passwords do not belong"),
    ('[facts]\nprice = 3\n', "facts.price: unknown key"),
    ('[facts]\ntops = "lots"\n', "facts.tops: expected an integer or a number"),
    ('colour = "red"\n', "colour: unknown key"),
])
def test_bad_targets_name_file_and_key(tmp_path, text, where):
    path = write(tmp_path, "t.toml", text)
    with pytest.raises(ConfigError) as info:
        load_target(path)
    assert str(path) in str(info.value) and where in str(info.value)


def test_secrets_never_reach_public_dict(tmp_path):
    path = write(tmp_path, "t.toml", 'transport = "ssh"\nhost = "h"\n[ssh]\npassword_env = "LAB_PW"\n')
    target = load_target(path)
    assert target.ssh.password_env == "LAB_PW"
    assert "LAB_PW" not in str(target.public_dict())


def test_inline_target_specs():
    t = parse_target_spec("ssh://pi@10.0.0.5:2222", identity="k")
    assert (t.transport, t.user, t.host, t.port, t.ssh.identity_file) == ("ssh", "pi", "10.0.0.5", 2222, "k")
    t = parse_target_spec("ssh://[::1]:2200")
    assert (t.host, t.port) == ("::1", 2200)
    assert parse_target_spec("local") is LOCAL
    with pytest.raises(ConfigError, match="--target"):
        parse_target_spec("telnet://x")
