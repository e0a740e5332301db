"""Training in both frameworks: the same batches, real accuracy, resume, evaluate, training parity."""

import json

import numpy as np
import pytest

import lenet_paddle.train as paddle_train
import lenet_torch.train as torch_train
from lenet_spec import VARIANTS, get_variant
from lenet_spec.augment import affine_thetas, warp_reference
from lenet_spec.recipe import OPTIMIZERS, Recipe, default_recipe, lr_at
from lenet_train.loop import Data, run_epoch

pytestmark = pytest.mark.cross
BACKENDS = {"torch": torch_train.Backend, "paddle": paddle_train.Backend}


def tiny_data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    return Data(
        rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n), rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), rng.integers(0, 10, 20)
    )


class Recorder:
    """Stands in for a backend's step and records what the loop asked for."""

    def __init__(self, backend):
        self.backend, self.calls = backend, []

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def train_step(self, index, lr, theta=None, masks=None):
        self.calls.append((index.copy(), lr, None if theta is None else theta.copy()))
        self.backend.train_step(index, lr, theta, masks)


def test_both_frameworks_get_identical_batches():
    recipe = Recipe(batch_size=16, epochs=2)
    data = tiny_data()
    calls = {}
    for fw, cls in BACKENDS.items():
        rec = Recorder(cls(get_variant("lenet5"), recipe, 0))
        rec.set_train_data(data.train_images, data.train_labels)
        run_epoch(rec, data, recipe, seed=3, epoch=1, augment=True)
        calls[fw] = rec.calls
    assert len(calls["torch"]) == 6
    for (i_t, lr_t, th_t), (i_p, lr_p, th_p) in zip(calls["torch"], calls["paddle"]):
        assert np.array_equal(i_t, i_p) and lr_t == lr_p and np.array_equal(th_t, th_p)
    seen = np.concatenate([c[0] for c in calls["torch"]])
    assert sorted(seen) == list(range(96))  # every image once per epoch
    assert not np.array_equal(seen, np.arange(96))  # shuffled


def test_epoch_order_depends_on_seed_and_epoch_only():
    from lenet_spec.schedule import epoch_order

    assert np.array_equal(epoch_order(100, 1, 4), epoch_order(100, 1, 4))
    assert not np.array_equal(epoch_order(100, 1, 4), epoch_order(100, 1, 5))
    assert not np.array_equal(epoch_order(100, 1, 4), epoch_order(100, 2, 4))


@pytest.mark.parametrize("framework", BACKENDS)
def test_distortions_match_the_numpy_warp(framework):
    """Both frameworks' affine_grid + grid_sample compute lenet_spec.augment.warp_reference."""
    images = tiny_data(8).train_images
    theta = affine_thetas(8, seed=0, epoch=0)
    assert np.abs(theta[:, :, :2] - np.eye(2)).max() > 0.05  # really distorted
    expected = warp_reference(images[:, None].astype(np.float64) / 255, theta)
    if framework == "torch":
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(images[:, None].astype(np.float64) / 255)
        got = F.grid_sample(x, F.affine_grid(torch.from_numpy(theta), list(x.shape), align_corners=False), align_corners=False).numpy()
    else:
        import paddle
        import paddle.nn.functional as F

        x = paddle.to_tensor(images[:, None].astype(np.float64) / 255)
        got = F.grid_sample(x, F.affine_grid(paddle.to_tensor(theta), list(x.shape), align_corners=False), align_corners=False).numpy()
    assert np.abs(got - expected).max() < 1e-12


def test_identity_distortion_is_identity():
    from lenet_spec.augment import Distortion

    theta = affine_thetas(3, 0, 0, d=Distortion(0, 0, 0, 0))
    images = tiny_data(3).train_images[:, None] / 255.0
    assert np.abs(warp_reference(images, theta) - images).max() < 1e-12


def test_schedules():
    r = Recipe(lr=0.1, epochs=20, schedule="lecun1998")
    assert [lr_at(r, e * 10, 10) for e in (0, 1, 2, 4, 5, 8, 12, 19)] == pytest.approx([0.1, 0.1, 0.04, 0.04, 0.02, 0.01, 0.002, 0.002])
    cos = Recipe(lr=1.0, epochs=1, schedule="cosine")
    assert lr_at(cos, 0, 100) == 1.0 and lr_at(cos, 50, 100) == pytest.approx(0.5)
    one = Recipe(lr=1.0, epochs=1, schedule="onecycle")
    assert lr_at(one, 0, 100) == pytest.approx(0.04) and lr_at(one, 25, 100) == pytest.approx(1.0) and lr_at(one, 99, 100) < 0.01
    assert lr_at(Recipe(lr=1.0, epochs=6, schedule="step"), 45, 10) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="unknown optimizer"):
        Recipe(optimizer="lbfgs")


def test_every_variant_has_a_recipe():
    assert set(VARIANTS) == {name for name in VARIANTS if default_recipe(name)}
    assert default_recipe("d2l") == Recipe(optimizer="sgd", lr=0.9, schedule="constant", epochs=10, batch_size=256, dataset="fashion-mnist")
    assert default_recipe("d2l", augment=True) == default_recipe("d2l")
    plain, distorted = default_recipe("lenet5-1998"), default_recipe("lenet5-1998", augment=True)
    assert (plain.optimizer, plain.weight_decay, distorted.optimizer, distorted.weight_decay) == ("adamw", 0.1, "adam", 5e-4)
    assert plain.loss == distorted.loss == "rbf_map"


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("framework", BACKENDS)
def test_one_epoch_on_real_mnist(framework, mnist_test, tmp_path, capsys):
    from lenet_train.cli import train_main

    out = tmp_path / "run"
    assert train_main(framework, ["--variant", "lenet5", "--epochs", "1", "--limit", "5000", "--out", str(out), "--no-progress"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["epoch"] == 1
    assert records[0]["test_acc"] >= 0.85  # measured 0.893 with 5,000 images in both frameworks
    suffix = BACKENDS[framework].suffix
    for name in (f"last{suffix}", f"best{suffix}", "curves.png", "predictions.png", "confusion.png"):
        assert (out / name).stat().st_size > 0, name
    assert "final test accuracy" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("framework", BACKENDS)
def test_resume_after_a_kill_is_bit_identical(framework, tmp_path, monkeypatch, capsys):
    from lenet_train import cli

    data = tiny_data(80)
    monkeypatch.setattr(cli, "load_data", lambda *a, **k: data)
    args = ["--variant", "lenet5-1998", "--epochs", "3", "--batch-size", "16", "--optimizer", "momentum", "--augment", "--no-progress", "--device", "cpu"]
    assert cli.train_main(framework, args + ["--out", str(tmp_path / "whole")]) == 0

    cls = BACKENDS[framework]
    original = cls.train_step
    calls = {"n": 0}

    def dies_in_epoch_three(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 12:  # epochs have 5 steps: this is the 2nd step of epoch 3
            raise KeyboardInterrupt
        return original(self, *a, **k)

    monkeypatch.setattr(cls, "train_step", dies_in_epoch_three)
    assert cli.train_main(framework, args + ["--out", str(tmp_path / "killed")]) == 130  # Ctrl-C: a hint, no traceback
    assert "--resume" in capsys.readouterr().err
    monkeypatch.setattr(cls, "train_step", original)
    assert cli.train_main(framework, ["--resume", "--no-progress", "--out", str(tmp_path / "killed")]) == 0

    package = __import__(f"lenet_{framework}")
    whole, resumed = package.load(tmp_path / "whole" / f"last{cls.suffix}"), package.load(tmp_path / "killed" / f"last{cls.suffix}")
    assert resumed.meta["epoch"] == 3
    assert whole.meta["recipe"]["weight_decay"] == resumed.meta["recipe"]["weight_decay"] == default_recipe("lenet5-1998", augment=True).weight_decay
    assert all(np.array_equal(whole.state[k], resumed.state[k]) for k in whole.state)
    lines = (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


@pytest.mark.slow
def test_resume_refuses_other_settings(tmp_path, monkeypatch, capsys):
    from lenet_train import cli

    monkeypatch.setattr(cli, "load_data", lambda *a, **k: tiny_data(32))
    out = str(tmp_path / "r")
    assert cli.train_main("torch", ["--epochs", "1", "--batch-size", "16", "--weight-decay", "0.001", "--out", out, "--no-progress"]) == 0
    assert json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[0])["epoch"] == 1
    assert cli.train_main("torch", ["--resume", "--lr", "0.5", "--out", out, "--no-progress"]) == 2
    assert "drop --lr 0.5 (run has 0.002)" in capsys.readouterr().err
    assert cli.train_main("torch", ["--resume", "--weight-decay", "0.01", "--out", out, "--no-progress"]) == 2
    assert "drop --weight-decay 0.01 (run has 0.001)" in capsys.readouterr().err
    assert cli.train_main("torch", ["--weight-decay", "-1", "--out", str(tmp_path / "neg"), "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == "lenet_torch.train: error: weight decay must be 0 or more, got -1.0"
    assert cli.train_main("torch", ["--resume", "--out", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.data
def test_evaluate_accepts_either_frameworks_checkpoint(mnist_test, tmp_path, capsys):
    from lenet_train.cli import evaluate_main, train_main

    assert train_main("torch", ["--epochs", "1", "--limit", "2000", "--out", str(tmp_path), "--no-progress"]) == 0
    capsys.readouterr()
    results = {}
    for fw in ("torch", "paddle"):
        assert evaluate_main(fw, [str(tmp_path / "best.pt"), "--json"]) == 0
        results[fw] = json.loads(capsys.readouterr().out)
    assert results["paddle"]["source_framework"] == "torch"
    assert results["torch"]["test_acc"] == results["paddle"]["test_acc"] > 0.5
    assert np.array(results["paddle"]["confusion"]).sum() == 10_000


@pytest.mark.slow
@pytest.mark.parametrize("name", VARIANTS)
def test_short_float64_training_parity(name):
    from parity.check import TRAIN_TOL, run_training_case

    r = run_training_case(get_variant(name), "float64", steps=12, seed=0, mnist_train=None)
    assert r.passed and r.max_rel_diff < TRAIN_TOL["float64"], (r.max_rel_diff, r.worst_param)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_each_optimizer_trains_the_same_in_both_frameworks(optimizer):
    """Every optimizer, with weight decay (coupled, or decoupled for adamw) and a changing
    learning rate, is one update rule in torch and paddle: float64 weights agree after every
    step. A framework that dropped or coupled the decay differently would be 1e-4 off a step."""
    from parity.check import TRAIN_TOL, run_training_case

    recipe = Recipe(optimizer=optimizer, lr=0.01 if optimizer in ("sgd", "momentum") else 1e-3, schedule="onecycle", epochs=1, batch_size=16, weight_decay=0.1)
    r = run_training_case(get_variant("lenet5"), "float64", steps=6, seed=0, mnist_train=None, recipe=recipe)
    assert r.passed and r.max_rel_diff < TRAIN_TOL["float64"] and r.loss_diff < 1e-12, (r.max_rel_diff, r.worst_param, r.loss_diff)


@pytest.mark.slow
@pytest.mark.parametrize("framework", BACKENDS)
def test_missing_data_is_a_short_message_no_traceback(framework, tmp_path):
    import os
    import subprocess
    import sys

    from conftest import ROOT

    env = {**os.environ, "LENET_DATA_MIRROR": "http://127.0.0.1:9/", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", f"lenet_{framework}.train", "--data-dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=ROOT, env=env,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == f"lenet_{framework}.train: error: mnist not found, and its download failed; nothing was written:"
    assert lines[1] == f"  looked in {tmp_path / 'nothing'}: no such folder" and lines[3].startswith("  http://127.0.0.1:9/mnist/: ")
    assert len(lines) == 5 and all(line.startswith("  ") and len(line) < 200 for line in lines[1:])
    assert not (tmp_path / "out").exists() and not (tmp_path / "nothing").exists()  # the folder named is made only by a download that succeeded


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_torch_multi_tensor_optimizer_is_bit_identical(optimizer):
    """make_optimizer's foreach=True (a speed-up) computes what the per-parameter loop computes."""
    import torch
    import torch.nn.functional as F

    from lenet_torch.model import build

    recipe = Recipe(optimizer=optimizer, lr=0.01, weight_decay=1e-4)
    weights = []
    for foreach in (True, False):
        rng = np.random.default_rng(0)
        model = build("lenet5-1998")
        opt = torch_train.make_optimizer(model, recipe)
        assert all(g["foreach"] for g in opt.param_groups)
        if not foreach:
            for g in opt.param_groups:
                g["foreach"] = False
        for _ in range(5):
            x, y = torch.from_numpy(rng.random((8, 1, 28, 28), dtype=np.float32)), torch.from_numpy(rng.integers(0, 10, 8))
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        weights.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not torch.equal(weights[0]["f6.weight"], build("lenet5-1998").state_dict()["f6.weight"])  # it trained


def test_pictures_show_one_epoch_on_labelled_axes_with_titles(tmp_path, monkeypatch):
    """curves.png after a one-epoch run shows its points (markers: a lone point drawn as a line
    is invisible), loss and accuracy on their own axes; every picture has a title naming the run."""
    import matplotlib.pyplot as plt

    from lenet_train import plots

    record = {"epoch": 1, "train_loss": 22.0, "train_acc": 0.9, "test_loss": 4.0, "test_acc": 0.9512}
    fig = plots.curves_figure([record], "torch lenet5-1998 on mnist")
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_ylabel().startswith("loss") and acc_ax.get_ylabel() == "accuracy (%)" and loss_ax.get_xlabel() == acc_ax.get_xlabel() == "epoch"
    assert fig._suptitle.get_text() == "torch lenet5-1998 on mnist: final test accuracy 95.12% after 1 epoch"
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3] / 255
    for ax, point in ((loss_ax, (1, 22.0)), (acc_ax, (1, 90.0))):  # the train point of each panel is drawn where it belongs
        x, y = ax.transData.transform(point)
        row, col = image.shape[0] - int(round(y)), int(round(x))
        around = image[row - 2 : row + 3, col - 2 : col + 3]
        assert (np.abs(around - np.array([31, 119, 180]) / 255).max(-1) < 0.05).sum() >= 20, around  # matplotlib's first colour
    plt.close(fig)
    plots.curves([record], tmp_path / "curves.png", "torch lenet5-1998 on mnist")
    assert (tmp_path / "curves.png").stat().st_size > 10_000

    saved = {}
    monkeypatch.setattr(
        plots,
        "_save",
        lambda fig, path: saved.setdefault(
            path.name, [t.get_text() for ax in fig.axes for t in [ax.title]] + [fig._suptitle.get_text() if fig._suptitle else ""]
        ),
    )
    plots.confusion_matrix(np.array([[5, 1], [0, 4]]), ("a", "b"), tmp_path / "confusion.png", "paddle d2l on fashion-mnist")
    assert "paddle d2l on fashion-mnist: test confusion, accuracy 90.00% (1 of 10 wrong)" in saved["confusion.png"]
    plots.predictions(
        np.zeros((4, 28, 28), np.uint8), np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]), ("a", "b"), tmp_path / "predictions.png", title="paddle d2l"
    )
    assert "paddle d2l: true / predicted; 1 of 4 test images wrong (red, shown first)" in saved["predictions.png"]


@pytest.mark.slow
@pytest.mark.parametrize("framework", BACKENDS)
def test_a_finished_run_can_be_extended(framework, tmp_path, monkeypatch, capsys):
    """--resume --epochs N with N larger: a schedule of the epoch alone goes on (the extended run
    is bit-identical to one started that long); a schedule shaped by the run's length restarts
    over the added epochs, and the epochs already run keep their rates."""
    from lenet_train import cli

    data = tiny_data(48)
    monkeypatch.setattr(cli, "load_data", lambda *a, **k: data)
    common = ["--batch-size", "16", "--no-progress", "--device", "cpu"]
    assert cli.train_main(framework, [*common, "--schedule", "constant", "--epochs", "2", "--out", str(tmp_path / "two")]) == 0
    assert cli.train_main(framework, ["--resume", "--epochs", "4", "--no-progress", "--out", str(tmp_path / "two")]) == 0
    assert "its constant schedule goes on as it would have" in capsys.readouterr().out
    assert cli.train_main(framework, [*common, "--schedule", "constant", "--epochs", "4", "--out", str(tmp_path / "four")]) == 0
    package = __import__(f"lenet_{framework}")
    suffix = BACKENDS[framework].suffix
    extended, straight = package.load(tmp_path / "two" / f"last{suffix}"), package.load(tmp_path / "four" / f"last{suffix}")
    assert extended.meta["epoch"] == 4 and all(np.array_equal(extended.state[k], straight.state[k]) for k in straight.state)

    out = tmp_path / "cycle"
    assert cli.train_main(framework, [*common, "--epochs", "2", "--out", str(out)]) == 0  # lenet5's recipe: onecycle
    before = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    capsys.readouterr()
    assert cli.train_main(framework, ["--resume", "--epochs", "3", "--no-progress", "--out", str(out)]) == 0
    assert "its onecycle schedule runs again over epochs 3-3" in capsys.readouterr().out
    after = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr_end"] for r in after[:2]] == [r["lr_end"] for r in before] and len(after) == 3
    recipe = Recipe.from_dict(package.load(out / f"last{suffix}").meta["recipe"])
    assert recipe.epochs == 3 and recipe.restarts == (2,) and lr_at(recipe, 6, 3) == pytest.approx(recipe.lr / 25)  # epoch 3 starts the cycle again
    assert cli.train_main(framework, ["--resume", "--epochs", "2", "--no-progress", "--out", str(out)]) == 2
    assert "extending it takes more epochs" in capsys.readouterr().err


@pytest.mark.slow
def test_what_new_users_read(tmp_path, monkeypatch, capsys):
    """paddle names its device as torch does; --help gives every recipe's values; evaluate's
    confusion matrix has a header of predicted classes."""
    import paddle

    from lenet_train import cli

    assert paddle_train.Backend(get_variant("lenet5"), Recipe(), 0, "cpu").describe() == f"paddle {paddle.__version__} on cpu"
    help_text = cli.train_parser("torch").format_help()
    assert "lenet5-1998  --optimizer adamw --lr 0.002 --schedule onecycle --epochs 20 --batch-size 64 --weight-decay 0.1" in help_text
    assert "--augment  --optimizer adam" in help_text
    monkeypatch.setattr(cli, "load_data", lambda *a, **k: tiny_data(32))
    assert cli.train_main("torch", ["--epochs", "1", "--batch-size", "16", "--no-progress", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert cli.evaluate_main("paddle", [str(tmp_path / "best.pt")]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines.index("confusion matrix (rows: true class; columns: predicted class, in the same order):")
    assert lines[header + 1].split() == ["true", "/", "pred", *[str(k) for k in range(10)]]
    assert len(lines) == header + 12


@pytest.mark.slow
def test_a_redirected_log_gets_no_progress_frames(tmp_path):
    """`python -m lenet_torch.train ... 2> log`: no bar is drawn where stderr is not a terminal
    (tqdm's disable=None), so the log holds no carriage-return frames; the epoch lines stay."""
    import os
    import subprocess
    import sys

    from conftest import ROOT
    from lenet_spec.data import find_dataset

    if find_dataset("mnist", None, "train") is None:
        pytest.skip("MNIST not found: set LENET_DATA to a folder holding mnist/")
    log = tmp_path / "log"
    with open(log, "wb") as stderr:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "lenet_torch.train",
                "--epochs",
                "1",
                "--limit",
                "640",
                "--batch-size",
                "16",
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "run"),
            ],
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=ROOT,
            env=os.environ,
        )
    assert proc.returncode == 0, log.read_text()
    assert b"\r" not in log.read_bytes() and b"\r" not in proc.stdout and b"epoch  1/1" in proc.stdout  # bytes: text mode would read a \r as \n


def test_the_progress_bar_shows_the_running_figures_as_often_as_it_is_drawn(monkeypatch):
    """On a terminal, the bar's loss and accuracy are read each time tqdm may redraw it
    (mininterval), not every 50 batches: a short epoch does not show its first batch's throughout."""
    import io
    import sys
    import time

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    class Slow:
        """A backend whose running figures are the number of steps taken, a step 30 ms."""

        variant = get_variant("lenet5")

        def reset_running(self):
            self.steps = 0

        def train_step(self, *step):
            time.sleep(0.03)
            self.steps += 1

        def running(self):
            return float(self.steps), 0.0

        def totals(self):
            return np.array([float(self.steps), 0.0, 1.0])

        def all_sum(self, values):
            return values

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    run_epoch(Slow(), tiny_data(16 * 20), Recipe(batch_size=16, epochs=1), 0, 0, False, progress=True)  # 20 batches, 0.6 s
    shown = {float(v) for v in __import__("re").findall(r"loss=([0-9.]+)", terminal.getvalue())}
    assert len(shown) >= 3 and max(shown) > 10, shown  # batch 50's rule showed one value (the first batch's) until the end


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_data_dir_help_shows_where_the_data_is_looked_for(command, capsys):
    """--data-dir's default, in both commands' --help: the search order of lenet_spec.data.dataset_dirs."""
    from lenet_spec.data import SEARCH_ORDER
    from lenet_train import cli

    if command == "train":
        cli.train_parser("torch").print_help()
    else:
        with pytest.raises(SystemExit):
            cli.evaluate_main("torch", ["--help"])
    help_text = "".join(capsys.readouterr().out.split())  # argparse wraps lines (and breaks them at hyphens)
    assert (
        "".join(f"--data-dir DATA_DIR folder holding the data set, or to download it into (default: the first of these that holds it: {SEARCH_ORDER};".split())
        in help_text
    )
