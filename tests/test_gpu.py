"""--device gpu: without a GPU, every command that runs a model says so in the same one line,
whichever framework lacks it; parity.check's GPU comparison (parity/gpu.py) runs here with the
CPU in the GPU's place, and on a GPU for real (skipped without one)."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from conftest import ROOT

import lenet_torch.train
from lenet_spec import get_variant, init_params
from lenet_spec.cli import no_gpu
from lenet_spec import _probe, compare
from lenet_spec.compare import LAYER_TOL
from parity import gpu, report
from parity.cases import make_batches

pytestmark = pytest.mark.cross


def torch_has_gpu():
    import torch

    return torch.cuda.is_available()


def paddle_has_gpu():
    import paddle

    return paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0


def expected(framework: str) -> str:
    """The line for a framework that sees no GPU, from what the framework says of itself."""
    if framework == "torch":
        import torch

        return no_gpu("torch", torch.__version__, torch.version.cuda)
    if framework == "paddle":
        import paddle

        return no_gpu("paddle", paddle.__version__, paddle.version.cuda() if paddle.is_compiled_with_cuda() else None)
    import onnxruntime as ort

    return no_gpu(
        "onnxruntime", ort.__version__, None, f"onnxruntime {ort.__version__} has no CUDAExecutionProvider: it is the CPU package, not onnxruntime-gpu"
    )


needs_no_gpu = pytest.mark.skipif("torch_has_gpu() or paddle_has_gpu()", reason="this machine has a GPU")


def test_the_line_names_the_framework_the_build_and_where_to_look():
    assert no_gpu("torch", "2.13.0+cpu", None) == (
        "--device gpu: torch sees no CUDA GPU (torch 2.13.0+cpu is a CPU build); see what this machine has with `python -m parity.check --env`, or use "
        "--device cpu"
    )
    assert "(paddle 3.3.1 is built for CUDA 12.6 but cannot use a GPU here)" in no_gpu("paddle", "3.3.1", "12.6")


@needs_no_gpu
@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_train_and_evaluate(framework, tmp_path, capsys):
    from lenet_train.cli import evaluate_main, train_main

    assert train_main(framework, ["--device", "gpu", "--epochs", "1", "--limit", "64", "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == f"lenet_{framework}.train: error: {expected(framework)}\n"
    assert not (tmp_path / "run").exists()  # said before any work
    assert evaluate_main(framework, [str(tmp_path / "none.pt"), "--device", "gpu"]) == 2
    assert capsys.readouterr().err == f"lenet_{framework}.evaluate: error: {expected(framework)}\n"


@needs_no_gpu
def test_parity_check_names_each_framework(monkeypatch, capsys):
    from parity.check import main

    assert main(["--device", "gpu", "--variant", "lenet5"]) == 2
    assert capsys.readouterr().err == f"parity.check: error: {expected('torch')}\n"
    monkeypatch.setattr(lenet_torch.train, "gpu_problem", lambda: None)  # torch has one: paddle's turn
    assert main(["--device", "gpu", "--variant", "lenet5"]) == 2
    assert capsys.readouterr().err == f"parity.check: error: {expected('paddle')}\n"
    with pytest.raises(SystemExit) as stop:
        main(["--device", "gpu", "--train", "3"])
    assert stop.value.code == 2 and "--device gpu compares the forward and backward passes" in capsys.readouterr().err


@needs_no_gpu
def test_benchmarks_name_each_framework(tmp_path, capsys):
    from benchmarks.run import main

    for frameworks, first in (("torch,paddle", "torch"), ("paddle", "paddle")):
        assert main(["--device", "gpu", "--quick", "--frameworks", frameworks, "--json", str(tmp_path / "b.json")]) == 2
        assert capsys.readouterr().err == f"benchmarks: error: {expected(first)}\n"
    assert not (tmp_path / "b.json").exists()


def ort_has_cuda():
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


ort_cpu_package = pytest.mark.skipif("ort_has_cuda()", reason="onnxruntime has a CUDA provider here")


@ort_cpu_package
def test_verify_and_predict_with_onnxruntimes_cpu_package(tmp_path, capsys):
    from export.predict import main as predict_main
    from export.verify import main as verify_main

    model = tmp_path / "relu.onnx"
    model.write_bytes(_probe.relu_model())
    assert verify_main([str(model), "--device", "gpu"]) == 2
    assert capsys.readouterr().err == f"export.verify: error: {expected('onnxruntime')}\n"
    assert predict_main([str(model), str(tmp_path / "digit.png"), "--device", "gpu"]) == 2
    assert capsys.readouterr().err == f"export.predict: error: {expected('onnxruntime')}\n"


@ort_cpu_package
@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider' is not in available provider names")
def test_a_cuda_provider_that_cannot_start_is_not_a_silent_cpu_run(tmp_path, monkeypatch, capsys):
    """onnxruntime-gpu without its CUDA libraries lists the provider, then runs on the CPU without
    a word: faked here by listing it in the CPU package, whose sessions then take the CPU."""
    import onnxruntime as ort

    from export.runtime import RuntimeUnavailable, provider_of, session

    model = tmp_path / "relu.onnx"  # a graph of an op the exporters write, with an export's input (runtime.read_model checks both)
    image = onnx.helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, ["N", 1, 2, 2])
    logits = onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["N", 1, 2, 2])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["image"], ["logits"])], "relu", [image], [logits])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)], ir_version=10), model)
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "preload_dlls", lambda: print("preloading"), raising=False)
    with pytest.raises(RuntimeUnavailable) as e:
        session(model, "gpu")
    assert str(e.value) == no_gpu(
        "onnxruntime",
        ort.__version__,
        None,
        f"onnxruntime {ort.__version__} lists CUDAExecutionProvider but could not start it: no GPU, or the CUDA and cuDNN libraries it needs are not found",
    )
    assert provider_of(session(model, "auto")) == "CPUExecutionProvider"  # auto: the CPU is an answer
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("preloading") == 2  # preload_dlls ran before each CUDA session, its words on stderr


@pytest.mark.slow
@needs_no_gpu
def test_one_line_from_the_command_line():
    proc = subprocess.run([sys.executable, "-m", "lenet_paddle.train", "--device", "gpu", "--epochs", "1"], capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in proc.stderr.splitlines() if "ccache" not in line and "warnings.warn" not in line]
    assert proc.returncode == 2 and lines == [f"lenet_paddle.train: error: {expected('paddle')}"] and proc.stdout == ""


@pytest.mark.parametrize("name", ["lenet5", "lenet5-bn", "lenet-caffe-dropout"])
def test_the_gpu_comparison_runs_here_with_the_cpu_in_the_gpus_place(name):
    variant = get_variant(name)
    batches = make_batches(variant, 16, 0, None)
    for dtype in ("float32", "float64"):
        rows = {r.pair: r for r in gpu.run_device_case(variant, dtype, batches, 0, device="cpu")}
        assert list(rows) == ["torch gpu / paddle gpu", "torch gpu / torch cpu", "paddle gpu / paddle cpu"]
        for pair in ("torch gpu / torch cpu", "paddle gpu / paddle cpu"):  # one framework against itself: the same kernels, bit for bit
            assert rows[pair].layer_rel_diff == rows[pair].grad_rel_diff == 0.0 and rows[pair].argmax_agree == rows[pair].argmax_total == 16
        port = rows["torch gpu / paddle gpu"]
        assert 0 < port.layer_rel_diff <= LAYER_TOL[dtype] and port.worst_grad and np.isfinite(port.grad_rel_diff)
        assert all(r.passed and r.finite and r.layer_tol is None and report.format_gpu_row(r).endswith(" report") for r in rows.values())


def test_the_gpu_comparison_judges_once_its_tolerance_is_measured(monkeypatch):
    variant = get_variant("lenet5")
    batches = make_batches(variant, 16, 0, None)
    monkeypatch.setitem(compare.GPU_LAYER_TOL, "float32", 1e-5)
    monkeypatch.setitem(compare.GPU_GRAD_TOL, "float32", 2e-4)
    assert all(report.format_gpu_row(r).endswith(" PASS") for r in gpu.run_device_case(variant, "float32", batches, 0, device="cpu"))
    monkeypatch.setitem(compare.GPU_LAYER_TOL, "float32", 1e-9)
    port = gpu.run_device_case(variant, "float32", batches, 0, device="cpu")[0]
    assert not port.passed and port.problems[0].startswith(f"layer {port.worst_layer} differs by ") and report.format_gpu_row(port).endswith(" FAIL")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_without_a_tolerance_non_finite_values_and_float64_flips_still_fail(dtype):
    variant = get_variant("lenet-caffe")  # ReLU and max-pool
    batches = make_batches(variant, 16, 0, None)
    params = init_params(variant, 0)
    runs = [gpu.side_outputs(framework, "cpu", variant, dtype, params, batches, 0) for framework in ("torch", "paddle")]
    assert gpu.compare_sides(variant, dtype, "torch gpu / paddle gpu", *runs, batches).passed
    outputs, grads = runs[1][0]
    outputs["ip1"] = outputs["ip1"] + 1.0  # every ReLU unit on: a decision flip wherever the other side has it off
    r = gpu.compare_sides(variant, dtype, "torch gpu / paddle gpu", *runs, batches)
    assert r.layer_tol is None and r.decision_flips > 0 and r.passed == (dtype == "float32")  # float32 near-ties flip; float64 ones do not
    grads["conv1.weight"] = np.full_like(grads["conv1.weight"], np.nan)
    r = gpu.compare_sides(variant, dtype, "torch gpu / paddle gpu", *runs, batches)
    assert not r.passed and not r.finite and r.problems[0] == "outputs or gradients that are not finite"


@pytest.mark.skipif("not (torch_has_gpu() and paddle_has_gpu())", reason="needs a CUDA GPU that torch and paddle both see")
def test_parity_on_a_real_gpu(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "parity.check", "--device", "gpu", "--variant", "lenet5", "--batch", "32", "--json", str(tmp_path / "gpu.json")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("torch gpu / paddle gpu") == 2 and "TF32 off" in proc.stdout
    rows = json.loads((tmp_path / "gpu.json").read_text())
    assert len(rows) == 6 and all(r["finite"] and r["passed"] for r in rows)
    assert any(r["layer_rel_diff"] > 0 for r in rows if r["pair"] != "torch gpu / paddle gpu")  # cuDNN is not the CPU: a run showing none compared nothing
