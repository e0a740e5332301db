"""python -m benchmarks --quick: it runs, and its output has every figure issue 5 asks for (no timing assertions)."""

import json

import numpy as np

import pytest

import lenet_spec
from benchmarks.run import PLAIN_ONNX
from lenet_spec.flops import forward_flops, training_flops

pytestmark = pytest.mark.cross


def test_flops_from_the_spec():
    lenet5 = lenet_spec.get_variant("lenet5")
    # conv1 6x25 kernels at 28x28, conv2 16x6x25 at 10x10, dense 400-120-84-10: 416,520 multiply-adds
    assert forward_flops(lenet5) == 2 * (6 * 25 * 28 * 28 + 16 * 6 * 25 * 10 * 10 + 400 * 120 + 120 * 84 + 84 * 10)
    assert training_flops(lenet5) == 3 * forward_flops(lenet5)  # about 2.5 MFLOP, the figure
    paper = lenet_spec.get_variant("lenet5-1998")
    c3 = 60 * 25 * 10 * 10 * 2  # only the table's 60 connections
    assert forward_flops(paper) == 2 * (6 * 25 * 28 * 28) + c3 + 2 * (120 * 400 + 84 * 120) + 3 * 84 * 10


@pytest.mark.slow
def test_quick_run_writes_every_figure(tmp_path, capsys):
    from benchmarks.run import main

    out = tmp_path / "bench.json"
    assert main(["--quick", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["quick"] is True and r["machine"]["cores"] >= 1 and r["machine"]["cpu"]
    steal = r["machine"]["steal_fraction"]
    assert steal is None or 0 <= steal <= 1
    assert r["gemm"]["gflops"] > 0
    assert {t["framework"] for t in r["tutorial"]} == {"torch", "paddle"} and all(t["batch_size"] == 16 and t["images_per_s"] > 0 for t in r["tutorial"])
    (torch_row,) = [t for t in r["training"] if t["framework"] == "torch" and t["recipe_batch"]]
    assert torch_row["variant"] == "lenet5" and torch_row["batch_size"] == 64
    assert sorted(t["batch_size"] for t in r["training"] if t["framework"] == "paddle" and not t["recipe_batch"]) == [256, 1024]
    for t in r["training"]:
        assert t["images_per_s"] > 0 and 0 < t["flop_fraction"] == pytest.approx(t["images_per_s"] / t["flop_bound"])
        assert (
            t["vs_tutorial"] > 0 and t["plain_loop_images_per_s"] > 0 and t["vs_plain_loop"] == pytest.approx(t["images_per_s"] / t["plain_loop_images_per_s"])
        )
    runtimes = {i["runtime"] for i in r["inference"]}
    assert runtimes == {"torch", "paddle", "onnxruntime (torch's file)", "onnxruntime (paddle's file)", PLAIN_ONNX}
    for i in r["inference"]:
        assert i["batch_images_per_s"] > 0 and 0 < i["latency_p50_us"] <= i["latency_p99_us"]
    assert {t["framework"] for t in r["time_to_accuracy"]} == {"torch", "paddle"}
    for t in r["time_to_accuracy"]:
        assert set(t) >= {"train_s", "eval_s", "import_s", "data_s", "reached", "accuracy", "epochs"}
    assert r["batchnorm"] == []  # lenet5 has none
    assert {(s["body"], s["batching"], s["clients"]) for s in r["serving"]} == {
        (b, m, c) for b in ("png", "json") for m in ("micro-batching", "none") for c in (1, 4)
    }
    for s in r["serving"]:
        assert s["errors"] == 0 and s["requests"] == 10 * s["clients"] and s["requests_per_s"] > 0 and 0 < s["p50_ms"] <= s["p99_ms"] <= s["max_ms"]
        assert s["mean_batch"] >= 1 and (s["mean_batch"] == 1 if s["batching"] == "none" or s["clients"] == 1 else True)
        assert 0 < s["onnxruntime_p50_ms"] < s["request_path_p50_ms"]
    assert r["judged"] == []  # quick figures say the code runs; they judge nothing
    printed = capsys.readouterr().out
    assert "of the FLOP bound" in printed and "x the tutorial loop" in printed and "x the plain loop" in printed and f"wrote {out}" in printed
    assert "nothing is judged" in printed and "NOT met" not in printed and "images/s)" in printed  # the FLOP bound with its unit


def test_a_full_run_judges_ratios_against_its_peers():
    from benchmarks.run import JUDGED, judge

    def result(trainer, plain, ours_batch, plain_batch, ours_p50, plain_p50, bn, serving_errors):
        training = [
            {"framework": "torch", "variant": "lenet5", "batch_size": 64, "recipe_batch": True, "vs_plain_loop": trainer / plain, "vs_tutorial": trainer / 1000}
        ]
        inference = [
            {"runtime": "onnxruntime (torch's file)", "batch_images_per_s": ours_batch, "latency_p50_us": ours_p50},
            {"runtime": PLAIN_ONNX, "batch_images_per_s": plain_batch, "latency_p50_us": plain_p50},
        ]
        batchnorm = [{"framework": "paddle", "variant": "lenet5-bn", "ratio": bn}]
        serving = [{"body": "png", "batching": "none", "clients": 8, "requests": 2000 - serving_errors, "errors": serving_errors}]
        return {"training": training, "batchnorm": batchnorm, "inference": inference, "serving": serving}

    good = judge(result(4000, 4200, 40000, 41000, 60, 58, 0.95, 0))
    assert sorted(j["kind"] for j in good) == sorted(JUDGED) and all(j["ok"] for j in good)
    slow = judge(
        result(3000, 4200, 30000, 41000, 80, 58, 0.2, 1)
    )  # 0.71 of the plain loop, 0.73 of its batch rate, p50 0.73 of its speed, BatchNorm 5x slower, 1 error
    assert [j["ok"] for j in slow] == [False, True, False, False, False, False]


@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_the_batchnorm_peer_is_the_frameworks_own_layer_at_the_specs_conventions(framework):
    """The peer of the project's BatchNorm layers: the framework's nn.BatchNorm, set to the same
    momentum (paddle's is 1 - the spec's), so both do the same work; the loop runs with it."""
    from benchmarks.frameworks import bench, plain_loop
    from lenet_spec.frameworks import package

    built = package(framework).build("lenet5-bn")
    model = bench(framework).native_batchnorm(package(framework).build("lenet5-bn"))
    own = {name: type(layer.bn).__name__ for name, layer in model.named_children() if hasattr(layer, "bn")}
    suffix = "d" if framework == "torch" else "D"
    assert own == {"b1": f"BatchNorm2{suffix}", "b3": f"BatchNorm2{suffix}", "b5": f"BatchNorm1{suffix}", "b6": f"BatchNorm1{suffix}"}
    rng = np.random.default_rng(0)
    x = rng.random((8, 1, 28, 28), dtype=np.float32)
    if framework == "torch":
        import torch

        ours, theirs = built.b1, model.b1.bn
        c1 = built.c1(torch.from_numpy(x)).detach()
        ours(c1), theirs(c1)
        mean = (ours.running_mean.numpy(), theirs.running_mean.numpy())
    else:
        import paddle

        ours, theirs = built.b1, model.b1.bn
        c1 = built.c1(paddle.to_tensor(x)).detach()
        ours(c1), theirs(c1)
        mean = (ours._mean.numpy(), theirs._mean.numpy())
    np.testing.assert_allclose(*mean, rtol=1e-6)  # the same running mean after a batch: the same convention
    images, labels = rng.integers(0, 256, (64, 28, 28), dtype=np.uint8), rng.integers(0, 10, 64)
    assert plain_loop(framework, "lenet5-bn", images, labels, 16, own_batchnorm=True)(2) > 0


def test_bad_arguments(capsys):
    from benchmarks.run import main

    assert main(["--quick", "--variants", "lenet7"]) == 2
    assert capsys.readouterr().err.startswith("benchmarks: error: unknown framework or variant ['lenet7']")


def test_benchmarks_hold_no_framework_code():
    """benchmarks/ imports neither framework: what it times in one comes from that framework's
    bench module, found through lenet_spec.frameworks."""
    import ast
    from pathlib import Path

    from lenet_spec.frameworks import REGISTRY

    frameworks = {fw.import_name for fw in REGISTRY}
    for path in sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not [n for n in names if n.split(".")[0] in frameworks], f"{path.name}:{node.lineno} imports {names}"


def test_the_bench_modules_mirror_each_other():
    """lenet_torch/bench.py and lenet_paddle/bench.py: the same functions with the same signatures."""
    import inspect

    from lenet_spec.frameworks import NAMES, module

    def public(name):
        bench = module(name, "bench")
        return {f: str(inspect.signature(getattr(bench, f))) for f, v in vars(bench).items() if inspect.isfunction(v) and v.__module__ == bench.__name__}

    first, *others = (public(name) for name in NAMES)
    assert first and all(other == first for other in others)
