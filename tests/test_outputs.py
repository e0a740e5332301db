"""What an output may never replace (an input, a device, a finished run's files), a full disk, run
files that are not what a run writes, and recipe values that cannot be trained: one line each,
nothing lost. Every command whose input is hostile runs in a child under a memory bound
(tests/bounded.py)."""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, SHARED

import bounded
import lenet_torch
from lenet_spec.checkpoint import WriteError, atomic_write
from lenet_spec.cli import UsageError, check_output
from lenet_spec.recipe import Recipe

MNIST = SHARED / "datasets" / "mnist"
ENV = {**os.environ, "LENET_DATA": str(SHARED / "datasets")}
# `python -m <command>` with torch imported measured 219 MiB, with paddle 284 MiB, both 420 MiB:
# every child here stays under the bound of its framework + 200 MiB.
TORCH_MB, BOTH_MB = 420, 650


def cli(*args, limit_mb=BOTH_MB, timeout=240):
    return bounded.run(["-m", *map(str, args)], limit_mb=limit_mb, timeout=timeout, cwd=ROOT, env=ENV)


def one_line(result) -> str:
    assert len(result.lines) == 1 and "Traceback" not in result.stderr, result
    return result.lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A torch checkpoint, its paddle-layout safetensors, a model exported from it, and a copy
    of MNIST's test files: the inputs the commands below are given."""
    from export.exporter import export, from_checkpoint
    from parity.convert import convert_file

    d = tmp_path_factory.mktemp("inputs")
    pt = d / "w.pt"
    lenet_torch.save(pt, lenet_torch.build("lenet5", seed=1))
    st = d / "w.safetensors"
    convert_file(pt, st, layout="paddle")
    onnx = export(from_checkpoint(pt), d / "w.onnx").path
    data = d / "data"
    data.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copyfile(MNIST / name, data / name)
    return {"pt": pt, "safetensors": st, "onnx": onnx, "data": data}


@pytest.fixture
def device(tmp_path):
    """A character device of our own (the numbers of /dev/full), never the system's."""
    node = tmp_path / "dev" / "node"
    node.parent.mkdir()
    try:
        os.mknod(node, stat.S_IFCHR | 0o600, os.makedev(1, 7))
    except PermissionError:
        pytest.skip("making a device node needs root")
    return node


def is_device(path: Path) -> bool:
    return stat.S_ISCHR(os.lstat(path).st_mode)


def test_check_output_is_the_one_rule(tmp_path, device):
    data = tmp_path / "data"
    data.mkdir()
    (data / "images.gz").write_bytes(b"x")
    with pytest.raises(UsageError, match="file of the input folder"):
        check_output(data / "images.gz", "--json", inputs=[data])
    assert check_output(data / "new.json", "--json", inputs=[data])  # a new file beside the data is no input
    (tmp_path / "link.json").symlink_to(device)
    for path in (device, tmp_path / "link.json"):
        with pytest.raises(UsageError, match="a character device, not a regular file"):
            check_output(path, "--json")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UsageError, match="FIFO"):
        check_output(tmp_path / "fifo", "--json")
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pdparams").write_bytes(b"x")
    for name in ("last.pt", "last.pdparams", "metrics.jsonl", "curves.png"):  # any run file, of either framework
        with pytest.raises(UsageError, match="of the run in"):
            check_output(run / name, "DST")
        assert check_output(run / name, "DST", overwrite=True)
    assert check_output(run / "lenet5.onnx", "--out")  # a file of one's own beside a run is fine


@pytest.mark.slow
@pytest.mark.cross
def test_no_command_replaces_an_input(files, tmp_path):
    """Each fails on the code before this test: parity.check and benchmarks.serve wrote over
    the test images and the served model."""
    images = files["data"] / "t10k-images-idx3-ubyte.gz"
    before = images.read_bytes()
    r = cli(
        "parity.check",
        "--variant",
        "lenet5",
        "--dtype",
        "float64",
        "--direction",
        "torch2paddle",
        "--batch",
        "4",
        "--data-dir",
        files["data"],
        "--json",
        images,
    )
    assert r.returncode == 2 and "never replaces an input" in one_line(r)
    assert images.read_bytes() == before
    model = files["onnx"].read_bytes()
    r = cli("benchmarks.serve", files["onnx"], "--clients", "1", "--requests-per-client", "1", "--rounds", "1", "--json", files["onnx"], limit_mb=TORCH_MB)
    assert r.returncode == 2 and "is the input" in one_line(r)
    assert files["onnx"].read_bytes() == model


@pytest.mark.slow
@pytest.mark.cross
@pytest.mark.parametrize("command", ["parity.check", "export", "parity.convert"])
def test_no_command_replaces_a_device(command, files, device, tmp_path):
    """On the code before this test each replaced the node by a regular file (as root,
    `--json /dev/full` would have replaced the system's /dev/full)."""
    target = device.with_suffix(".onnx") if command == "export" else device.with_suffix(".pdparams") if command == "parity.convert" else device
    if target != device:
        device.rename(target)
    args = {
        "parity.check": ["--variant", "lenet5", "--dtype", "float64", "--direction", "torch2paddle", "--batch", "4", "--json", target],
        "export": [files["pt"], "--out", target],
        "parity.convert": [files["pt"], target],
    }[command]
    r = cli(command, *args)
    assert r.returncode in (1, 2) and "not a regular file" in one_line(r)
    assert is_device(target)


@pytest.mark.slow
def test_convert_never_replaces_a_finished_runs_checkpoint(files, tmp_path):
    """On the code before this test convert wrote over run/last.pt, and the next --resume failed
    with "a recipe is a dict, not NoneType"."""
    run = tmp_path / "run"
    run.mkdir()
    lenet_torch.save(run / "last.pt", lenet_torch.build("lenet5", seed=2), epoch=1)
    before = (run / "last.pt").read_bytes()
    r = cli("parity.convert", files["safetensors"], run / "last.pt", limit_mb=TORCH_MB)
    assert r.returncode == 2 and "--overwrite" in one_line(r) and "of the run in" in r.lines[0]
    assert (run / "last.pt").read_bytes() == before
    r = cli("parity.convert", files["safetensors"], run / "last.pt", "--overwrite", limit_mb=TORCH_MB)
    assert r.returncode == 0, r
    assert (run / "last.pt").read_bytes() != before


@pytest.fixture
def full_disk(tmp_path):
    """A real filesystem of 400 KiB (tmpfs), made full by the writes of the test."""
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)], capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"a small filesystem cannot be mounted here ({made.stderr.strip() or 'mount failed'}): the full-disk tests need root and mount")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_one_line_and_leaves_the_old_file(full_disk):
    old = full_disk / "out.bin"
    old.write_bytes(b"old")
    with pytest.raises(WriteError) as raised:
        atomic_write(old, lambda tmp: Path(tmp).write_bytes(b"\0" * (1 << 20)))
    assert str(raised.value).startswith(f"cannot write {old}: No space left on device") and "\n" not in str(raised.value)
    assert old.read_bytes() == b"old" and sorted(p.name for p in full_disk.iterdir()) == ["out.bin"]  # no temporary file left


def test_a_full_disk_while_drawing_a_picture(full_disk):
    """matplotlib's OSError was 58 lines from the trainer."""
    from lenet_train import plots

    (full_disk / "filler").write_bytes(b"\0" * (380 << 10))
    history = [{"epoch": 1, "train_loss": 1.0, "test_loss": 0.9, "train_acc": 0.5, "test_acc": 0.6}]
    with pytest.raises(WriteError, match="cannot write .*curves.png: No space left on device"):
        plots.curves(history, full_disk / "curves.png", "title")
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]


@pytest.mark.slow
def test_a_full_disk_while_writing_checkpoints(files, full_disk):
    """torch.save's zip writer raised a RuntimeError from inline_container.cc."""
    r = cli("parity.convert", files["safetensors"], full_disk / "w.pt", "--overwrite", limit_mb=TORCH_MB)  # 250 KB fits once
    assert r.returncode == 0, r
    (full_disk / "filler").write_bytes(b"\0" * (140 << 10))
    for dst in ("w.pt", "w2.pt"):
        before = sorted(p.name for p in full_disk.iterdir())
        r = cli("parity.convert", files["safetensors"], full_disk / dst, limit_mb=TORCH_MB)
        assert r.returncode == 2 and f"cannot write {full_disk / dst}: No space left on device" in one_line(r)
        assert sorted(p.name for p in full_disk.iterdir()) == before


@pytest.mark.slow
def test_a_full_disk_under_the_trainer(full_disk):
    """The first `last.pt` (weights and Adam's two moments: 750 KB) cannot fit in 400 KiB."""
    r = cli("lenet_torch.train", "--epochs", "1", "--limit", "500", "--no-progress", "--out", full_disk / "run", limit_mb=TORCH_MB + 200)
    assert r.returncode == 2 and "No space left on device" in one_line(r) and "last.pt" in r.lines[0]
    assert not [p for p in (full_disk / "run").iterdir() if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    r = cli("lenet_torch.train", "--epochs", "1", "--limit", "500", "--no-progress", "--out", out, limit_mb=TORCH_MB + 200)
    assert r.returncode == 0, r
    return out


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["link to /dev/zero", "FIFO", "too large"])
def test_run_files_are_regular_files_of_a_bounded_size(kind, finished_run, tmp_path):
    """Before: a link to /dev/zero was a MemoryError after gigabytes, a FIFO hung --resume."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    metrics = run / "metrics.jsonl"
    metrics.unlink()
    if kind == "FIFO":
        os.mkfifo(metrics)
    elif kind == "too large":
        with open(metrics, "wb") as f:
            f.truncate(17 << 20)  # sparse: 17 MiB of zeros, over the 16 MiB bound
    else:
        metrics.symlink_to("/dev/zero")
    r = cli("lenet_torch.train", "--resume", "--epochs", "2", "--no-progress", "--out", run, limit_mb=TORCH_MB + 200, timeout=60)
    assert not r.timed_out, r
    assert r.returncode == 2 and "metrics.jsonl" in one_line(r) and "--overwrite" in r.lines[0]
    assert r.peak_mb < TORCH_MB + 200  # measured 349 MiB (refused on resuming, before any step); the training run itself peaked at 485


@pytest.mark.slow
def test_an_interrupted_first_start_is_no_run(trainer, tmp_path, capsys):
    """kill -9 during the first `last.pt` write leaves metrics.jsonl and an orphan: --resume said
    "start without --resume" and starting without it said "already holds a run"."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text("")
    (out / ".last.pt.k9x2.tmp").write_bytes(b"half")
    assert trainer.train_main("torch", [*ARGS, "--resume", "--out", str(out)]) == 2
    assert "start the run without --resume" in capsys.readouterr().err
    assert trainer.train_main("torch", [*ARGS, "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "no checkpoint" in said and "starting afresh" in said
    assert (out / "last.pt").is_file() and not (out / ".last.pt.k9x2.tmp").exists()


def test_recipe_values_must_be_trainable():
    for changes, named in (
        ({"step_every": 0}, "step_every must be at least 1"),
        ({"lr": 1e39}, "lr must be a finite number within float32's range"),
        ({"gamma": 0.0}, "gamma must be positive"),
        ({"momentum": 1.0}, "momentum must be in"),
        ({"eps": -1.0}, "eps must be positive"),
    ):
        with pytest.raises(ValueError, match=named):
            Recipe(**changes)
    with pytest.raises(ValueError, match="step_every"):  # a stranger's checkpoint's recipe is the same recipe
        Recipe.from_dict({**Recipe().to_dict(), "step_every": 0})


ARGS = ["--epochs", "1", "--batch-size", "16", "--no-progress", "--device", "cpu"]


@pytest.mark.cross
@pytest.mark.parametrize("framework", ["torch", "paddle"])
@pytest.mark.parametrize("flags, named", [(["--lr", "1e39"], "lr must be a finite number within float32's range"), (["--seed", "-1"], "--seed must be")])
def test_flags_that_cannot_be_trained_are_one_line(framework, flags, named, trainer, tmp_path, capsys):
    """torch said "value cannot be converted to type float without overflow" at the first
    step; --seed -1 was numpy's "expected non-negative integer"."""
    assert trainer.train_main(framework, [*ARGS, *flags, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert named in err and len(err.splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["device", "link to a device", "FIFO"])
@pytest.mark.parametrize("name", ["metrics.jsonl", "last.pt", "curves.png"])
def test_the_trainer_never_replaces_a_device_among_its_run_files(name, kind, trainer, device, tmp_path, capsys):
    """The trainer's own outputs are checked like every command's (lenet_spec.cli.not_regular):
    before this test a device, a link to one or a FIFO named metrics.jsonl, last.pt or curves.png
    in --out was silently replaced by the run's file (exit 0, measured on ec7f312)."""
    out = tmp_path / "run"
    out.mkdir()
    target = out / name
    if kind == "device":
        device.rename(target)
    elif kind == "FIFO":
        os.mkfifo(target)
    else:
        target.symlink_to(device)
    assert trainer.train_main("torch", [*ARGS, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(target) in err and "not the regular file a run writes" in err and "--overwrite" in err, err
    mode = os.lstat(target).st_mode
    assert (stat.S_ISFIFO if kind == "FIFO" else stat.S_ISLNK if kind.startswith("link") else stat.S_ISCHR)(mode)
    assert not (out / "best.pt").exists()  # refused before any training
    assert trainer.train_main("torch", [*ARGS, "--overwrite", "--out", str(out)]) == 0  # asked for: the entry (never what it points at) is replaced
    assert target.is_file() and not target.is_symlink()
    if kind.startswith("link"):
        assert is_device(device)  # what the link pointed at is untouched
