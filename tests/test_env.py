"""python -m parity.check --env: the real CPU stack of this machine, the JSON, and broken states
faked on PYTHONPATH and PATH (a package that raises or hangs on import, two packages providing
one import, an onnxruntime whose CUDA provider cannot start, a GPU beside a CPU build of torch):
each gives its one problem line with a fix, and the rest of the report still shows."""

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from conftest import ROOT

from lenet_spec import _probe, env

pytestmark = pytest.mark.slow  # every report imports torch, paddle and onnxruntime, each in its own process


def cpu_stack() -> bool:
    """This machine as the project's: no GPU, and CPU builds of torch, paddle and onnxruntime."""
    import onnxruntime
    import paddle
    import torch

    return not (
        env.machine_gpus()["found"] or torch.version.cuda or paddle.is_compiled_with_cuda() or "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    )


on_the_cpu_stack = pytest.mark.skipif("not cpu_stack()", reason="the report of a machine with a GPU or a CUDA build says other things")


def run_env(*args, extra_path=None, pythonpath=None, data=True):
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LENET_DATA")}
    if data and os.environ.get("LENET_DATA"):
        environ["LENET_DATA"] = os.environ["LENET_DATA"]
    if pythonpath:
        environ["PYTHONPATH"] = str(pythonpath)
    if extra_path:
        environ["PATH"] = f"{extra_path}{os.pathsep}{environ['PATH']}"
    return subprocess.run([sys.executable, "-m", "parity.check", "--env", *args], capture_output=True, text=True, cwd=ROOT, env=environ, timeout=300)


def fake_package(root: Path, name: str, init: str, dists: dict[str, str] = {}) -> Path:
    """`name`/__init__.py holding `init` under `root`, and a dist-info for each of `dists` (name -> version)."""
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / "__init__.py").write_text(init)
    for dist, ver in dists.items():
        info = root / f"{dist.replace('-', '_')}-{ver}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {ver}\n")
    return root


def problems(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("PROBLEM: ")]


@on_the_cpu_stack
def test_the_real_cpu_stack(mnist_test):
    import onnxruntime
    import paddle
    import torch

    proc = run_env()
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    lines = dict(line.split(None, 1) for line in out.splitlines()[1:] if line and not line.startswith(("note", "PROBLEM", "  fix", "0 problems")))
    assert lines["torch"].startswith(f"{torch.__version__} (torch {version('torch')}), CPU build")
    assert lines["paddle"].startswith(f"{paddle.__version__} (paddlepaddle {version('paddlepaddle')}), CPU build")
    assert lines["onnxruntime"].startswith(f"{onnxruntime.__version__} (onnxruntime {version('onnxruntime')}), CPU build; providers ")
    assert "CPU" in lines["onnxruntime"].split("providers ")[1].split(", ")
    for name in ("numpy", "onnx", "onnxscript", "paddle2onnx"):
        assert lines[name].startswith(f"{version(name)} ({name} {version(name)})")
    assert lines["GPU"].startswith("none found")
    assert f"mnist {Path(os.environ['LENET_DATA']) / 'mnist'}" in lines["data"]
    assert out.splitlines()[-1].startswith("0 problems; every package imported in its own process (")
    assert len(out.splitlines()) <= 25  # one screen
    assert not proc.stderr


@on_the_cpu_stack
def test_json_schema(tmp_path):
    proc = run_env("--json")
    report = json.loads(proc.stdout)
    assert set(report) == {"python", "gpus", "packages", "datasets", "problems", "notes", "probe_s"}
    assert report["python"]["executable"] == sys.executable and report["gpus"]["found"] == []
    assert set(report["packages"]) == set(env.PACKAGES) and set(report["datasets"]) == {"mnist", "fashion-mnist", "cifar10"}
    torch = report["packages"]["torch"]
    assert torch["installed"] == [f"torch {version('torch')}"] and torch["cuda"] is None and torch["gpus"] == [] and torch["import_s"] > 0
    assert report["packages"]["onnxruntime"]["providers"][-1] == "CPUExecutionProvider"
    assert all(set(p) == {"problem", "fix"} for p in report["problems"])
    assert proc.returncode == (1 if report["problems"] else 0)
    # --json PATH: the report as usual, and the same JSON in the file
    proc = run_env("--json", str(tmp_path / "env.json"))
    assert proc.stdout.startswith("lenet-parity: what this machine has") and set(json.loads((tmp_path / "env.json").read_text())) == set(report)


@on_the_cpu_stack
def test_a_package_that_raises_on_import_is_one_problem_and_hides_nothing(tmp_path):
    fake_package(tmp_path, "paddle", "raise RuntimeError('libpaddle.so: undefined symbol: cudnnCreate')\n")
    proc = run_env(pythonpath=tmp_path)
    assert proc.returncode == 1
    assert "paddle       BROKEN: RuntimeError: libpaddle.so: undefined symbol: cudnnCreate" in proc.stdout
    assert problems(proc.stdout) == ["PROBLEM: import paddle fails: RuntimeError: libpaddle.so: undefined symbol: cudnnCreate"]
    assert "  fix: reinstall it: pip install --force-reinstall --no-deps paddlepaddle" in proc.stdout
    import torch

    assert f"torch        {torch.__version__} (" in proc.stdout and "paddle2onnx  BROKEN: it imports paddle, which fails" in proc.stdout


@on_the_cpu_stack
def test_an_import_that_hangs_is_stopped(tmp_path, monkeypatch, capsys):
    fake_package(tmp_path, "onnxscript", "import time\ntime.sleep(600)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setattr(env, "PROBE_TIMEOUT_S", 20.0)
    assert env.env_main() == 1
    out = capsys.readouterr().out
    assert "onnxscript   BROKEN: import onnxscript did not finish in 20 s" in out
    assert problems(out) == ["PROBLEM: import onnxscript fails: import onnxscript did not finish in 20 s"]
    assert "numpy        " in out and "torch        " in out and "CPU build" in out


@on_the_cpu_stack
def test_both_paddle_packages_installed(tmp_path):
    paddle = version("paddlepaddle")
    fake_package(tmp_path, "unused", "", {"paddlepaddle-gpu": paddle})
    proc = run_env(pythonpath=tmp_path)
    assert proc.returncode == 1
    assert f"(paddlepaddle {paddle}, paddlepaddle-gpu {paddle}), CPU build" in proc.stdout
    assert problems(proc.stdout) == [
        "PROBLEM: paddlepaddle and paddlepaddle-gpu are both installed, and both provide `paddle` (the one installed last overwrote the other's files)"
    ]
    assert "  fix: pip uninstall -y paddlepaddle paddlepaddle-gpu, then install the one you want (docs/INSTALL-GPU.md)" in proc.stdout


FAKE_ORT_GPU = """\
__version__ = "1.26.0"


def get_available_providers():
    return ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def preload_dlls():
    print("Failed to load libcudnn.so.9: cannot open shared object file")  # goes to stderr, not into the report


class InferenceSession:  # as onnxruntime-gpu does without its CUDA libraries: falls back to the CPU
    def __init__(self, model, providers):
        self.model = model

    def get_providers(self):
        return ["CPUExecutionProvider"]
"""


@on_the_cpu_stack
def test_a_cuda_provider_listed_but_unusable(tmp_path):
    fake_package(tmp_path, "onnxruntime", FAKE_ORT_GPU, {"onnxruntime-gpu": "1.26.0"})
    (tmp_path / "onnxruntime" / "capi").mkdir()
    (tmp_path / "onnxruntime" / "capi" / "__init__.py").write_text("")
    (tmp_path / "onnxruntime" / "capi" / "build_and_package_info.py").write_text("package_name = 'onnxruntime-gpu'\ncuda_version = '12.8'\n")
    proc = run_env(pythonpath=tmp_path)
    assert proc.returncode == 1
    assert (
        f"onnxruntime  1.26.0 (onnxruntime {version('onnxruntime')}, onnxruntime-gpu 1.26.0), CUDA 12.8 build; providers Tensorrt, CUDA, CPU; CUDA session "
        f"FAILS"
    ) in proc.stdout
    found = problems(proc.stdout)
    assert "PROBLEM: onnxruntime 1.26.0 lists CUDAExecutionProvider but cannot start it (it fell back to the CPU)" in found
    assert "  fix: this machine has no GPU: pip uninstall -y onnxruntime-gpu && pip install onnxruntime (docs/INSTALL-GPU.md)" in proc.stdout
    assert any(p.startswith("PROBLEM: onnxruntime and onnxruntime-gpu are both installed") for p in found) and len(found) == 2
    assert "Failed to load" not in proc.stdout


def fake_nvidia_smi(folder: Path) -> Path:
    folder.mkdir()
    smi = folder / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-L" ]; then echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0f0e0d0c)"; exit 0; fi\n'
        'echo "| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |"\n'
    )
    smi.chmod(0o755)
    return folder


@on_the_cpu_stack
def test_a_gpu_beside_cpu_builds(tmp_path):
    import paddle
    import torch

    proc = run_env(extra_path=fake_nvidia_smi(tmp_path / "bin"))
    assert proc.returncode == 1
    assert "GPU          1: NVIDIA H100 80GB HBM3; driver 550.54.15, runs CUDA up to 12.4 [nvidia-smi]" in proc.stdout
    base = torch.__version__.split("+")[0]
    assert problems(proc.stdout) == [f"PROBLEM: this machine has a GPU but torch {torch.__version__} is a CPU build",
                                     f"PROBLEM: this machine has a GPU but paddle {paddle.__version__} is a CPU build (paddlepaddle)"]  # fmt: skip
    assert f"  fix: pip install --force-reinstall torch=={base} --index-url https://download.pytorch.org/whl/cu126 (docs/INSTALL-GPU.md)" in proc.stdout
    assert (
        f"  fix: pip uninstall -y paddlepaddle && python -m pip install paddlepaddle-gpu=={paddle.__version__} -i "
        f"https://www.paddlepaddle.org.cn/packages/stable/cu126/"
    ) in proc.stdout
    assert "note: onnxruntime runs exported files on the CPU only" in proc.stdout


def test_no_mnist_is_a_problem_with_its_fix():
    proc = run_env(data=False)
    if "data         mnist not found;" not in proc.stdout:
        pytest.skip("MNIST is in one of the default places on this machine")
    assert proc.returncode == 1 and "data         mnist not found;" in proc.stdout
    assert [p.split(" (")[0] for p in problems(proc.stdout)] == ["PROBLEM: no MNIST found"]
    assert "$LENET_DATA is not set" in proc.stdout and "  fix: set LENET_DATA to a folder holding mnist/" in proc.stdout


def test_a_bad_json_path_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    proc = run_env("--json", str(tmp_path / "file" / "env.json"))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("parity.check: error: --json ") and len(proc.stderr.splitlines()) == 1


def test_cuda_tags_follow_the_driver():
    assert env.cuda_tag("12.4") == "cu126" and env.cuda_tag("13.0") == "cu130" and env.cuda_tag(None) == "cu126"


def test_the_probe_writes_a_valid_onnx_file():
    import numpy as np
    import onnx
    import onnxruntime as ort

    model = _probe.relu_model()
    onnx.checker.check_model(onnx.load_from_string(model))
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    assert sess.run(None, {"x": np.array([[-1, 2, -3, 4]], np.float32)})[0].tolist() == [[0, 2, 0, 4]]
