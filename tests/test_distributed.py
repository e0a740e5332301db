"""Data-parallel training: the shards and weights of lenet_train.distributed, the trainers under
their frameworks' launchers (torchrun, paddle.distributed.launch) on loopback, a process that
dies, and `parity.check --train --world-size 2`."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT
from lenet_train.distributed import LaunchError, World

LAUNCH = {
    "torch": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "lenet_torch.train"],
    "paddle": [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "lenet_paddle/train.py"],
}


@pytest.mark.parametrize("n", [1, 2, 5, 63, 64, 65, 256])
@pytest.mark.parametrize("size", [2, 3, 4])
def test_shards_cover_the_global_batch_once_in_order(n, size):
    parts = [World(r, size).shard(n) for r in range(size)]
    assert np.array_equal(np.concatenate([np.arange(n)[p] for p in parts]), np.arange(n))
    lengths = [p.stop - p.start for p in parts]
    assert max(lengths) - min(lengths) <= 1 and lengths == sorted(lengths, reverse=True)
    assert [len(a) for a in np.array_split(np.arange(n), size)] == lengths  # numpy's cut
    if n < size:  # some ranks would get no image: such a batch is refused before training
        assert lengths.count(0) == size - n
        with pytest.raises(LaunchError):
            World(0, size).check_batches(n, n)


@pytest.mark.parametrize("n,size", [(64, 2), (65, 2), (7, 3), (256, 3)])
def test_weighted_shard_means_average_to_the_batch_mean(n, size):
    """What the frameworks do with the ranks' gradients (average) applied to the weighted shard
    means gives the global batch's mean, even or uneven."""
    rng = np.random.default_rng(0)
    per_image = rng.random(n)
    shard_means = [per_image[World(r, size).shard(n)].mean() * World(r, size).weight(n) for r in range(size)]
    assert np.mean(shard_means) == pytest.approx(per_image.mean(), rel=1e-14)
    if n % size == 0:
        assert all(World(r, size).weight(n) == 1.0 for r in range(size))


def test_a_batch_smaller_than_the_job_is_refused():
    World(0, 2).check_batches(60000, 64)
    World(0, 2).check_batches(66, 64)  # a last batch of 2: one image each
    World(0, 1).check_batches(65, 64)
    with pytest.raises(LaunchError, match="last batch of each epoch"):
        World(0, 2).check_batches(65, 64)
    with pytest.raises(LaunchError, match="each batch holds 2"):
        World(0, 3).check_batches(100, 2)


def test_world_from_each_launchers_variables():
    assert World.from_env("torch", {}) == World()
    assert World.from_env("torch", {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == World(1, 2, 1)
    assert World.from_env("paddle", {"PADDLE_TRAINER_ID": "3", "PADDLE_TRAINERS_NUM": "4", "PADDLE_LOCAL_RANK": "1"}) == World(3, 4, 1)
    with pytest.raises(LaunchError, match="paddle's launcher.*torchrun"):
        World.from_env("torch", {"PADDLE_TRAINER_ID": "0", "PADDLE_TRAINERS_NUM": "2"})
    with pytest.raises(LaunchError, match="not a place in a job"):
        World.from_env("paddle", {"PADDLE_TRAINER_ID": "2", "PADDLE_TRAINERS_NUM": "2"})
    with pytest.raises(LaunchError, match="not numbers"):
        World.from_env("torch", {"RANK": "x", "WORLD_SIZE": "2"})


def _launch(framework, args, tmp_path, **kw):
    env = {**os.environ, "LENET_DATA": os.environ.get("LENET_DATA", str(ROOT.parent / "shared" / "datasets"))}
    extra = ["--log_dir", str(tmp_path / "paddle-logs")] if framework == "paddle" else []
    cmd = LAUNCH[framework][:-1] + extra + LAUNCH[framework][-1:] + args
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _weights(framework, path):
    return __import__(f"lenet_{framework}").load(path)


def _rel(a, b):
    return max(float(np.abs(a[k] - b[k]).max() / max(np.abs(b[k]).max(), 1e-300)) for k in a)


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_the_launchers_train_as_one_process_does_and_resume_either_way(framework, mnist_test, tmp_path, capsys):
    """`torchrun ... -m lenet_torch.train` / `paddle.distributed.launch ... lenet_paddle/train.py`:
    float64, 2 processes against 1, the same global batches: the weights after an epoch agree
    within the distributed check's bound; process 0 alone writes and logs; a distributed run
    resumes in one process and a single-process run in two."""
    from lenet_train.cli import train_main

    suffix = {"torch": ".pt", "paddle": ".pdparams"}[framework]
    common = ["--variant", "lenet5", "--dtype", "float64", "--limit", "1000", "--no-progress", "--device", "cpu"]
    proc = _launch(framework, [*common, "--epochs", "1", "--out", str(tmp_path / "two")], tmp_path)
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, output[-2000:]
    assert output.count("epoch  1/1") == 1 and output.count("final test accuracy") == 1  # process 0 alone logs
    assert train_main(framework, [*common, "--epochs", "1", "--out", str(tmp_path / "one")]) == 0
    two, one = _weights(framework, tmp_path / "two" / f"last{suffix}"), _weights(framework, tmp_path / "one" / f"last{suffix}")
    assert (two.meta["world_size"], one.meta["world_size"]) == (2, 1)
    assert _rel(two.state, one.state) <= 1e-12  # measured: see docs/TRAINING.md, Distributed training
    records = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [r["world_size"] for r in records] == [1 * 2]
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        ["metrics.jsonl", "curves.png", "predictions.png", "confusion.png", f"last{suffix}", f"best{suffix}"]
    )
    # a distributed run extended in one process, a single-process run extended in two: the same weights
    assert train_main(framework, ["--resume", "--epochs", "2", "--no-progress", "--out", str(tmp_path / "two")]) == 0
    proc = _launch(framework, ["--resume", "--epochs", "2", "--no-progress", "--out", str(tmp_path / "one")], tmp_path)
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, output[-2000:]
    a, b = _weights(framework, tmp_path / "two" / f"last{suffix}"), _weights(framework, tmp_path / "one" / f"last{suffix}")
    assert (a.meta["epoch"], b.meta["epoch"], a.meta["world_size"], b.meta["world_size"]) == (2, 2, 1, 2)
    assert _rel(a.state, b.state) <= 1e-12


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_a_killed_process_ends_the_job_with_one_line(framework, mnist_test, tmp_path):
    """kill -9 of process 1 mid-run: the launcher ends the job non-zero within seconds (measured:
    about 1 s in both), not at the timeout, and process 0 says so in one line. Paddle's one
    exception: a peer lost inside backward (DataParallel's C++ reducer) makes paddle's runtime
    abort the process with gloo's TimeoutException or IoException, which Python cannot catch;
    and paddle's launcher, seeing process 1 fail, may end process 0 before it prints (the
    launcher then names the failed process: "Container rank 1 status failed ... code -9")."""
    out = tmp_path / "run"
    rank_var = {"torch": "RANK", "paddle": "PADDLE_TRAINER_ID"}[framework]
    proc = _launch(framework, ["--variant", "lenet5", "--epochs", "20", "--limit", "20000", "--no-progress", "--device", "cpu", "--out", str(out)], tmp_path)
    deadline = time.monotonic() + 240
    victim = None
    while time.monotonic() < deadline and proc.poll() is None:
        if victim is None:
            for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
                try:
                    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if f"{rank_var}=1".encode() in environ and f"lenet_{framework}".encode() in cmdline and str(out).encode() in cmdline:
                    victim = int(pid)
        if victim is not None and any(out.glob("last.*")):  # an epoch is done: training is under way
            break
        time.sleep(0.2)
    assert victim is not None and proc.poll() is None, "the job did not get going"
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    output = proc.communicate(timeout=120)[0]
    assert time.monotonic() - killed < 60
    assert proc.returncode != 0
    ours = [line for line in output.splitlines() if line.startswith(f"lenet_{framework}.train: error:")]
    if framework == "paddle" and not ours:  # paddle's runtime aborted process 0, or its launcher ended it first
        assert "terminate called after throwing an instance of 'gloo::" in output or "Container rank 1 status failed" in output, output[-3000:]
        return
    ours = sorted(set(ours))  # paddle's launcher repeats the tail of process 0's log after it fails
    assert len(ours) == 1 and "process 0 of 2: a collective failed" in ours[0] and "another process of the job ended" in ours[0], output[-3000:]


def test_parity_check_world_size_two(capsys):
    """`python -m parity.check --train 3 --world-size 2`: both frameworks' launch APIs, three
    comparisons, all within their bounds."""
    from parity.check import main

    assert main(["--variant", "lenet5", "--dtype", "float64", "--train", "3", "--world-size", "2"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("lenet5 ")]
    assert len(rows) == 3 and all(row.endswith("PASS") for row in rows)
    assert {"torch x2 / torch x1", "paddle x2 / paddle x1", "torch x2 / paddle x2"} == {" ".join(row.split()[3:8]) for row in rows}


def _summing_worker(rank, *args):
    """Gradients summed over the processes instead of averaged."""
    from lenet_train.distributed import World

    World.weight = lambda self, n: (self.shard(n).stop - self.shard(n).start) * self.size * self.size / n
    from parity.distributed import _worker

    _worker(rank, *args)


def _unweighted_worker(rank, *args):
    """Uneven shards' mean losses averaged as they are (the textbook DDP loop)."""
    from lenet_train.distributed import World

    World.weight = lambda self, n: 1.0
    from parity.distributed import _worker

    _worker(rank, *args)


def _unsharded_masks_worker(rank, *args):
    """Each process takes the first rows of the global batch's dropout masks, not its own."""
    import lenet_torch.train as t

    original = t.Backend._step
    t.Backend._step = lambda self, index, lr, theta, masks, weight: original(self, index, lr, theta, masks, weight)
    original_train_step = t.Backend.train_step

    def train_step(self, index, lr, theta=None, masks=None):
        if masks is not None:
            part = self.world.shard(len(index))
            masks = {k: np.roll(v, -part.start, axis=0) for k, v in masks.items()}  # the shard's own rows land at the wrong images
        return original_train_step(self, index, lr, theta, masks)

    t.Backend.train_step = train_step
    from parity.distributed import _worker

    _worker(rank, *args)


@pytest.mark.parametrize(
    "worker,variant,size", [(_summing_worker, "lenet5", 2), (_unweighted_worker, "lenet5", 3), (_unsharded_masks_worker, "lenet-caffe-dropout", 2)]
)
def test_the_distributed_check_fails_on_each_wrong_convention(worker, variant, size, tmp_path):
    """torch's processes with one convention broken, against one process: the check fails."""
    from lenet_spec import get_variant
    from lenet_spec.recipe import default_recipe
    from parity.trajectories import train_batches_source
    from parity.distributed import SAME_FRAMEWORK_TOL, DistResult, compare, launch, read_history, train_steps

    recipe = default_recipe(variant).with_overrides(batch_size=64)
    images, labels, _ = train_batches_source(get_variant(variant), 3, 64, 0, None)
    job = (variant, recipe, "float64", 3, 0, images, labels, False)
    good = compare(
        _history(launch, read_history, tmp_path / "good", job, size),
        train_steps("torch", *job),
        DistResult(variant, "float64", 3, size, "", SAME_FRAMEWORK_TOL["float64"]),
    )
    assert good.passed, good  # the same case, unbroken, passes
    bad = compare(
        _history(launch, read_history, tmp_path / "bad", job, size, worker),
        train_steps("torch", *job),
        DistResult(variant, "float64", 3, size, "", SAME_FRAMEWORK_TOL["float64"]),
    )
    assert not bad.passed and bad.first_step_over == 1, bad


def _history(launch, read_history, folder, job, size, worker=None):
    folder.mkdir()
    launch("torch", size, str(folder), job, worker)
    lead = read_history(folder / "torch-0.npz")
    return [lead[i] for i in sorted(lead)]
