"""ONNX export from both frameworks, onnxruntime against the framework models, prediction from ONNX alone."""

import io
import json
import os
import re
import struct
import subprocess
import sys
import zlib
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
from export.preprocess import mnist_field
from export.verify import verify
from lenet_spec.compare import ONNX_TOL
from lenet_spec.compare import compare_logits as compare
from lenet_spec import VARIANTS, get_variant

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.cross
FRAMEWORKS = ("torch", "paddle")


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
    with pytest.raises(ExportError, match="unknown framework 'tensorflow'; known: torch, paddle"):
        exporter.run_exporter(Source("lenet5", lenet_spec.init_params(get_variant("lenet5"), 0), "tensorflow", "seed 0"), 18)


def test_paddle_exporter_never_takes_the_installing_path(monkeypatch):
    from export.metadata import INPUT_NAME, OUTPUT_NAME
    from lenet_spec.frameworks import module

    monkeypatch.delenv("POLYGRAPHY_AUTOINSTALL_DEPS", raising=False)
    os.environ["POLYGRAPHY_AUTOINSTALL_DEPS"] = "0"
    variant, params = lenet_spec.deploy.inference_form(get_variant("lenet5"), lenet_spec.init_params(get_variant("lenet5"), 0))
    raw = module("paddle", "onnx_export").export_onnx(variant, params, 18, INPUT_NAME, OUTPUT_NAME)
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
    assert "IMPORTED ['onnx']" in proc.stderr  # neither framework: onnx alone, which checks the graph before onnxruntime loads it
    out = json.loads(proc.stdout)
    got = {(Path(r["file"]).name, r.get("index")): r["predictions"][0]["class"] for r in out["predictions"]}
    for kind in (".png", "-inverted.jpg", "-off-centre.png"):
        classes = np.array([got[f"{i}{kind}", None] for i in range(len(images))])
        assert (classes == expected).mean() >= 59 / 60, kind  # measured: all 60 (JPEG's artefacts allowed one)
    assert [got["stack.npy", i] for i in range(len(images))] == expected.tolist()
    assert all(abs(sum(t["prob"] for t in r["predictions"])) <= 1 + 1e-9 and len(r["predictions"]) == 2 for r in out["predictions"])


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


# issue 11: models and inputs that claim more than they hold


def edited_model(exported, out, props=None, dims=None):
    """lenet5 (paddle) with some metadata_props and graph input dims replaced, saved to `out`."""
    model = onnx.load(exported["lenet5", "paddle"].path)
    for p in model.metadata_props:
        if p.key in (props or {}):
            p.value = props[p.key]
    for d, v in zip(model.graph.input[0].type.tensor_type.shape.dim, dims or ()):
        if isinstance(v, str):
            d.dim_param = v
        else:
            d.dim_value = v
    onnx.save(model, out)
    return out


def pooled_model(exported, out, channels, height, width, classes):
    """A graph that takes any input size, image [N, C, H, W] -> sum over H, W -> Gemm -> logits [N, classes],
    under lenet5's metadata set to the same sizes: for the checks onnxruntime itself would let through."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((channels, classes), np.float32), "w")
    axes = numpy_helper.from_array(np.array([2, 3], np.int64), "axes")
    nodes = [helper.make_node("ReduceSum", ["image", "axes"], ["flat"], keepdims=0)]  # ops of EXPORTED_OPS only: it must pass the graph check
    nodes.append(helper.make_node("Gemm", ["flat", "w"], ["logits"]))
    graph = helper.make_graph(
        nodes, "pooled", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", channels, height, width])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])], [w, axes],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    props = {p.key: p.value for p in onnx.load(exported["lenet5", "paddle"].path).metadata_props}
    props.update(input_shape=json.dumps(["N", channels, height, width]), classes=json.dumps([str(k) for k in range(classes)]))
    helper.set_model_props(model, props)
    onnx.save(model, out)
    return out


@pytest.mark.parametrize(
    "case, message",
    [
        ({"props": {"input_shape": '["N", 1, 60000, 60000]'}}, "metadata says input [N, 1, 60000, 60000] and 10 classes, but the graph takes ['N', 1, 28, 28]"),
        ({"props": {"classes": '["a", "b", "c"]'}}, "and 3 classes, but the graph takes ['N', 1, 28, 28] and gives ['N', 10]"),
        ({"props": {"input_shape": '["N", 3, 32, 32]'}}, "metadata says input [N, 3, 32, 32]"),
        ({"props": {"input_shape": '["N", 1, 0, 0]'}}, "metadata says input [N, 1, 0, 0]"),
        ({"dims": ["N", 1, "H", "W"]}, "the graph's input 'image' has shape ['N', 1, 'H', 'W']"),
        ({"dims": [1, 1, 28, 28]}, "the graph's input 'image' has shape [1, 1, 28, 28]"),
        ({"pooled": (1, 2000, 2000, 10)}, "the graph takes ['N', 1, 2000, 2000] and gives ['N', 10]; expected 1 or 3 channels, sides of 1 to 256"),
        ({"pooled": (2, 28, 28, 10)}, "the graph takes ['N', 2, 28, 28]"),
        ({"pooled": (1, 28, 28, 1)}, "gives ['N', 1]; expected 1 or 3 channels, sides of 1 to 256 pixels, 2 classes or more"),
    ],
    ids=["60000x60000", "3-classes", "3x32x32", "0x0", "symbolic-sides", "fixed-batch", "graph-2000x2000", "graph-2-channels", "graph-1-class"],
)
def test_metadata_must_agree_with_the_graph(exported, tmp_path, capsys, case, message):
    from export.predict import main
    from export.runtime import info_of, session

    path = tmp_path / "model.onnx"
    if "pooled" in case:
        pooled_model(exported, path, *case["pooled"])
    else:
        edited_model(exported, path, case.get("props"), case.get("dims"))
    with pytest.raises(MetadataError) as info:
        info_of(session(path, "cpu"), str(path))
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value) and "\n" not in str(info.value)
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "x.png")
    assert main([str(path), str(tmp_path / "x.png")]) == 2
    assert capsys.readouterr().err == f"export.predict: error: {info.value}\n"


def test_metadata_bombs_end_in_one_line_in_predict_and_verify(exported, tmp_path):
    from export.verify import main as verify_main

    huge = edited_model(exported, tmp_path / "huge.onnx", {"input_shape": '["N", 1, 60000, 60000]'})  # OOM-killed at 24 GB in verify before
    three = edited_model(exported, tmp_path / "three.onnx", {"classes": '["a", "b", "c"]'})  # an IndexError in predict before
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "x.png")
    for model in (huge, three):
        proc = run_predict([model, tmp_path / "x.png", "--json"])
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        lines = [line for line in proc.stderr.splitlines() if not line.startswith("IMPORTED")]
        assert len(lines) == 1 and lines[0].startswith(f"export.predict: error: {model}: metadata says"), proc.stderr
    with pytest.raises(MetadataError, match="60000"):
        verify(str(huge))
    assert verify_main([str(huge)]) == 2


def png_of_nothing(path, width, height):
    """A black gray PNG of any size, compressed a band of rows at a time (Pillow would hold all its pixels)."""

    def chunk(kind, data):
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    c, row = zlib.compressobj(1), bytes(1 + width)  # filter byte 0, then black pixels
    band = max(1, 2**20 // len(row))
    idat = b"".join(c.compress(row * min(band, height - i)) for i in range(0, height, band)) + c.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def npy_header(descr, shape, fortran=False) -> bytes:
    """The bytes np.save writes before an array's data (format 1.0)."""
    fp = io.BytesIO()
    np.lib.format.write_array_header_1_0(fp, {"descr": descr, "fortran_order": fortran, "shape": shape})
    return fp.getvalue()


def run_predict_measured(args):
    """python -m export.predict in a fresh interpreter, and its peak resident memory in KiB (Linux's VmHWM: that of the
    process's own memory, where ru_maxrss would count the memory of the pytest process it was forked from)."""
    code = ("import runpy, sys; sys.argv = ['predict'] + sys.argv[1:]\n"
            "try:\n    runpy.run_module('export.predict', run_name='__main__')\nexcept SystemExit as e:\n    code = e.code\n"
            "peak = next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM'))\n"
            "print('PEAK', peak, file=sys.stderr)\nsys.exit(code)")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, cwd=ROOT)
    return proc, int(proc.stderr.splitlines()[-1].split()[1])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="measures memory with Linux's /proc")
def test_predict_refuses_bombs_per_file_in_bounded_memory(exported, tmp_path):
    model = exported["lenet5", "paddle"].path
    header = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (1_300_000, 28, 28))
    c = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    (tmp_path / "bomb-idx3-ubyte.gz").write_bytes(c.compress(header) + b"".join(c.compress(bytes(784 * 10_000)) for _ in range(130)) + c.flush())  # 9 GB before
    png_of_nothing(tmp_path / "30000.png", 30_000, 30_000)  # a DecompressionBombError traceback before, which stopped the other files
    png_of_nothing(tmp_path / "10000.png", 10_000, 10_000)  # 1.2 GB before
    png_of_nothing(tmp_path / "5000.png", 5_000, 5_000)
    np.savez(tmp_path / "zipped.npz", images=np.zeros((2, 28, 28), np.uint8))
    (tmp_path / "zipped.npy").write_bytes((tmp_path / "zipped.npz").read_bytes())  # np.load returned an NpzFile: a traceback before
    nan = np.zeros((3, 28, 28))
    nan[1, 5, 5] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "objects.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    np.save(tmp_path / "complex.npy", np.zeros((28, 28), complex))
    (tmp_path / "claims.npy").write_bytes(npy_header("<f8", (300_000, 28, 28)) + bytes(800))
    (tmp_path / "picture.eps").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\n0 0 moveto 28 28 lineto stroke\n")
    digit = np.zeros((28, 28), np.uint8)
    digit[5:23, 12:16] = 255
    Image.fromarray(digit).save(tmp_path / "one.png")
    bad = ["bomb-idx3-ubyte.gz", "30000.png", "10000.png", "5000.png", "zipped.npy", "nan.npy", "objects.npy", "complex.npy", "claims.npy", "picture.eps"]
    proc, kib = run_predict_measured([model, *(tmp_path / name for name in bad), tmp_path / "one.png", "--json"])
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    out = json.loads(proc.stdout)
    assert [r["file"] for r in out["predictions"]] == [str(tmp_path / "one.png")]
    errors = {Path(e["file"]).name: e["error"] for e in out["errors"]}
    assert list(errors) == bad
    assert errors["bomb-idx3-ubyte.gz"] == "header says (1300000, 28, 28) -> 1,019,200,016 bytes, more than the 134,217,728 this reader accepts"
    assert errors["30000.png"].startswith("too large to decode") and errors["10000.png"].startswith("too large to decode")
    assert errors["5000.png"] == "5000x5000 pixels, more than the 16,777,216 this reader accepts"
    assert errors["zipped.npy"].startswith("not a readable .npy array (the magic string is not correct")
    assert errors["nan.npy"] == "holds NaN or infinite values"
    assert errors["objects.npy"] == "holds object values, not pixels" and errors["complex.npy"] == "holds complex128 values, not pixels"
    assert errors["claims.npy"].startswith("header says (300000, 28, 28) float64 -> 1,881,600,000 bytes, more than the 268,435,456")
    assert errors["picture.eps"].startswith("not an image Pillow can read (UnidentifiedImageError")  # EPS would run Ghostscript
    assert [line for line in proc.stderr.splitlines() if line.startswith("export.predict:")] == [f"export.predict: {tmp_path / n}: {errors[n]}" for n in bad]
    assert kib < 400 * 1024, kib  # measured: 9 GB before (the IDX bomb), now about 150 MB (onnxruntime and the interpreter)


def test_an_onnxruntime_failure_ends_only_its_file_and_json_is_still_printed(exported, tmp_path, monkeypatch, capsys):
    import export.predict as predict
    import export.preprocess as preprocess

    model = exported["lenet5", "paddle"].path
    digit = np.zeros((28, 28), np.uint8)
    digit[5:23, 12:16] = 255
    np.save(tmp_path / "three.npy", np.stack([digit] * 3))
    Image.fromarray(digit).save(tmp_path / "one.png")
    real = predict.run

    def flaky(sess, batch):  # onnxruntime failing on one file's batch, as on a GPU out of memory
        if len(batch) == 3:
            raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running Conv node.\n Stacktrace: ...")
        return real(sess, batch)

    monkeypatch.setattr(predict, "run", flaky)
    assert predict.main([str(model), str(tmp_path / "three.npy"), str(tmp_path / "one.png"), "--json"]) == 1
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert [r["file"] for r in out["predictions"]] == [str(tmp_path / "one.png")]
    message = "onnxruntime failed on it ([ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running Conv node.)"
    assert out["errors"] == [{"file": str(tmp_path / "three.npy"), "error": message}]
    assert captured.err == f"export.predict: {tmp_path / 'three.npy'}: {message}\n"
    monkeypatch.setattr(preprocess, "prepare", lambda *a: 1 / 0)  # a bug of ours: still one file's line, and the JSON
    assert predict.main([str(model), str(tmp_path / "one.png"), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["errors"] == [{"file": str(tmp_path / "one.png"), "error": "failed (ZeroDivisionError: division by zero)"}]


def test_predict_runs_a_stack_in_chunks(exported, tmp_path, monkeypatch):
    import export.predict as predict
    from export.runtime import info_of, session

    sess = session(exported["lenet5", "paddle"].path, "cpu")
    info = info_of(sess, "lenet5")
    images = (np.random.default_rng(0).random((10, 28, 28)) * 255).astype(np.uint8)
    images[:, :2] = images[:, -2:] = 0  # a dark border: taken as they are, like MNIST's
    np.save(tmp_path / "ten.npy", images)
    whole = predict.predict_file(sess, info, tmp_path / "ten.npy", 3)
    batches = []
    real = predict.run
    monkeypatch.setattr(predict, "run", lambda sess, x: batches.append(len(x)) or real(sess, x))
    monkeypatch.setattr(predict, "CHUNK_PIXELS", 4 * 28 * 28)
    chunked = predict.predict_file(sess, info, tmp_path / "ten.npy", 3)
    assert batches == [4, 4, 2]
    assert [r["index"] for r in chunked] == list(range(10))
    for a, b in zip(whole, chunked):
        assert [t["class"] for t in a["predictions"]] == [t["class"] for t in b["predictions"]]
        assert np.allclose([t["prob"] for t in a["predictions"]], [t["prob"] for t in b["predictions"]], rtol=1e-6)


def test_npy_reader_reads_what_np_load_reads_and_refuses_the_rest(tmp_path, monkeypatch):
    import export.predict as predict
    import export.readers as readers
    from export.preprocess import pixels

    rng = np.random.default_rng(0)
    x = rng.random((4, 5, 6))
    arrays = {
        "c.npy": x, "fortran.npy": np.asfortranarray(x), "big-endian.npy": x.astype(">f4"), "half.npy": x.astype(np.float16),
        "uint8.npy": (x * 255).astype(np.uint8), "nchw.npy": x[:, None], "one.npy": x[0], "ints.npy": (x > 0.5).astype(np.int16),
    }  # fmt: skip
    for name, a in arrays.items():
        np.save(tmp_path / name, a)
        got = readers.load(tmp_path / name, colour=False)
        want = np.load(tmp_path / name)
        want = want[:, 0] if want.ndim == 4 else want[None] if want.ndim == 2 else want
        assert got.dtype == want.dtype and np.array_equal(got, want), name
        np.testing.assert_array_equal(pixels(got), want.astype(np.float32) / (255 if want.dtype == np.uint8 else 1))
    np.save(tmp_path / "colour.npy", x[:2, :, :3])  # (H, W, 3): one colour image
    assert readers.load(tmp_path / "colour.npy", colour=True).shape == (1, 2, 5, 3)
    cases = {
        "inf.npy": (np.full((2, 2), np.inf), "holds NaN or infinite values"),
        "wide.npy": (np.full((2, 2), 2.0), "values must lie in [0, 1], found [2, 2]"),
        "record.npy": (np.zeros(3, dtype=[("a", "<i4")]), "values, not pixels"),
        "strings.npy": (np.array(["a", "b"]), "holds <U1 values, not pixels"),
        "bools.npy": (np.zeros((2, 2), bool), "holds bool values, not pixels"),
        "empty.npy": (np.zeros((0, 28, 28), np.uint8), "holds no images"),
        "thin.npy": (np.zeros((2, 0, 28), np.uint8), "images of no pixels"),
        "5d.npy": (np.zeros((1, 1, 1, 2, 2), np.uint8), "expected (H, W), (N, H, W) or (N, 1, H, W)"),
    }
    for name, (a, message) in cases.items():
        np.save(tmp_path / name, a)
        with pytest.raises(readers.InputError, match=re.escape(message)):
            predict.predict_file(None, ModelInfo("lenet5", "mnist", tuple("0123456789"), 1, 28, 28, "torch", "", "1", ""), tmp_path / name, 3)
    (tmp_path / "cut.npy").write_bytes((tmp_path / "c.npy").read_bytes()[:-8])
    (tmp_path / "longer.npy").write_bytes((tmp_path / "c.npy").read_bytes() + b"x")
    (tmp_path / "negative.npy").write_bytes(npy_header("<f8", (-1, 28)))
    (tmp_path / "huge-header.npy").write_bytes(b"\x93NUMPY\x02\x00" + (2**31).to_bytes(4, "little") + b"{")
    (tmp_path / "short-length.npy").write_bytes(b"\x93NUMPY\x02\x008")  # found by test_fuzz: the length's 3 missing bytes were taken from the magic
    refusals = {
        "cut.npy": "truncated: header says (4, 5, 6) float64 -> 960 bytes of data, file has 952",
        "longer.npy": "has trailing bytes",
        "negative.npy": "not a readable .npy array (shape (-1, 28))",
        "huge-header.npy": "a .npy header of 2,147,483,648 bytes, more than the 10,000",
        "short-length.npy": "not a readable .npy array (EOF: reading array header length, expected 4 bytes got 1)",
    }
    for name, message in refusals.items():
        with pytest.raises(readers.InputError, match=re.escape(message)):
            readers.load(tmp_path / name, colour=False)
    monkeypatch.setattr(readers, "MAX_FILE_BYTES", 1000)
    with pytest.raises(readers.InputError, match="1,088 bytes, more than the 1,000 this reader accepts"):
        readers.load(tmp_path / "c.npy", colour=False)


@pytest.mark.slow
def test_large_pictures_are_reduced_as_read_and_classified_the_same(trained_onnx, mnist_test, tmp_path, monkeypatch):
    """A picture larger than MAX_DECODED_SIDE is box-reduced as it is read (a 4096 x 4096 page
    took 710 MB and 2 s in the service before): the classes are those of the full-size read."""
    import export.predict as predict
    import export.readers as readers
    from export.runtime import info_of, session

    sess = session(trained_onnx[0])
    info = info_of(sess, "model")
    files = []
    for i, im in enumerate(mnist_test[0][:30]):
        Image.fromarray(255 - im).resize((3000, 3000), Image.Resampling.BILINEAR).save(tmp_path / f"{i}.png")
        Image.fromarray(255 - im).resize((2500, 2000), Image.Resampling.BILINEAR).save(tmp_path / f"{i}.jpg", quality=90)
        files += [tmp_path / f"{i}.png", tmp_path / f"{i}.jpg"]
    assert max(readers.load(files[0], False).shape[1:]) <= readers.MAX_DECODED_SIDE
    reduced = [predict.predict_file(sess, info, f, 1)[0]["predictions"][0]["class"] for f in files]
    monkeypatch.setattr(readers, "MAX_DECODED_SIDE", 10**6)
    assert readers.load(files[0], False).shape[1:] == (3000, 3000)
    full = [predict.predict_file(sess, info, f, 1)[0]["predictions"][0]["class"] for f in files]
    assert np.mean(np.array(reduced) == np.array(full)) >= 59 / 60  # measured: 60 of 60 (a pixel of the 20 x 20 digit moves at most 0.47)


# what a new user runs first: one line that says what to do instead


def checkpoints_given_as_models(folder: Path) -> dict[Path, str]:
    """Files holding checkpoints where an ONNX file is wanted -> what the line says they hold."""
    import pickle
    import zipfile

    from lenet_spec.checkpoint import save_safetensors
    from lenet_spec.mapping import convert

    with zipfile.ZipFile(folder / "best.pt", "w") as z:  # torch.save's zip
        z.writestr("best/data.pkl", b"")
    (folder / "last.pdparams").write_bytes(pickle.dumps({"format": "lenet-parity-checkpoint"}, protocol=4))
    variant = get_variant("lenet5")
    save_safetensors(folder / "best.safetensors", "torch", "lenet5", convert(lenet_spec.init_params(variant, 0), variant, "spec", "torch"))
    (folder / "model.onnx").write_bytes((folder / "last.pdparams").read_bytes())  # a checkpoint under an ONNX name
    (folder / "empty.pt").write_bytes(b"")  # its suffix alone
    return {folder / "best.pt": "a torch checkpoint", folder / "last.pdparams": "a paddle checkpoint", folder / "best.safetensors": "a safetensors file",
            folder / "model.onnx": "a paddle checkpoint", folder / "empty.pt": "a torch checkpoint"}  # fmt: skip


def test_a_checkpoint_given_as_the_model_gets_the_export_command(tmp_path, capsys):
    """predict and verify named protobuf's parse error for a checkpoint; export.serve has the same test in test_serve."""
    from export.predict import main as predict_main
    from export.verify import main as verify_main

    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "x.png")
    for path, holds in checkpoints_given_as_models(tmp_path).items():
        fix = (
            f"python -m export {path} --out {path.with_suffix('.onnx')}"
            if path.suffix != ".onnx"
            else (f"rename it to {path.with_suffix('.pdparams')} and export it first")
        )
        for prog, main, argv in [("export.predict", predict_main, [str(path), str(tmp_path / "x.png")]), ("export.verify", verify_main, [str(path)])]:
            assert main(argv) == 2, (prog, path)
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and err.startswith(f"{prog}: error: {path} holds {holds}") and "not an ONNX file" in err and fix in err, err


def test_predict_top_takes_the_range_the_service_takes(tmp_path, capsys):
    from export.app import MAX_TOP
    from export.predict import main

    for top in (0, -1, MAX_TOP + 1):  # --top 0 gave one class; the service answers ?top=0 with 422
        assert main([str(tmp_path / "model.onnx"), str(tmp_path / "x.png"), "--top", str(top)]) == 2
        assert capsys.readouterr().err == f"export.predict: error: --top {top}: must be 1 to {MAX_TOP}, as export.serve's ?top=\n"


def test_verify_data_dir_without_the_test_set_is_an_error(exported, tmp_path, capsys):
    from export.verify import main

    model = exported["lenet5", "torch"].path
    for folder in (tmp_path / "no-such-dir", tmp_path):  # missing, and there but empty: random images only, exit 0, before
        assert main([str(model), "--data-dir", str(folder)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"export.verify: error: --data-dir {folder}: no mnist test files (t10k-images-idx3-ubyte[.gz], "), err
        assert f"here or in {folder / 'mnist'}; give the folder that holds them, or leave --data-dir out" in err


def test_export_without_out_writes_beside_the_checkpoint_never_over_a_file(tmp_path, capsys):
    from export.__main__ import main
    from lenet_spec.checkpoint import save_safetensors
    from lenet_spec.mapping import convert

    variant = get_variant("lenet5")
    ckpt = tmp_path / "best.safetensors"
    save_safetensors(ckpt, "torch", "lenet5", convert(lenet_spec.init_params(variant, 0), variant, "spec", "torch"))
    assert main([str(ckpt), "--json"]) == 0  # --out was required before
    assert json.loads(capsys.readouterr().out)["file"] == str(tmp_path / "best.onnx")
    written = (tmp_path / "best.onnx").read_bytes()
    assert main([str(ckpt)]) == 2
    assert capsys.readouterr().err == (
        f"export: error: --out not given and {tmp_path / 'best.onnx'} exists; pass --out {tmp_path / 'best.onnx'} to replace it, or another name\n"
    )
    assert (tmp_path / "best.onnx").read_bytes() == written
    assert main(["--variant", "lenet5", "--framework", "torch"]) == 2
    assert capsys.readouterr().err == "export: error: --out is required with --variant: give the ONNX file to write\n"


@pytest.mark.parametrize("module", ["export.__main__", "export.predict", "export.verify", "export.serve"])
def test_help_names_every_checkpoint_and_no_default_of_an_on_off_flag(module, capsys):
    import importlib

    with pytest.raises(SystemExit) as e:
        importlib.import_module(module).main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert e.value.code == 0 and "(default: False)" not in text and "(default: True)" not in text
    if module == "export.__main__":
        assert "a .pt, .pdparams or .safetensors checkpoint" in text and "{torch,paddle}" in text


def test_exported_files_are_ignored_by_git():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for path in ("model.onnx", "export/model.onnx"):
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0, path  # 1: not ignored
