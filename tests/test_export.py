"""ONNX export from both frameworks, onnxruntime against the framework models, prediction from ONNX alone."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

import lenet_spec
import lenet_spec.deploy
import lenet_spec.reference
from export import exporter, graph
from export.exporter import ExportError, Source, export, fresh
from export.metadata import MetadataError, ModelInfo
from export.predict import mnist_field
from export.verify import ONNX_TOL, compare, verify
from lenet_spec import VARIANTS, get_variant

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.cross
FRAMEWORKS = ("torch", "paddle")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every variant exported by both frameworks (seed 3), once for the module."""
    folder = tmp_path_factory.mktemp("onnx")
    return {(v, f): export(fresh(v, 3, f), folder / f"{v}-{f}.onnx") for v in VARIANTS for f in FRAMEWORKS}


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_files_pass_the_checker_and_say_what_they_are(exported, variant):
    for framework in FRAMEWORKS:
        report = exported[variant, framework]
        model = onnx.load(report.path)
        onnx.checker.check_model(model, full_check=True)
        (inp,), (out,) = model.graph.input, model.graph.output
        spec = get_variant(variant).input
        assert inp.name == "image" and out.name == "logits"
        assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["N", spec.channels, spec.height, spec.width]
        assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["N", 10]
        info = ModelInfo.from_props({p.key: p.value for p in model.metadata_props})
        assert (info.variant, info.framework, info.seed, info.spec_version) == (variant, framework, 3, lenet_spec.SPEC_VERSION)
        assert len(info.classes) == 10
        assert not any(n.op_type in ("Constant", "Identity", "Shape", "ScatterElements", "ScatterND") for n in model.graph.node), "not folded"
    # same graph size from both exporters (measured: 14, 39, 12, 10, 14 nodes)
    assert exported[variant, "torch"].nodes["total"] == exported[variant, "paddle"].nodes["total"]


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_onnxruntime_matches_the_framework_model(exported, variant, framework, mnist_test):
    result = verify(str(exported[variant, framework].path), limit=1000)
    assert result["passed"], result
    assert result["provider"] == "CPUExecutionProvider" or "CUDA" in result["provider"]
    assert [c["images"] for c in result["comparisons"]][0] == "random"
    for c in result["comparisons"]:
        assert c["argmax_agreement"] == 1.0
        if c["logit_scale"] < 1:
            assert c["max_abs"] < ONNX_TOL


def test_verify_compares_with_the_other_framework_and_catches_wrong_weights(exported, tmp_path):
    path = str(exported["lenet5", "torch"].path)
    assert verify(path, framework="paddle", limit=64)["passed"]
    other = tmp_path / "seed4.pt"
    import lenet_torch

    lenet_torch.save(other, lenet_torch.build("lenet5", seed=4))
    result = verify(path, ckpt=str(other), limit=64)
    assert not result["passed"]  # the file holds seed 3's weights


def test_compare_fails_beyond_tolerance():
    logits = np.random.default_rng(0).normal(size=(8, 10)).astype(np.float32)
    assert compare(logits, logits + 1e-6, "x").passed
    assert not compare(logits, logits + 1e-3, "x").passed
    scaled = -85 + logits  # RBF-like logits: tolerance relative to their size
    assert compare(scaled, scaled + 2e-5, "x").passed and not compare(scaled, scaled + 2e-3, "x").passed


@pytest.mark.slow
def test_four_way_matrix_passes_and_can_fail(monkeypatch, mnist_test, capsys):
    from parity.check import main

    assert main(["--onnx", "--variant", "lenet5-1998", "--batch", "64"]) == 0
    out = capsys.readouterr().out
    assert "torch.onnx" in out and "paddle.onnx" in out and "1 passed, 0 failed" in out
    import export.runtime

    real = export.runtime.run
    monkeypatch.setattr(export.runtime, "run", lambda sess, x: real(sess, x) + np.float32(0.01))  # a skewed runtime
    assert main(["--onnx", "--variant", "lenet5", "--batch", "16"]) == 1


def test_checkpoint_export_cli_and_check(tmp_path, capsys):
    from export.__main__ import main
    import lenet_paddle

    ckpt = tmp_path / "m.pdparams"
    lenet_paddle.save(ckpt, lenet_paddle.build("d2l", seed=1))
    out = tmp_path / "m.onnx"
    assert main([str(ckpt), "--out", str(out), "--check", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["framework"].startswith("paddle") and result["verify"]["passed"] and result["nodes"]["total"] == 12
    info = ModelInfo.from_props({p.key: p.value for p in onnx.load(out).metadata_props})
    assert info.source == f"checkpoint {ckpt}" and len(info.checkpoint_sha256) == 64
    assert info.dataset == "fashion-mnist" and info.classes[0] == "t-shirt/top" or info.classes[0].lower().startswith("t-shirt")
    # the same checkpoint exported by torch through the mapping table
    assert main([str(ckpt), "--out", str(tmp_path / "t.onnx"), "--framework", "torch"]) == 0


def test_bad_export_requests_fail_in_one_line(tmp_path, capsys):
    from export.__main__ import main

    assert main(["--out", str(tmp_path / "x.onnx")]) == 2
    assert main([str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert main(["--variant", "lenet5", "--framework", "torch", "--opset", "13", "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("export: error: ") for line in err)
    assert "opset 18 and up" in err[2]
    assert not (tmp_path / "x.onnx").exists()


def test_failed_export_leaves_the_old_file(tmp_path, monkeypatch):
    out = tmp_path / "model.onnx"
    out.write_bytes(b"the previous export")

    def broken(raw, info):
        raise graph.GraphError("injected")

    monkeypatch.setattr(graph, "clean", broken)
    with pytest.raises(ExportError, match="injected"):
        export(fresh("lenet5", 0, "paddle"), out)
    assert out.read_bytes() == b"the previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary left behind


def test_exporter_crash_becomes_one_line():
    crashed = subprocess.CompletedProcess([], -6, "[ERROR][Paddle2ONNX] Due to the unsupported operators, the conversion is aborted.\n", "C++ Traceback ...\n")
    assert exporter._failure(crashed) == "the exporter crashed (SIGABRT): [ERROR][Paddle2ONNX] Due to the unsupported operators, the conversion is aborted."
    with pytest.raises(ExportError, match="KeyError"):
        exporter.run_exporter(Source("lenet5", lenet_spec.init_params(get_variant("lenet5"), 0), "tensorflow", "seed 0"), 18)


def test_paddle_exporter_never_takes_the_installing_path(monkeypatch):
    from export import _worker

    monkeypatch.delenv("POLYGRAPHY_AUTOINSTALL_DEPS", raising=False)
    os.environ["POLYGRAPHY_AUTOINSTALL_DEPS"] = "0"
    variant, params = lenet_spec.deploy.inference_form(get_variant("lenet5"), lenet_spec.init_params(get_variant("lenet5"), 0))
    raw = _worker.paddle_onnx(variant, params, 18)
    assert onnx.load_from_string(raw).graph.node
    assert "polygraphy" not in sys.modules and os.environ["POLYGRAPHY_AUTOINSTALL_DEPS"] == "0"


def test_inference_form_is_the_same_function():
    variant = get_variant("lenet5-1998")
    params = lenet_spec.init_params(variant, 5)
    dense, dense_params = lenet_spec.deploy.inference_form(variant, params)
    assert all(getattr(layer, "table", None) is None for layer in dense.layers)
    x = np.random.default_rng(0).random((16, 1, 28, 28))
    a, b = lenet_spec.reference.forward(variant, params, x), lenet_spec.reference.forward(dense, dense_params, x)
    for k in a:  # the same terms, summed in another order: measured 1.2e-15 relative
        assert np.abs(a[k] - b[k]).max() <= 1e-13 * np.abs(a[k]).max(), k
    assert np.count_nonzero(dense_params["c3.weight"]) == 60 * 25  # the table's 60 connections, 5x5 each


# prediction from ONNX alone


@pytest.fixture(scope="module")
def trained_onnx(tmp_path_factory, mnist_test):
    """lenet5 trained one epoch on 20,000 MNIST images (about 97% accurate), exported by torch."""
    from lenet_train.cli import train_main

    folder = tmp_path_factory.mktemp("trained")
    assert train_main("torch", ["--variant", "lenet5", "--epochs", "1", "--limit", "20000", "--out", str(folder), "--no-progress"]) == 0
    report = export(exporter.from_checkpoint(folder / "last.pt"), folder / "lenet5.onnx")
    return report.path, folder / "last.pt"


def framework_classes(ckpt, images):
    import lenet_torch
    from lenet_torch.bridge import forward_numpy

    model = lenet_torch.load_model(ckpt)
    return list(forward_numpy(model, (images[:, None] / 255.0).astype(np.float32)).values())[-1].argmax(1)


def run_predict(args):
    """python -m export.predict in a fresh interpreter; reports which frameworks it imported."""
    code = ("import sys, runpy; sys.argv = ['predict'] + sys.argv[1:]\n"
            "try:\n    runpy.run_module('export.predict', run_name='__main__')\nexcept SystemExit as e:\n    code = e.code\n"
            "print('IMPORTED', sorted(m for m in ('torch', 'paddle', 'onnx') if m in sys.modules), file=sys.stderr)\nsys.exit(code)")  # fmt: skip
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, cwd=ROOT)


@pytest.mark.slow
def test_predict_pngs_like_the_framework_model_without_importing_one(trained_onnx, mnist_test, tmp_path):
    model, ckpt = trained_onnx
    images, labels = mnist_test[0][:60], mnist_test[1][:60]
    expected = framework_classes(ckpt, images)
    assert (expected == labels).mean() >= 0.93  # a real model, not a coin
    files, rng = [], np.random.default_rng(0)
    for i, im in enumerate(images):
        Image.fromarray(im).save(tmp_path / f"{i}.png")
        Image.fromarray(255 - im).convert("RGB").save(tmp_path / f"{i}-inverted.jpg", quality=95)  # dark ink on paper, colour JPEG
        canvas = np.zeros((70, 90), np.uint8)
        r, c = rng.integers(0, 42), rng.integers(0, 62)
        canvas[r : r + 28, c : c + 28] = im
        Image.fromarray(canvas).save(tmp_path / f"{i}-off-centre.png")
        files += [tmp_path / f"{i}.png", tmp_path / f"{i}-inverted.jpg", tmp_path / f"{i}-off-centre.png"]
    np.save(tmp_path / "stack.npy", images)
    proc = run_predict([model, *files, tmp_path / "stack.npy", "--json", "--top", "2"])
    assert proc.returncode == 0, proc.stderr
    assert "IMPORTED ['onnx']" not in proc.stderr and "IMPORTED []" in proc.stderr  # neither framework, not even onnx
    out = json.loads(proc.stdout)
    got = {(Path(r["file"]).name, r.get("index")): r["top"][0]["class"] for r in out["predictions"]}
    for kind in (".png", "-inverted.jpg", "-off-centre.png"):
        classes = np.array([got[f"{i}{kind}", None] for i in range(len(images))])
        assert (classes == expected).mean() >= 59 / 60, kind  # measured: all 60 (JPEG's artefacts allowed one)
    assert [got["stack.npy", i] for i in range(len(images))] == expected.tolist()
    assert all(abs(sum(t["probability"] for t in r["top"])) <= 1 + 1e-9 and len(r["top"]) == 2 for r in out["predictions"])


@pytest.mark.slow
def test_predict_reports_bad_inputs_and_goes_on(trained_onnx, mnist_test, tmp_path):
    model, _ = trained_onnx
    Image.fromarray(mnist_test[0][0]).save(tmp_path / "good.png")
    (tmp_path / "text.png").write_text("not an image")
    Image.fromarray(np.full((40, 40), 255, np.uint8)).save(tmp_path / "blank.png")
    proc = run_predict([model, tmp_path / "text.png", tmp_path / "blank.png", tmp_path / "missing.png", tmp_path / "good.png"])
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("export.predict:")]
    assert len(errors) == 3 and "not an image" in errors[0] and "empty" in errors[1] and "no such file" in errors[2]
    assert "Traceback" not in proc.stderr
    assert proc.stdout.startswith(f"{tmp_path / 'good.png'}: {mnist_test[1][0]} ")


def test_predict_refuses_a_model_without_metadata(tmp_path, exported):
    model = onnx.load(exported["lenet5", "paddle"].path)
    del model.metadata_props[:]
    onnx.save(model, tmp_path / "plain.onnx")
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "x.png")
    proc = run_predict([tmp_path / "plain.onnx", tmp_path / "x.png"])
    assert proc.returncode == 2 and proc.stderr.count("export.predict: error:") == 1 and "no lenet-parity metadata" in proc.stderr
    with pytest.raises(MetadataError):
        ModelInfo.from_props({"format": "lenet-parity-onnx", "variant": "lenet5"})


@pytest.mark.data
def test_mnist_field_is_mnists_own_preprocessing(mnist_test):
    images = mnist_test[0][:500].astype(np.float32) / 255
    fields = np.stack([mnist_field(im) for im in images])
    assert np.abs(fields - images).max() <= 1 / 255 + 1e-6  # measured on 2,000: max 0.0039 (1/255)


def test_cuda_provider_when_available(exported):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime has no CUDAExecutionProvider here (CPU build or no GPU)")
    result = verify(str(exported["lenet5", "torch"].path), device="gpu", limit=256)
    assert result["provider"] == "CUDAExecutionProvider" and result["passed"]
