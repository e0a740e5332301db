"""Files from strangers run no code, outputs never replace inputs or finished runs, and bad
input ends in one line (issue 11). The checkpoint readers' fuzzing is in test_fuzz.py."""

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import zipfile

import bounded
import numpy as np
import onnx
import pytest

import lenet_paddle
import lenet_torch
from conftest import ROOT
from lenet_spec import safe_pickle
from lenet_spec.checkpoint import FORMAT, MAX_BYTES, CheckpointError, save_safetensors
from lenet_spec.recipe import OPTIMIZERS, Recipe
from lenet_spec.load import load_checkpoint
from lenet_spec.mapping import convert

pytestmark = pytest.mark.cross


class Call:
    """Pickles as a call of `fn(*args)`: what a malicious checkpoint holds."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def touch(marker):
    """Payloads that would create `marker` when unpickled, each through another global."""
    return {
        "os.system": Call(os.system, f"touch {marker}"),
        "builtins.eval": Call(eval, f"open({str(marker)!r}, 'w').close()"),  # the global paddle's reduce_DenseTensor writes
        "builtins.exec": Call(exec, f"open({str(marker)!r}, 'w').close()"),
        "subprocess.call": Call(subprocess.call, ["touch", str(marker)]),
    }


def evil_envelope(payload):
    """A checkpoint that looks like this project's, with the payload among its tensors."""
    state = lenet_paddle.bridge.state_numpy(lenet_paddle.build("lenet5"))
    state["c1.bias"] = payload
    return {"format": FORMAT, "format_version": 1, "framework": "paddle", "variant": "lenet5", "spec_version": "1", "state_dict": state}


@pytest.fixture
def evil(tmp_path):
    """A .pdparams file that runs `touch MARKER` when paddle.load reads it, and the marker path."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pdparams"
    path.write_bytes(pickle.dumps(evil_envelope(touch(marker)["os.system"]), protocol=4))
    return path, marker


@pytest.mark.parametrize("protocol", [2, 4])  # paddle.save's range: GLOBAL and STACK_GLOBAL opcodes
@pytest.mark.parametrize("name", ["os.system", "builtins.eval", "builtins.exec", "subprocess.call"])
def test_paddle_reader_refuses_code(tmp_path, name, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pdparams"
    path.write_bytes(pickle.dumps(evil_envelope(touch(marker)[name]), protocol=protocol))
    with pytest.raises(CheckpointError, match="refused, nothing was run") as info:
        lenet_paddle.load(path)
    assert name.split(".")[-1] in str(info.value) and str(path) in str(info.value)
    assert not marker.exists()


def test_bare_paddle_load_would_have_run_it(evil):
    """The payload is real: paddle.load, which this project no longer calls on users' files, runs it."""
    import paddle

    path, marker = evil
    try:
        paddle.load(str(path))  # safe: the test's own file, to show the payload works
    except Exception:
        pass  # it fails after running the payload (the state dict holds os.system's return value)
    assert marker.exists()


def test_torch_reader_refuses_code_without_torchs_advice(tmp_path):
    import torch

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "state_dict": {"c1.weight": Call(os.system, f"touch {marker}")}}, path)
    with pytest.raises(CheckpointError) as info:
        lenet_torch.load(path)
    message = str(info.value)
    assert "posix.system" in message and "nothing was run" in message
    assert "weights_only` set to `False`" not in message  # torch's own text suggests exactly that
    assert not marker.exists()


CLI_MB = 700  # a command with torch and paddle imported: 420-520 MiB; a payload that decoded anything large would pass it


def run_cli(module, args):
    """`python -m module args` on a hostile file, under a memory bound (tests/bounded.py)."""
    result = bounded.run(["-m", module, *map(str, args)], limit_mb=CLI_MB, cwd=ROOT, env={**os.environ, "LENET_DATA": str(ROOT.parent / "shared" / "datasets")})
    assert not result.exceeded and not result.timed_out, result
    return result.returncode, result.stderr


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    """lenet5 exported from a paddle checkpoint: its metadata names that checkpoint and its SHA-256."""
    from export.exporter import export, from_checkpoint

    folder = tmp_path_factory.mktemp("onnx")
    ckpt = folder / "good.pdparams"
    lenet_paddle.save(ckpt, lenet_paddle.build("lenet5", seed=2))
    return export(from_checkpoint(ckpt), folder / "good.onnx").path, ckpt


@pytest.mark.slow
def test_every_entry_point_refuses_the_payload(evil, tmp_path, onnx_file):
    """Each command that reads a checkpoint, given the payload: a non-zero exit, one line naming
    the global, no traceback, and no file written by the payload."""
    path, marker = evil
    model, _ = onnx_file
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pdparams").write_bytes(path.read_bytes())  # a replaced last checkpoint
    (run / "metrics.jsonl").write_text("")
    commands = [
        ("lenet_paddle.evaluate", [path]),
        ("lenet_torch.evaluate", [path]),
        ("parity.convert", [path, tmp_path / "out.pt"]),
        ("export", [path, "--out", tmp_path / "out.onnx"]),
        ("parity.check", ["--weights", path]),
        ("export.verify", [model, "--ckpt", path]),
        ("lenet_paddle.train", ["--resume", "--out", run, "--no-progress"]),
    ]
    for module, args in commands:
        status, err = run_cli(module, args)
        lines = err.strip().splitlines()
        assert status != 0 and len(lines) == 1 and "Traceback" not in err, (module, err)
        assert "posix.system" in lines[0] and "nothing was run" in lines[0], (module, lines)
    assert not marker.exists()
    assert not (tmp_path / "out.pt").exists() and not (tmp_path / "out.onnx").exists()


def with_metadata(model_path, out, **changes):
    model = onnx.load(model_path)
    props = {p.key: p.value for p in model.metadata_props}
    props.update({k: v for k, v in changes.items() if v is not None})
    for k in [k for k, v in changes.items() if v is None]:
        props.pop(k, None)
    del model.metadata_props[:]
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, out)
    return out


def test_verify_loads_a_named_checkpoint_only_by_its_hash(evil, tmp_path, onnx_file):
    from export.verify import verify

    path, marker = evil
    model, ckpt = onnx_file
    assert verify(str(model), limit=16)["passed"]  # the named checkpoint, hash matching
    evil_sha = hashlib.sha256(path.read_bytes()).hexdigest()
    no_hash = with_metadata(model, tmp_path / "no_hash.onnx", source=f"checkpoint {path}", checkpoint_sha256=None)
    with pytest.raises(ValueError, match="without a SHA-256 to check it by, so it is not loaded; pass --ckpt"):
        verify(str(no_hash))
    wrong_hash = with_metadata(model, tmp_path / "wrong.onnx", source=f"checkpoint {path}")  # the good file's hash
    with pytest.raises(CheckpointError, match="its SHA-256 is not the"):
        verify(str(wrong_hash))
    matching = with_metadata(model, tmp_path / "evil.onnx", source=f"checkpoint {path}", checkpoint_sha256=evil_sha)  # a hash is no proof of safety
    with pytest.raises(CheckpointError, match="nothing was run"):
        verify(str(matching))
    assert not marker.exists()


class Built:
    """Pickles as NumPy pickles an ndarray (_reconstruct, then BUILD), with the state given."""

    def __init__(self, shape, data, dtype="u1"):
        self.shape, self.data, self.dtype = shape, data, dtype

    def __reduce__(self):
        fn, args, _ = np.zeros(0, np.uint8).__reduce__()
        return fn, args, (1, self.shape, np.dtype(self.dtype), False, self.data)


def test_pickle_memory_and_structure_bombs():
    """What the restricted reader refuses besides globals: a shape its bytes do not fill,
    numpy.ndarray called with a stranger's shape, object arrays, one array's bytes behind many
    arrays, deep nesting. One array referenced many times, and cycles, are fine."""
    assert safe_pickle.loads(pickle.dumps(Built((2, 3), bytes(6)))).shape == (2, 3)
    with pytest.raises(safe_pickle.UnsafePickle, match="needs"):
        safe_pickle.loads(pickle.dumps(Built((10**12,), b"\0")))
    with pytest.raises(safe_pickle.ForbiddenGlobal):
        safe_pickle.loads(pickle.dumps(Call(os.getcwd)))
    with pytest.raises(safe_pickle.UnsafePickle, match="not a readable pickle"):
        safe_pickle.loads(pickle.dumps(Call(np.ndarray, (10**12,), "u1")))  # admitted as a name only, never called
    with pytest.raises(safe_pickle.UnsafePickle, match="not bytes|numeric"):
        safe_pickle.loads(pickle.dumps(np.array([1, "x"], dtype=object)))
    one_mib = bytes(1 << 20)
    bomb = pickle.dumps([Built((1 << 20,), one_mib) for _ in range(200)], protocol=4)  # the bytes object is pickled once
    assert len(bomb) < 2 << 20  # 200 MiB of arrays from a 1 MiB file
    with pytest.raises(safe_pickle.UnsafePickle, match="more bytes than the file"):
        safe_pickle.loads(bomb)
    array = np.arange(1000, dtype=np.float32)
    shared = safe_pickle.loads(pickle.dumps([array] * 50))  # one object, 50 references: built once
    assert shared[0] is shared[49] and np.array_equal(shared[0], array)
    nested: list = []
    for _ in range(200):
        nested = [nested]
    with pytest.raises(safe_pickle.UnsafePickle, match="deeper"):
        safe_pickle.loads(pickle.dumps(nested))
    cycle: list = []
    cycle.append(cycle)
    out = safe_pickle.loads(pickle.dumps(cycle))
    assert out[0] is out


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_plain_paddle_state_dicts_read_as_paddle_reads_them(tmp_path, protocol):
    import paddle

    model = lenet_paddle.build("lenet5-1998", seed=1)
    path = tmp_path / "sd.pdparams"
    paddle.save(model.state_dict(), str(path), protocol=protocol)
    ours = load_checkpoint(path, "lenet5-1998")
    theirs = paddle.load(str(path), return_numpy=True)  # safe: the test's own file
    assert ours.framework == "paddle" and set(ours.state) == set(theirs)
    assert all(np.array_equal(ours.state[k], theirs[k]) and ours.state[k].dtype == theirs[k].dtype for k in theirs)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_every_checkpoint_the_trainers_write_still_loads(tmp_path, framework, optimizer):
    """A training checkpoint (weights, optimizer state, RNG state) reads back through the safe
    readers with the values the framework's own loader gives, and restores a Backend."""
    from lenet_spec import get_variant

    backend_cls = __import__(f"lenet_{framework}.train", fromlist=["Backend"]).Backend
    recipe = Recipe(optimizer=optimizer, weight_decay=1e-4, batch_size=8)
    backend = backend_cls(get_variant("lenet5"), recipe, 0)
    rng = np.random.default_rng(0)
    backend.set_train_data(rng.integers(0, 256, (16, 28, 28), dtype=np.uint8), rng.integers(0, 10, 16))
    backend.train_step(np.arange(8), 0.01)
    path = tmp_path / f"last{backend.suffix}"
    backend.save(path, epoch=1, recipe=recipe.to_dict())
    ckpt = load_checkpoint(path)
    assert ckpt.variant == "lenet5" and ckpt.meta["epoch"] == 1 and len(ckpt.sha256) == 64
    if framework == "paddle":
        import paddle

        theirs = paddle.load(str(path), return_numpy=True)  # safe: the test's own file
        assert all(np.array_equal(ckpt.state[k], theirs["state_dict"][k]) for k in ckpt.state)
        assert all(np.array_equal(ckpt.meta["optimizer"][k], theirs["optimizer"][k]) for k in theirs["optimizer"])
    restored = backend_cls(get_variant("lenet5"), recipe, 5)
    restored.restore(path)
    assert all(np.array_equal(a, b) for a, b in zip(backend.weights().values(), restored.weights().values()))


def test_paddle_checkpoints_of_the_previous_format_resume(tmp_path):
    """Checkpoints written before this change pickled paddle's GeneratorState object; they read
    as its plain state and restore the same random stream."""
    import paddle

    from lenet_spec import get_variant
    from lenet_paddle.train import Backend

    recipe = Recipe(batch_size=8)
    backend = Backend(get_variant("lenet5"), recipe, 0)
    paddle.seed(7)
    payload = {
        "format": FORMAT,
        "format_version": 1,
        "framework": "paddle",
        "variant": "lenet5",
        "spec_version": "1",
        "framework_version": paddle.__version__,
        "optimizer": backend.optimizer_state(),
        "rng_state": paddle.get_rng_state(),
        "epoch": 1,
        "state_dict": dict(backend.model.state_dict()),
    }
    path = tmp_path / "old.pdparams"
    paddle.save(payload, str(path))
    expected = paddle.rand([4]).numpy()
    assert b"GeneratorState" in path.read_bytes()
    paddle.seed(99)
    Backend(get_variant("lenet5"), recipe, 3).restore(path)
    assert np.array_equal(paddle.rand([4]).numpy(), expected)


def test_safetensors_round_trips_and_reads_in_both_frameworks(tmp_path, capsys):
    """.pt -> .safetensors (torch's layout, loadable by safetensors.torch) -> .pdparams equals
    the direct conversion; --layout paddle gives paddle's layout, loadable by safetensors.paddle."""
    from safetensors.numpy import load_file

    from parity.convert import main as convert_main

    model = lenet_torch.build("lenet5", seed=4)
    lenet_torch.save(tmp_path / "a.pt", model)
    assert convert_main([str(tmp_path / "a.pt"), str(tmp_path / "a.safetensors")]) == 0
    raw = load_file(tmp_path / "a.safetensors")
    torch_state = lenet_torch.bridge.state_numpy(model)
    assert all(np.array_equal(raw[k], torch_state[k]) for k in torch_state)
    import torch
    from safetensors.torch import load_file as torch_load_file

    fresh = lenet_torch.build("lenet5", seed=9)
    fresh.load_state_dict(torch_load_file(tmp_path / "a.safetensors"))  # strict: every key, every shape
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))

    assert convert_main([str(tmp_path / "a.safetensors"), str(tmp_path / "b.pdparams")]) == 0
    assert convert_main([str(tmp_path / "a.pt"), str(tmp_path / "c.pdparams")]) == 0
    b, c = lenet_paddle.load(tmp_path / "b.pdparams"), lenet_paddle.load(tmp_path / "c.pdparams")
    assert all(np.array_equal(b.state[k], c.state[k]) for k in c.state)
    assert b.meta["converted_from"]["format"] == "safetensors"

    assert convert_main([str(tmp_path / "a.pt"), str(tmp_path / "p.safetensors"), "--layout", "paddle"]) == 0
    p = load_checkpoint(tmp_path / "p.safetensors")
    assert p.framework == "paddle" and p.state["f5.weight"].shape == (400, 120)
    paddle_model = lenet_paddle.build("lenet5", seed=9)
    from safetensors.paddle import load_file as paddle_load_file

    paddle_model.set_state_dict(paddle_load_file(str(tmp_path / "p.safetensors")))
    assert np.array_equal(paddle_model.state_dict()["f5.weight"].numpy(), torch_state["f5.weight"].T)
    assert convert_main([str(tmp_path / "a.pt"), str(tmp_path / "t.safetensors"), "--layout", "torch"]) == 0
    assert convert_main([str(tmp_path / "t.safetensors"), str(tmp_path / "u.safetensors")]) == 2  # nothing to convert
    assert "give DST" in capsys.readouterr().err
    assert convert_main([str(tmp_path / "a.pt"), str(tmp_path / "x.pdparams"), "--layout", "torch"]) == 2
    assert "--layout is for a .safetensors DST" in capsys.readouterr().err


def test_plain_safetensors_of_either_layout(tmp_path):
    """A state dict saved with safetensors by someone else: the variant on the user's word, the
    layout from the shapes."""
    from safetensors.numpy import save_file

    torch_state = lenet_torch.bridge.state_numpy(lenet_torch.build("lenet5", seed=1))
    save_file(torch_state, tmp_path / "t.safetensors")
    save_file(convert(torch_state, "lenet5", "torch", "paddle"), tmp_path / "p.safetensors")
    with pytest.raises(CheckpointError, match="pass --variant"):
        load_checkpoint(tmp_path / "t.safetensors")
    t, p = load_checkpoint(tmp_path / "t.safetensors", "lenet5"), load_checkpoint(tmp_path / "p.safetensors", "lenet5")
    assert (t.framework, p.framework) == ("torch", "paddle")
    assert all(np.array_equal(convert(p.state, "lenet5", "paddle", "torch")[k], torch_state[k]) for k in torch_state)
    with pytest.raises(CheckpointError, match="not lenet-caffe in torch's layout"):
        load_checkpoint(tmp_path / "t.safetensors", "lenet-caffe")
    (tmp_path / "bad.safetensors").write_bytes((12).to_bytes(8, "little") + b'{"a": [1, 2]}' + b"\0" * 8)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(tmp_path / "bad.safetensors", "lenet5")


def test_safetensors_checkpoint_in_every_reader(tmp_path, capsys, mnist_test):
    """evaluate, parity.check --weights and export take a .safetensors checkpoint."""
    from export.__main__ import main as export_main
    from lenet_train.cli import evaluate_main
    from parity.check import main as check_main

    state = lenet_paddle.bridge.state_numpy(lenet_paddle.build("lenet5", seed=6))
    save_safetensors(tmp_path / "m.safetensors", "paddle", "lenet5", state, note="test")
    assert evaluate_main("torch", [str(tmp_path / "m.safetensors"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["source_framework"] == "paddle" and result["variant"] == "lenet5"
    assert check_main(["--weights", str(tmp_path / "m.safetensors"), "--dtype", "float64", "--batch", "8"]) == 0
    assert "2 passed, 0 failed" in capsys.readouterr().out
    assert export_main([str(tmp_path / "m.safetensors"), "--out", str(tmp_path / "m.onnx"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["framework"].startswith("paddle")


def test_checkpoint_files_are_bounded_and_recognised(tmp_path):
    big = tmp_path / "big.pt"
    with open(big, "wb") as f:
        f.truncate(MAX_BYTES + 1)
    with pytest.raises(CheckpointError, match="too large for a LeNet checkpoint"):
        load_checkpoint(big)
    (tmp_path / "folder.pt").mkdir()
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint(tmp_path / "folder.pt")
    (tmp_path / "text.pdparams").write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable paddle checkpoint"):
        load_checkpoint(tmp_path / "text.pdparams")
    # a zip that would unpack far beyond its size: refused before torch reads it
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\0" * (MAX_BYTES + 1))
    (tmp_path / "zipbomb.pt").write_bytes(buf.getvalue())
    assert (tmp_path / "zipbomb.pt").stat().st_size < 1 << 20
    with pytest.raises(CheckpointError, match="unpacks to"):
        load_checkpoint(tmp_path / "zipbomb.pt")
    with pytest.raises(CheckpointError, match="unknown checkpoint suffix"):
        load_checkpoint(tmp_path / "model.bin")


# Nothing lost: outputs are checked before the work, never replace an input or a finished run.


def test_outputs_never_replace_inputs(tmp_path, capsys):
    from export.__main__ import main as export_main
    from parity.check import main as check_main
    from parity.convert import main as convert_main

    ckpt = tmp_path / "w.pt"
    lenet_torch.save(ckpt, lenet_torch.build("lenet5"))
    before = ckpt.read_bytes()
    assert export_main([str(ckpt), "--out", str(ckpt)]) == 2
    assert "must end in .onnx" in capsys.readouterr().err
    (tmp_path / "w.onnx").symlink_to(ckpt)  # the same file under an .onnx name
    assert export_main([str(ckpt), "--out", str(tmp_path / "w.onnx")]) == 2
    assert "is the input" in capsys.readouterr().err
    assert check_main(["--weights", str(ckpt), "--json", str(ckpt)]) == 2
    out, err = capsys.readouterr()
    assert "an output never replaces an input" in err and "variant" not in out  # refused before any case ran
    assert ckpt.read_bytes() == before
    (tmp_path / "file").write_text("x")
    assert convert_main([str(ckpt), str(tmp_path / "file" / "w.pdparams")]) == 2
    assert "is a file, so no folder can be made there" in capsys.readouterr().err
    assert (
        check_main(["--variant", "lenet5", "--dtype", "float64", "--direction", "torch2paddle", "--batch", "4", "--json", str(tmp_path / "file" / "r.json")])
        == 2
    )
    assert (
        check_main(["--variant", "lenet5", "--dtype", "float64", "--direction", "torch2paddle", "--batch", "4", "--json", str(tmp_path / "new" / "r.json")])
        == 0
    )
    assert json.loads((tmp_path / "new" / "r.json").read_text())[0]["passed"]  # a missing folder is made


ARGS = ["--epochs", "2", "--batch-size", "16", "--no-progress", "--device", "cpu"]


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_a_finished_run_is_never_replaced_unasked(framework, trainer, tmp_path, capsys):
    out = tmp_path / "run"
    assert trainer.train_main(framework, [*ARGS, "--out", str(out)]) == 0
    suffix = ".pt" if framework == "torch" else ".pdparams"
    best = (out / f"best{suffix}").read_bytes()
    capsys.readouterr()
    assert trainer.train_main(framework, [*ARGS, "--lr", "0.5", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err and len(err.splitlines()) == 1
    assert (out / f"best{suffix}").read_bytes() == best
    other = "paddle" if framework == "torch" else "torch"
    assert trainer.train_main(other, [*ARGS, "--out", str(out)]) == 2  # another framework's trainer: the same
    assert trainer.train_main(other, [*ARGS, "--resume", "--out", str(out)]) == 2
    assert "which another trainer wrote" in capsys.readouterr().err
    assert trainer.train_main(framework, [*ARGS, "--resume", "--overwrite", "--out", str(out)]) == 2
    assert trainer.train_main(framework, [*ARGS, "--epochs", "1", "--overwrite", "--out", str(out)]) == 0
    assert "removed the run that was in" in capsys.readouterr().out
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1 and (out / f"best{suffix}").read_bytes() != best
    (tmp_path / "a_file").write_text("x")
    assert trainer.train_main(framework, [*ARGS, "--out", str(tmp_path / "a_file")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_killed_writes_leave_nothing_behind(framework, trainer, tmp_path, monkeypatch, capsys):
    """kill -9 during a write leaves a .tmp orphan, cleaned on the next start; killed while
    writing the best epoch's `best`, resuming writes it from `last`."""
    suffix = ".pt" if framework == "torch" else ".pdparams"
    backend_cls = __import__(f"lenet_{framework}.train", fromlist=["Backend"]).Backend
    real_save = backend_cls.save
    out = tmp_path / "run"

    def dies_writing_best(self, path, **extra):  # the second epoch is the best (forced below); die in its best write
        if path.name.startswith("best") and extra["epoch"] == 2:
            (path.parent / f".{path.name}.x1y2.tmp").write_bytes(b"half")  # what kill -9 leaves
            raise KeyboardInterrupt
        return real_save(self, path, **extra)

    import lenet_train.loop as loop

    real_evaluate, calls = loop.evaluate, iter(range(1, 100))
    monkeypatch.setattr(loop, "evaluate", lambda *a: {**real_evaluate(*a), "acc": 0.1 * next(calls)})  # rising: epoch 2 is the best
    monkeypatch.setattr(backend_cls, "save", dies_writing_best)
    assert trainer.train_main(framework, [*ARGS, "--out", str(out)]) == 130
    assert (out / f".best{suffix}.x1y2.tmp").exists()
    package = lenet_torch if framework == "torch" else lenet_paddle
    assert package.load(out / f"best{suffix}").meta["epoch"] == 1 and package.load(out / f"last{suffix}").meta["epoch"] == 2
    monkeypatch.setattr(backend_cls, "save", real_save)
    capsys.readouterr()
    assert trainer.train_main(framework, ["--resume", "--no-progress", "--out", str(out)]) == 0
    log = capsys.readouterr().out
    assert f"removed .best{suffix}.x1y2.tmp" in log and f"best{suffix} missed epoch 2" in log
    assert not list(out.glob(".*.tmp"))
    best, last = package.load(out / f"best{suffix}"), package.load(out / f"last{suffix}")
    assert best.meta["epoch"] == 2 and all(np.array_equal(best.state[k], last.state[k]) for k in last.state)


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_non_finite_rates_and_divergence_stop_in_one_line(framework, trainer, tmp_path, capsys):
    for lr in ("nan", "inf", "-1"):
        assert trainer.train_main(framework, [*ARGS, "--lr", lr, "--out", str(tmp_path / lr)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "lr" in err, err
        assert not (tmp_path / lr).exists()
    out = tmp_path / "diverged"
    assert trainer.train_main(framework, [*ARGS, "--optimizer", "sgd", "--lr", "1e30", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "training diverged" in err and "nothing was saved" in err and len(err.splitlines()) == 1
    assert not list(out.glob("last*")) and not list(out.glob("best*"))


@pytest.mark.slow
def test_divergence_keeps_the_last_finite_best(trainer, tmp_path, monkeypatch, capsys):
    import lenet_train.loop as loop

    real = loop.run_epoch
    monkeypatch.setattr(loop, "run_epoch", lambda b, d, r, s, epoch, *a, **k: (float("nan"), 0.0) if epoch == 1 else real(b, d, r, s, epoch, *a, **k))
    assert trainer.train_main("torch", [*ARGS, "--out", str(tmp_path)]) == 2
    assert "epoch 2: the loss became nan" in capsys.readouterr().err
    best = lenet_torch.load(tmp_path / "best.pt")
    assert best.meta["epoch"] == 1 and all(np.isfinite(v).all() for v in best.state.values())
    assert [json.loads(line)["epoch"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1]


@pytest.mark.slow
def test_interrupt_before_anything_was_saved_offers_no_resume(trainer, tmp_path, monkeypatch, capsys):
    from lenet_paddle.train import Backend

    def interrupted(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(Backend, "train_step", interrupted)
    assert trainer.train_main("paddle", [*ARGS, "--out", str(tmp_path / "r")]) == 130
    err = capsys.readouterr().err
    assert "nothing was saved" in err and "--resume" not in err


# Tracebacks where one line is due.


def test_truncated_training_data_in_parity_check(tmp_path, capsys):
    import gzip

    from parity.check import main as check_main

    source = ROOT.parent / "shared" / "datasets" / "mnist"
    if not (source / "train-labels-idx1-ubyte.gz").exists():
        pytest.skip("MNIST not found")
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (tmp_path / name).write_bytes((source / name).read_bytes())
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(gzip.decompress((source / "train-images-idx3-ubyte.gz").read_bytes())[:100_000]))
    assert check_main(["--train", "2", "--variant", "lenet5", "--dtype", "float64", "--data-dir", str(tmp_path)]) == 2
    assert "truncated" in capsys.readouterr().err


def test_verify_limit_must_be_positive(onnx_file, capsys):
    from export.verify import main as verify_main

    model, _ = onnx_file
    for limit in ("0", "-1"):
        assert verify_main([str(model), "--limit", limit]) == 2
        assert capsys.readouterr().err.strip() == f"export.verify: error: --limit must be at least 1, got {limit}"


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_ctrl_c_at_any_moment_is_one_line(framework, tmp_path):
    """SIGINT while the command starts (torch or paddle being imported), while it loads the
    data, and while it trains: status 130 (or death by SIGINT, which a shell reports as 130), no traceback."""
    import signal
    import time

    for delay in (0.4, 1.5, 3.0):
        out = tmp_path / f"run{delay}"
        proc = subprocess.Popen(
            [sys.executable, "-m", f"lenet_{framework}.train", "--epochs", "1", "--limit", "3000", "--no-progress", "--out", str(out)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "LENET_DATA": str(ROOT.parent / "shared" / "datasets")},
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode in (130, -signal.SIGINT), (delay, proc.returncode, err)
        assert "Traceback" not in err and "interrupted" in err, (delay, err)
