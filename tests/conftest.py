import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lenet_spec.data import find_dataset, load_split

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def mnist_test():
    """MNIST's test split (images uint8, labels int64); skipped when the files are not found."""
    folder = find_dataset("mnist", os.environ.get("LENET_DATA") and Path(os.environ["LENET_DATA"]) / "mnist")
    if folder is None:
        pytest.skip("MNIST not found: set LENET_DATA to a folder holding mnist/")
    return load_split(folder, "test")


def random_images(variant, n=8, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).random((n, *variant.input.shape)).astype(dtype)


@pytest.fixture(scope="session")
def trained_onnx(tmp_path_factory, mnist_test):
    """lenet5 trained one epoch on 20,000 MNIST images (about 97% accurate), exported by torch:
    (the ONNX file, the checkpoint). Made once for every module that asks."""
    from export import exporter
    from lenet_train.cli import train_main

    folder = tmp_path_factory.mktemp("trained")
    assert train_main("torch", ["--variant", "lenet5", "--epochs", "1", "--limit", "20000", "--out", str(folder), "--no-progress"]) == 0
    report = exporter.export(exporter.from_checkpoint(folder / "last.pt"), folder / "lenet5.onnx")
    return report.path, folder / "last.pt"


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """Every variant exported by both frameworks (seed 3): {(variant, framework): ExportReport},
    made once for every module that asks (about 80 s: 14 exports, each in a child process)."""
    from export.exporter import export, fresh
    from lenet_spec import VARIANTS
    from lenet_spec.frameworks import NAMES

    folder = tmp_path_factory.mktemp("onnx")
    return {(v, f): export(fresh(v, 3, f), folder / f"{v}-{f}.onnx") for v in VARIANTS for f in NAMES}


def tiny_data(n=64, seed=0):
    """Random MNIST-shaped data: n train images, 32 test images."""
    from lenet_train.loop import Data

    rng = np.random.default_rng(seed)
    return Data(
        rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n), rng.integers(0, 256, (32, 28, 28), dtype=np.uint8), rng.integers(0, 10, 32)
    )


@pytest.fixture
def trainer(monkeypatch):
    """lenet_train.cli with small random data in place of MNIST."""
    from lenet_train import cli

    monkeypatch.setattr(cli, "load_data", lambda *a, **k: tiny_data())
    return cli


# What makes a test slow by the suite's rule: it starts a launcher, a server or a training run.
# A test that does so without @pytest.mark.slow fails, so `pytest -m "not slow"` stays a quick run.
STARTS = (
    ("torchrun", "a launcher"),
    ("torch.distributed.run", "a launcher"),
    ("paddle.distributed.launch", "a launcher"),
    ("export.serve", "a server"),
    ("benchmarks.serve", "a server"),
    ("lenet_torch.train", "a training run"),
    ("lenet_paddle.train", "a training run"),
    ("lenet_torch/train.py", "a training run"),
    ("lenet_paddle/train.py", "a training run"),
)


@pytest.fixture(autouse=True)
def slow_when_it_starts_a_job(request, monkeypatch):
    if request.node.get_closest_marker("slow"):
        yield
        return
    started = []
    popen_init = subprocess.Popen.__init__

    def init(self, args, *rest, **kwargs):
        words = [str(a) for a in ([args] if isinstance(args, (str, os.PathLike)) else args)]
        if "--help" not in words:  # a module after -m, a script's path or a launcher's name; never words inside -c code
            started.extend(what for needle, what in STARTS if any(w == needle or w.endswith("/" + needle) for w in words))
        popen_init(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", init)
    from lenet_train import cli

    fit = cli.fit

    def fitting(*args, **kwargs):
        started.append("a training run")
        return fit(*args, **kwargs)

    monkeypatch.setattr(cli, "fit", fitting)
    yield
    if started:
        pytest.fail(f"{request.node.nodeid} starts {started[0]}: mark it @pytest.mark.slow (tests/conftest.py, STARTS)", pytrace=False)
