"""One epoch of training of a ported pair (lenet_torch/epoch.py, lenet_paddle/epoch.py and python -m
benchmarks.port_epoch): the two epoch modules mirror each other and train a dropout-free pair from
the same weights step for step alike, their nll is the same formula (not paddle's clipped
log-probability), and the command trains and scores a right port above chance on MNIST.
"""

import inspect
import json
import os
from pathlib import Path

import numpy as np
import pytest

from lenet_spec.data import find_dataset
from lenet_spec.frameworks import NAMES, module

pytest.importorskip("torch")
pytest.importorskip("paddle")

pytestmark = pytest.mark.cross
ROOT = Path(__file__).resolve().parents[1]
PAIR = [f"{ROOT}/tests/ports/right_relu_{fw}.py:Net" for fw in NAMES]


def _pair(seed=0):
    """The right_relu pair, the torch weights copied into the paddle model."""
    from parity.diff import copy_weights, load_factory

    models = {}
    for fw, spec in zip(NAMES, PAIR):
        module(fw, "diff").seed(seed)
        models[fw] = load_factory(spec, fw)
    assert copy_weights(models["torch"], models["paddle"], np.zeros((2, 1, 28, 28), np.float32)) == 10
    return models


def test_the_epoch_modules_mirror_each_other():
    """The same functions, parameters and defaults (the annotations name each framework's types)."""

    def public(fw):
        m = module(fw, "epoch")
        functions = {f: v for f, v in vars(m).items() if inspect.isfunction(v) and v.__module__ == m.__name__}
        shapes = {f: [(q.name, q.kind, q.default) for q in inspect.signature(v).parameters.values()] for f, v in functions.items()}
        return shapes, (m.OPTIMIZERS, m.LOSSES, m.ADADELTA_RHO, m.ADADELTA_EPSILON)

    first, *others = (public(fw) for fw in NAMES)
    assert first[0] and all(o == first for o in others)
    assert set(first[0]) >= {"train_epoch", "accuracy"}


@pytest.mark.parametrize("optimizer, lr", [("adadelta", 1.0), ("sgd", 0.05), ("adam", 1e-3)])
def test_a_pair_without_dropout_trains_alike_from_the_same_weights(optimizer, lr):
    """The same batches, rule and loss: the losses agree to float32 rounding, and so do the weights."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((160, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 160)
    models = _pair()
    losses = {fw: module(fw, "epoch").train_epoch(models[fw], x, y, batch=32, lr=lr, optimizer=optimizer, seed=3) for fw in NAMES}
    assert len(losses["torch"]) == 5
    np.testing.assert_allclose(losses["paddle"], losses["torch"], rtol=1e-4)
    t, p = (module(fw, "diff").state(models[fw]) for fw in NAMES)
    np.testing.assert_allclose(p["classifier.4.weight"].T, t["classifier.4.weight"], rtol=1e-3, atol=1e-5)
    accs = [module(fw, "epoch").accuracy(models[fw], x, y, batch=64) for fw in NAMES]
    assert accs[0] == accs[1]


def test_nll_is_minus_the_gathered_log_probability_on_both_sides():
    """Not paddle's F.nll_loss on a clipped log_softmax: a log-probability of -200 is a loss of 200."""
    logp = np.array([[-200.0, 0.0], [-1.0, -0.5]], np.float32)
    labels = np.array([0, 1])
    for fw in NAMES:
        probe, epoch = module(fw, "diff"), module(fw, "epoch")
        assert float(epoch.loss_of(probe.tensor(logp), labels, "nll")) == pytest.approx(100.25)


def test_unknown_settings_are_refused():
    models = _pair()
    x, y = np.zeros((4, 1, 28, 28), np.float32), np.zeros(4, np.int64)
    for fw in NAMES:
        epoch = module(fw, "epoch")
        with pytest.raises(ValueError, match="optimizer 'rmsprop'"):
            epoch.train_epoch(models[fw], x, y, optimizer="rmsprop")
        with pytest.raises(ValueError, match="loss 'mse'"):
            epoch.train_epoch(models[fw], x, y, loss="mse")


def test_the_adadelta_settings_are_torchs_on_both_sides():
    """paddle's Adadelta defaults to rho 0.95: both sides are given torch's 0.9 and 1e-6."""
    import inspect as ins

    import paddle
    import torch

    t = ins.signature(torch.optim.Adadelta).parameters
    for fw in NAMES:
        epoch = module(fw, "epoch")
        assert (epoch.ADADELTA_RHO, epoch.ADADELTA_EPSILON) == (t["rho"].default, t["eps"].default)
    assert ins.signature(paddle.optimizer.Adadelta).parameters["rho"].default != epoch.ADADELTA_RHO  # why it is set


@pytest.fixture
def threads_kept():
    """torch's thread count as the test found it (the command sets both frameworks' to --threads)."""
    import torch

    kept = torch.get_num_threads()
    yield
    torch.set_num_threads(kept)


@pytest.mark.data
def test_the_command_trains_a_right_port_above_chance(tmp_path, capsys, threads_kept):
    """About 3 s (512 images, 10,000 test images scored on each side)."""
    if find_dataset("mnist", os.environ.get("LENET_DATA") and Path(os.environ["LENET_DATA"]) / "mnist", "train") is None:
        pytest.skip("MNIST not found: set LENET_DATA to a folder holding mnist/")
    from benchmarks.port_epoch import main

    data_dir = os.environ.get("LENET_DATA") and str(Path(os.environ["LENET_DATA"]) / "mnist")
    out = tmp_path / "epoch.json"
    argv = [*PAIR, "--limit", "512", "--json", str(out)] + (["--data-dir", data_dir] if data_dir else [])
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "framework" in table and "test accuracy" in table and "final loss" in table and "seconds" in table
    assert [line.split()[0] for line in table.splitlines()[-2:]] == list(NAMES)
    doc = json.loads(out.read_text())
    assert doc["settings"]["limit"] == 512 and doc["settings"]["threads"] == 1 and doc["copied"] == 10
    for row in doc["rows"]:
        assert {"framework", "test_accuracy", "final_loss", "seconds", "steps", "losses"} <= set(row)
        assert row["steps"] == 8 and len(row["losses"]) == 8
        assert row["test_accuracy"] > 0.15  # chance is 0.1; measured 0.2953 on both sides (no dropout: the same run)
    assert abs(doc["rows"][0]["test_accuracy"] - doc["rows"][1]["test_accuracy"]) < 0.02


def test_a_pair_that_cannot_start_from_the_same_weights_is_refused(capsys, threads_kept):
    """Seed 004's paddle LeNet takes 1x32x32: on MNIST's 28x28 it raises, and nothing is trained."""
    from benchmarks.port_epoch import main

    if find_dataset("mnist", os.environ.get("LENET_DATA") and Path(os.environ["LENET_DATA"]) / "mnist", "train") is None:
        pytest.skip("MNIST not found: set LENET_DATA to a folder holding mnist/")
    data_dir = os.environ.get("LENET_DATA") and str(Path(os.environ["LENET_DATA"]) / "mnist")
    argv = [PAIR[0], f"{ROOT}/tests/ports/seed004_paddle.py:LeNet", "--limit", "64"] + (["--data-dir", data_dir] if data_dir else [])
    assert main(argv) == 2
    assert "benchmarks.port_epoch: error: the paddle model cannot run the input" in capsys.readouterr().err
