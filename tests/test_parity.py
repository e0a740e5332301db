"""python -m parity.check: every case passes, and the check fails when the frameworks differ."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

import lenet_paddle
import lenet_torch
from lenet_spec import VARIANTS, get_variant
from lenet_spec import compare
from lenet_spec.compare import decision_flips
from parity import cases, report, trajectories
from parity.cases import make_batches, run_case
from parity.check import main as check_main

pytestmark = pytest.mark.cross


@pytest.fixture(scope="module")
def mnist_or_none():
    mnist, _ = cases.load_mnist(None)
    return mnist


@pytest.mark.parametrize("dtype", cases.DTYPES)
@pytest.mark.parametrize("direction", cases.DIRECTIONS)
@pytest.mark.parametrize("name", VARIANTS)
def test_every_case_passes(name, direction, dtype, mnist_or_none):
    variant = get_variant(name)
    r = run_case(variant, direction, dtype, make_batches(variant, 32, 0, mnist_or_none), seed=0)
    assert r.passed, r.problems
    assert r.roundtrip_exact and r.argmax_agree == r.argmax_total
    assert r.max_rel_diff <= compare.LAYER_TOL[dtype] and r.grad_max_rel_diff <= compare.GRAD_TOL[dtype]
    assert r.worst_grad  # gradients were compared on at least one batch


def test_real_mnist_is_used_when_found(mnist_or_none):
    if mnist_or_none is None:
        pytest.skip("MNIST not found: set LENET_DATA")
    assert [b.name for b in make_batches(get_variant("lenet5"), 8, 0, mnist_or_none)] == ["random", "mnist"]
    assert [b.name for b in make_batches(get_variant("cifar-net"), 8, 0, mnist_or_none)] == ["random"]  # 3x32x32 input


def test_a_wrong_constant_fails_and_names_the_first_layer(monkeypatch):
    """A paddle port whose scaled tanh is off by 1e-4 must fail at C1, the first layer using it."""
    monkeypatch.setattr(lenet_paddle.model, "SCALED_TANH_S", 2 / 3 * (1 + 1e-4))
    variant = get_variant("lenet5-1998")
    r = run_case(variant, "torch2paddle", "float64", make_batches(variant, 8, 0, None), seed=0)
    assert not r.passed and r.first_bad_layer == "c1"
    assert any("layer c1 is the first to differ" in p for p in r.problems)
    assert any("NumPy reference" in p for p in r.problems)  # the reference sides with torch


def test_an_average_instead_of_a_sum_fails_at_s2(monkeypatch):
    original = lenet_torch.model.Subsample.forward
    monkeypatch.setattr(lenet_torch.model.Subsample, "forward", lambda self, x: original(self, x / 4))
    variant = get_variant("lenet5-1998")
    r = run_case(variant, "paddle2torch", "float32", make_batches(variant, 8, 0, None), seed=0)
    assert not r.passed and r.first_bad_layer == "s2"


def test_a_gradient_difference_fails(monkeypatch):
    from lenet_paddle import bridge

    original = bridge.grads_numpy

    def skewed(model, images, labels, masks=None):
        loss, grads = original(model, images, labels, masks)
        grads["f6.weight"] = grads["f6.weight"] * (1 + 1e-3)
        return loss, grads

    monkeypatch.setattr(bridge, "grads_numpy", skewed)
    variant = get_variant("d2l")
    r = run_case(variant, "torch2paddle", "float32", make_batches(variant, 8, 0, None), seed=0)
    assert not r.passed and r.worst_grad == "f6.weight"
    assert r.first_bad_layer is None  # the forward pass is still equal


def test_a_lossy_transfer_fails(monkeypatch):
    from lenet_torch import bridge

    original = bridge.state_numpy

    def rounded(model):  # e.g. a converter that goes through float16
        return {k: v.astype(np.float16).astype(v.dtype) for k, v in original(model).items()}

    monkeypatch.setattr(bridge, "state_numpy", rounded)
    variant = get_variant("lenet5")
    r = run_case(variant, "paddle2torch", "float64", make_batches(variant, 8, 0, None), seed=0)
    assert not r.passed and not r.roundtrip_exact


def test_decision_flips_are_counted():
    variant = get_variant("lenet5")
    rng = np.random.default_rng(0)
    out = {name: rng.random((2, *shape)) for name, shape in variant.shapes()}
    same = {k: v.copy() for k, v in out.items()}
    assert decision_flips(variant, out, same) == 0
    same["c1"][0, 0, 0, 0] = 0.0  # a ReLU switched off in one model only
    same["c3"][1, 2, 0:2, 0:2] = [[0.1, 0.2], [0.3, 0.9]]  # s4's first window won by another cell
    out["c3"][1, 2, 0:2, 0:2] = [[0.9, 0.2], [0.3, 0.1]]
    assert decision_flips(variant, out, same) == 2


def test_cli_table_and_json(tmp_path, capsys):
    path = tmp_path / "r.json"
    assert check_main(["--variant", "lenet5-1998", "--dtype", "float64", "--batch", "8", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"lenet5-1998 +torch2paddle  float64", out) and "2 passed, 0 failed" in out
    records = json.loads(path.read_text())
    assert [(r["variant"], r["direction"], r["dtype"]) for r in records] == [
        ("lenet5-1998", "torch2paddle", "float64"),
        ("lenet5-1998", "paddle2torch", "float64"),
    ]
    for key in ("max_abs_diff", "max_rel_diff", "grad_max_rel_diff", "passed"):
        assert all(key in r for r in records)


def test_cli_fails_with_a_bad_port(monkeypatch, capsys):
    monkeypatch.setattr(lenet_paddle.model, "SCALED_TANH_A", 1.7)
    assert check_main(["--variant", "lenet5-1998", "--direction", "torch2paddle", "--batch", "4"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "layer c1 is the first to differ" in out and "0 passed, 2 failed" in out


def test_cli_checks_a_given_checkpoint(tmp_path, capsys):
    lenet_paddle.save(tmp_path / "w.pdparams", lenet_paddle.build("cifar-net", seed=5))
    assert check_main(["--weights", str(tmp_path / "w.pdparams"), "--dtype", "float32", "--batch", "4"]) == 0
    out = capsys.readouterr().out
    assert "weights: " in out and re.search(r"cifar-net +torch2paddle", out) and re.search(r"cifar-net +paddle2torch", out)


def test_cli_bad_inputs_exit_non_zero_without_traceback(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    for args, message in [
        (["--weights", str(tmp_path / "junk.pt")], "junk.pt: not a readable torch checkpoint"),
        (["--data-dir", str(tmp_path)], "no MNIST test files"),
        (["--variant", "lenet6"], "invalid choice"),
    ]:
        proc = subprocess.run([sys.executable, "-m", "parity.check", *args], capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 2, args
        assert message in proc.stderr and "Traceback" not in proc.stderr


def test_no_mnist_is_a_note_not_an_error(monkeypatch, capsys):
    monkeypatch.delenv("LENET_DATA", raising=False)
    assert check_main(["--variant", "lenet5", "--dtype", "float64", "--direction", "torch2paddle", "--batch", "4"]) == 0
    assert "MNIST: not found" in capsys.readouterr().out


def test_training_parity_cli(tmp_path, capsys):
    path = tmp_path / "t.json"
    assert check_main(["--train", "5", "--variant", "d2l", "--dtype", "float64", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"d2l +float64 +5 ", out) and "1 passed, 0 failed" in out
    record = json.loads(path.read_text())[0]
    assert len(record["drift"]) == 5 and record["max_rel_diff"] < compare.TRAIN_TOL["float64"] and record["passed"]


def test_training_parity_catches_an_optimizer_mismatch(monkeypatch):
    """The mismatch this check found: paddle's momentum kernel rounds the coefficient to float32.
    Giving torch the unrounded 0.9 again must fail in float64."""
    import torch

    import lenet_torch.train

    def unrounded(model, recipe):
        return torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)

    monkeypatch.setattr(lenet_torch.train, "make_optimizer", unrounded)
    r = trajectories.run_training_case(get_variant("cifar-net"), "float64", steps=20, seed=0, mnist_train=None)
    assert not r.passed and r.first_step_over is not None and r.max_rel_diff > compare.TRAIN_TOL["float64"]


def test_float32_training_drift_is_reported_and_blow_ups_fail(monkeypatch):
    variant = get_variant("d2l")
    r = trajectories.run_training_case(variant, "float32", steps=3, seed=0, mnist_train=None)
    assert r.passed and "report" in report.format_train_row(r) and len(r.drift) == 3
    import lenet_paddle.train

    original = lenet_paddle.train.Backend.train_step

    def explodes(self, index, lr, theta=None, masks=None):
        return original(self, index, lr * 1e30, theta, masks)  # paddle alone diverges to inf/nan

    monkeypatch.setattr(lenet_paddle.train.Backend, "train_step", explodes)
    r = trajectories.run_training_case(variant, "float32", steps=3, seed=0, mnist_train=None)
    assert not r.passed and "FAIL" in report.format_train_row(r)
