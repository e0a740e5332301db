"""Stateful layers (issue 13): BatchNorm's conventions measured in both frameworks, the parity
checks failing on each wrong convention, dropout masks from the spec, buffers in checkpoints."""

import numpy as np
import pytest

import lenet_paddle
import lenet_torch
from lenet_paddle import bridge as paddle_io
from lenet_paddle.model import BatchNorm as PaddleBatchNorm
from lenet_spec import get_variant, init_params, reference
from lenet_spec.checkpoint import CheckpointError
from lenet_spec.schedule import dropout_masks
from lenet_torch import bridge as torch_io
from lenet_spec import compare
from parity import cases, trajectories
from lenet_spec.mapping import convert, table

pytestmark = pytest.mark.cross


def test_the_frameworks_own_batchnorm_conventions():
    """What each framework's kernel does, measured: torch folds the unbiased batch variance into
    the running one with momentum as the batch's weight; paddle folds the biased one with momentum
    as the running average's weight. Both normalise a training batch with the biased variance."""
    import paddle
    import torch

    x = np.random.default_rng(0).normal(size=(8, 3, 4, 4))
    n = 8 * 4 * 4
    biased, unbiased = x.var(axis=(0, 2, 3)), x.var(axis=(0, 2, 3), ddof=1)
    rv = torch.ones(3, dtype=torch.float64)
    y_t = torch.nn.functional.batch_norm(torch.tensor(x), torch.zeros(3, dtype=torch.float64), rv, None, None, True, 0.1, 1e-5)
    assert np.allclose(rv.numpy(), 0.9 + 0.1 * unbiased, rtol=0, atol=1e-15)
    pv = paddle.ones([3], dtype="float64")
    y_p = paddle.nn.functional.batch_norm(paddle.to_tensor(x), paddle.zeros([3], dtype="float64"), pv, training=True, momentum=0.9, epsilon=1e-5)
    assert np.allclose(pv.numpy(), 0.9 + 0.1 * biased, rtol=0, atol=1e-7) and not np.allclose(pv.numpy(), 0.9 + 0.1 * unbiased, rtol=0, atol=1e-4)
    normalised = (x - x.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(biased.reshape(1, 3, 1, 1) + 1e-5)
    assert np.abs(y_t.numpy() - normalised).max() < 1e-13 and np.abs(y_p.numpy() - normalised).max() < 1e-9
    assert unbiased / biased == pytest.approx(n / (n - 1))


def trained_pair(name, dtype="float64", steps=3, seed=0):
    """torch and paddle models of `name` from the same weights, trained `steps` SGD-free training
    passes (running statistics moved, counts up), through the bridges with the spec's masks."""
    t = lenet_torch.build(name, seed=seed, dtype=dtype)
    p = lenet_paddle.build(name, seed=seed + 1, dtype=dtype)
    paddle_io.load_state_numpy(p, convert(torch_io.state_numpy(t), name, "torch", "paddle"))
    variant = get_variant(name)
    for step in range(steps):
        x = np.random.default_rng([seed, step]).random((16, *variant.input.shape)).astype(dtype)
        masks = dropout_masks(variant, seed, 0, step, 16)
        torch_io.forward_numpy(t, x, train=True, masks=masks)
        paddle_io.forward_numpy(p, x, train=True, masks=masks)
    return t, p


def test_buffers_travel_bit_exact_and_stay_in_step():
    t, p = trained_pair("lenet5-bn")
    state = torch_io.state_numpy(t)
    assert state["b1.num_batches_tracked"] == 3 and not np.all(state["b1.running_var"] == 1)
    from_paddle = convert(paddle_io.state_numpy(p), "lenet5-bn", "paddle", "torch")
    assert from_paddle["b1.num_batches_tracked"] == 3 and from_paddle["b1.num_batches_tracked"].dtype == np.int64
    for k in state:
        assert compare.rel_diff(state[k], from_paddle[k])[1] < 1e-13, k  # the same running statistics, measured 8.6e-16
    fresh = lenet_torch.build("lenet5-bn", seed=9, dtype="float64")
    torch_io.load_state_numpy(fresh, convert(convert(state, "lenet5-bn", "torch", "paddle"), "lenet5-bn", "paddle", "torch"))
    assert all(np.array_equal(torch_io.state_numpy(fresh)[k], state[k]) for k in state)  # round trip, counts and all
    names = {e.names["torch"]: e.names["paddle"] for e in table("lenet5-bn") if e.buffer}
    assert names["b1.running_mean"] == "b1._mean" and names["b1.running_var"] == "b1._variance" and names["b1.num_batches_tracked"] == "b1.num_batches_tracked"
    assert set(paddle_io.state_numpy(p)) >= {"b1._mean", "b1._variance", "b1.weight", "b1.bias"}


def test_a_checkpoint_without_its_buffers_is_refused_in_one_line(tmp_path, capsys):
    import torch

    from parity.convert import main as convert_main

    state = lenet_torch.build("lenet5-bn").state_dict()
    del state["b3.running_var"]
    torch.save(state, tmp_path / "plain.pt")
    assert convert_main([str(tmp_path / "plain.pt"), str(tmp_path / "out.pdparams"), "--variant", "lenet5-bn"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing ['b3.running_var']" in err
    with pytest.raises(CheckpointError, match="missing"):
        lenet_torch.load_model(tmp_path / "plain.pt", "lenet5-bn")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["lenet5-bn", "lenet-caffe-dropout"])
def test_parity_check_compares_training_mode(name, dtype):
    variant = get_variant(name)
    batches = cases.make_batches(variant, 16, 0, None)
    r = cases.run_case(variant, "torch2paddle", dtype, batches, 0)
    assert r.passed, r.problems
    assert r.train_worst_layer and r.train_max_rel_diff <= compare.TRAIN_MODE_TOL[dtype] and r.train_reference_max_rel_diff > 0  # compared, not skipped


def wrong(monkeypatch, what):
    """The paddle BatchNorm of a port that gets one convention wrong."""
    if what == "momentum given as-is":  # paddle's momentum=0.1 weighs the running average 0.1: the batch gets 0.9
        monkeypatch.setattr(PaddleBatchNorm, "batch_weight", lambda self: 1 - self.spec.momentum)
    elif what == "biased where unbiased is due":
        monkeypatch.setattr(PaddleBatchNorm, "running_variance", lambda self, biased, count: biased)


@pytest.mark.parametrize("what", ["momentum given as-is", "biased where unbiased is due"])
def test_each_wrong_batchnorm_convention_fails_the_checks(monkeypatch, what):
    variant = get_variant("lenet5-bn")
    assert cases.run_case(variant, "torch2paddle", "float64", cases.make_batches(variant, 16, 0, None), 0).passed
    wrong(monkeypatch, what)
    r = cases.run_case(variant, "torch2paddle", "float64", cases.make_batches(variant, 16, 0, None), 0)
    assert not r.passed and any("running statistics" in p for p in r.problems), r.problems
    t = trajectories.run_training_case(variant, "float64", steps=3, seed=0, mnist_train=None)
    assert not t.passed and "running" in t.worst_param and t.eval_rel_diff > compare.TRAIN_TOL["float64"], (t.worst_param, t.eval_rel_diff)


def test_dropout_masks_drawn_by_each_framework_fail_the_training_check(monkeypatch):
    """Given the spec's masks both frameworks drop the same units; left to their own RNGs (as a
    plain port is), the runs part at the first step."""
    import lenet_torch.train

    variant = get_variant("lenet-caffe-dropout")
    assert trajectories.run_training_case(variant, "float64", steps=3, seed=0, mnist_train=None).passed
    original = lenet_torch.train.Backend.train_step
    monkeypatch.setattr(lenet_torch.train.Backend, "train_step", lambda self, index, lr, theta=None, masks=None: original(self, index, lr, theta, None))
    r = trajectories.run_training_case(variant, "float64", steps=3, seed=0, mnist_train=None)
    assert not r.passed and r.first_step_over == 1


def test_dropout_masks_are_the_spec_s_and_scale_as_both_frameworks_do():
    variant = get_variant("lenet-caffe-dropout")
    a, b = dropout_masks(variant, 3, 1, 5, 64), dropout_masks(variant, 3, 1, 5, 64)
    assert list(a) == ["drop"] and a["drop"].shape == (64, 500) and np.array_equal(a["drop"], b["drop"])
    assert not np.array_equal(a["drop"], dropout_masks(variant, 3, 1, 6, 64)["drop"])
    assert 0.45 < a["drop"].mean() < 0.55  # p = 0.5
    assert dropout_masks(get_variant("lenet5"), 0, 0, 0, 8) is None
    x = np.random.default_rng(0).random((64, 1, 28, 28))
    t = lenet_torch.build(variant, dtype="float64")
    out = torch_io.forward_numpy(t, x, train=True, masks=a)
    before = out["ip1"]
    assert np.array_equal(out["drop"], before * a["drop"] * 2.0)  # kept units scaled by 1 / (1 - p)
    assert np.array_equal(torch_io.forward_numpy(t, x)["drop"], torch_io.forward_numpy(t, x)["ip1"])  # evaluation: identity
    # each framework's own dropout keeps units with the same scaling (paddle's default upscale_in_train, pinned)
    import paddle
    import torch

    ones = np.ones((4, 1000))
    for kept in (
        torch.nn.functional.dropout(torch.tensor(ones), 0.5, True).numpy(),
        paddle.nn.functional.dropout(paddle.to_tensor(ones), 0.5, training=True).numpy(),
    ):
        assert set(np.unique(kept)) <= {0.0, 2.0}


def test_reference_training_pass_matches_both_frameworks():
    variant = get_variant("lenet5-bn")
    params = init_params(variant, 0)
    x = np.random.default_rng(0).random((16, 1, 28, 28))
    updated: dict = {}
    ref = reference.forward(variant, params, x, train=True, updated=updated)
    t = lenet_torch.build(variant, dtype="float64")
    out = torch_io.forward_numpy(t, x, train=True)
    assert compare.rel_diff(ref["output"], out["output"])[1] < 1e-13
    state = convert(torch_io.state_numpy(t), variant, "torch", "spec")
    assert all(compare.rel_diff(updated[k], state[k])[1] < 1e-13 for k in state if "running" in k) and updated["b1.num_batches_tracked"] == 1
    assert params["b1.num_batches_tracked"] == 0  # the reference does not change what it is given


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lenet5-bn", "lenet-caffe-dropout"])
def test_training_parity_with_stateful_layers(name):
    r = trajectories.run_training_case(get_variant(name), "float64", steps=12, seed=0, mnist_train=None)
    assert r.passed and r.max_rel_diff < compare.TRAIN_TOL["float64"] and r.eval_rel_diff < compare.TRAIN_TOL["float64"], (
        r.max_rel_diff,
        r.worst_param,
        r.eval_rel_diff,
    )


def test_export_folds_batchnorm_and_drops_dropout(tmp_path):
    import onnx

    from export.exporter import Source, export
    from export.verify import verify

    for name, framework in (("lenet5-bn", "torch"), ("lenet5-bn", "paddle"), ("lenet-caffe-dropout", "paddle")):
        t, _ = trained_pair(name, "float32")  # running statistics away from their initial values
        params = convert(torch_io.state_numpy(t), name, "torch", "spec")
        report = export(Source(name, params, framework, "test"), tmp_path / f"{name}-{framework}.onnx")
        ops = {n.op_type for n in onnx.load(report.path).graph.node}
        assert not ops & {"BatchNormalization", "Dropout"}, ops
        lenet_torch.save_state(tmp_path / f"{name}.pt", name, torch_io.state_numpy(t))
        result = verify(str(report.path), ckpt=str(tmp_path / f"{name}.pt"), limit=64)
        assert result["passed"], result
