"""lenet_spec.mapping and parity.convert: the table, bit-exact round trips, checkpoint files both ways."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

import lenet_paddle
import lenet_torch
from lenet_paddle import bridge as paddle_io
from lenet_spec import VARIANTS, get_variant
from lenet_spec.checkpoint import CheckpointError
from lenet_torch import bridge as torch_io
from parity.convert import main as convert_main
from lenet_spec.mapping import MappingError, convert, paddle_to_torch, table, torch_to_paddle

pytestmark = pytest.mark.cross


def test_table_transposes_dense_weights_only():
    entries = table("lenet5")
    flipped = [e.names["torch"] for e in entries if e.transposed["paddle"]]
    assert flipped == ["f5.weight", "f6.weight", "output.weight"]
    f5 = next(e for e in entries if e.names["torch"] == "f5.weight")
    assert f5.shapes == {"spec": (120, 400), "torch": (120, 400), "paddle": (400, 120)}
    assert all(not e.transposed["torch"] for e in entries)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", VARIANTS)
def test_round_trips_are_bit_exact(name, dtype):
    t = lenet_torch.build(name, seed=3, dtype=dtype)
    state = torch_io.state_numpy(t)
    p = lenet_paddle.build(name, seed=4, dtype=dtype)
    paddle_io.load_state_numpy(p, torch_to_paddle(state, name))
    t2 = lenet_torch.build(name, seed=5, dtype=dtype)
    torch_io.load_state_numpy(t2, paddle_to_torch(paddle_io.state_numpy(p), name))
    back = torch_io.state_numpy(t2)
    assert all(np.array_equal(back[k], state[k]) and back[k].dtype == (np.int64 if k.endswith("num_batches_tracked") else np.dtype(dtype)) for k in state)


def test_mismatched_state_lists_every_problem():
    state = torch_io.state_numpy(lenet_torch.build("lenet5"))
    state["extra.weight"] = state.pop("c1.bias")
    state["f5.weight"] = state["f5.weight"].T
    with pytest.raises(MappingError) as info:
        torch_to_paddle(state, "lenet5")
    message = str(info.value)
    assert "missing ['c1.bias']" in message and "unexpected ['extra.weight']" in message
    assert "mis-shaped [f5.weight (400, 120) != (120, 400)]" in message
    with pytest.raises(MappingError, match="missing"):
        convert(state, "lenet-caffe", src="torch", dst="paddle")  # another variant's state


def test_model_load_rejects_another_variants_state():
    with pytest.raises(ValueError, match="missing"):
        paddle_io.load_state_numpy(lenet_paddle.build("d2l"), paddle_io.state_numpy(lenet_paddle.build("cifar-net")))


@pytest.mark.parametrize("name", ["lenet5-1998", "lenet-caffe"])
def test_checkpoint_files_both_ways(tmp_path, name, capsys):
    t = lenet_torch.build(name, seed=11)
    lenet_torch.save(tmp_path / "a.pt", t)
    assert convert_main([str(tmp_path / "a.pt"), str(tmp_path / "b.pdparams")]) == 0
    assert f"{name}, " in capsys.readouterr().out
    p = lenet_paddle.load_model(tmp_path / "b.pdparams")
    assert p.variant.name == name
    x = np.random.default_rng(0).random((4, *get_variant(name).input.shape)).astype(np.float32)
    logits_t, logits_p = torch_io.forward_numpy(t, x).popitem()[1], paddle_io.forward_numpy(p, x).popitem()[1]
    assert np.abs(logits_t - logits_p).max() <= 1e-5 * np.abs(logits_t).max()
    assert convert_main([str(tmp_path / "b.pdparams"), str(tmp_path / "c.pt")]) == 0
    a, c = lenet_torch.load(tmp_path / "a.pt"), lenet_torch.load(tmp_path / "c.pt")
    assert c.variant == name and all(np.array_equal(a.state[k], c.state[k]) for k in a.state)
    assert c.meta["converted_from"]["framework"] == "paddle"


def test_float64_checkpoint_keeps_its_dtype(tmp_path):
    lenet_paddle.save(tmp_path / "m.pdparams", lenet_paddle.build("d2l", dtype="float64"))
    assert convert_main([str(tmp_path / "m.pdparams"), str(tmp_path / "m.pt")]) == 0
    model = lenet_torch.load_model(tmp_path / "m.pt")
    assert next(model.parameters()).dtype.is_floating_point and str(next(model.parameters()).dtype) == "torch.float64"


def test_plain_state_dict_needs_a_variant(tmp_path, capsys):
    import torch

    torch.save(lenet_torch.build("lenet5").state_dict(), tmp_path / "plain.pt")
    assert convert_main([str(tmp_path / "plain.pt"), str(tmp_path / "out.pdparams")]) == 2
    assert "pass --variant NAME" in capsys.readouterr().err
    assert convert_main([str(tmp_path / "plain.pt"), str(tmp_path / "out.pdparams"), "--variant", "d2l"]) == 0  # same layers as lenet5
    assert "its names and shapes match d2l (so do lenet5's); the variant is taken on your word (--variant)" in capsys.readouterr().out
    assert convert_main([str(tmp_path / "plain.pt"), str(tmp_path / "out.pdparams"), "--variant", "cifar-net"]) == 2
    assert "missing ['conv1.weight'" in capsys.readouterr().err


def test_refuses_another_variant(tmp_path, capsys):
    lenet_torch.save(tmp_path / "a.pt", lenet_torch.build("lenet5"))
    assert convert_main([str(tmp_path / "a.pt"), str(tmp_path / "b.pdparams"), "--variant", "lenet5-1998"]) == 2
    assert "holds variant 'lenet5', not 'lenet5-1998'" in capsys.readouterr().err
    assert not (tmp_path / "b.pdparams").exists()


@pytest.mark.parametrize("src, dst", [("a.pt", "b.pt"), ("a.pt", "b.onnx"), ("a.txt", "b.pt")])
def test_refuses_wrong_suffixes(tmp_path, src, dst, capsys):
    lenet_torch.save(tmp_path / "a.pt", lenet_torch.build("lenet5"))
    assert convert_main([str(tmp_path / src), str(tmp_path / dst)]) == 2
    assert capsys.readouterr().err.startswith("parity.convert: error: ")


def test_wrong_framework_inside(tmp_path, capsys):
    """A file is recognised by its bytes: a paddle pickle named .pt (or a torch zip named .pdparams)
    gets a rename hint, not torch's "Please file an issue" text from its weights-only unpickler."""
    lenet_paddle.save(tmp_path / "p.pdparams", lenet_paddle.build("lenet5"))
    (tmp_path / "p.pt").write_bytes((tmp_path / "p.pdparams").read_bytes())
    assert convert_main([str(tmp_path / "p.pt"), str(tmp_path / "q.pdparams")]) == 2
    err = capsys.readouterr().err
    assert "p.pt: holds a paddle checkpoint (paddle.save's pickle), but its suffix says torch; rename it to .pdparams" in err
    assert "file an issue" not in err and len(err.strip().splitlines()) == 1
    lenet_torch.save(tmp_path / "t.pt", lenet_torch.build("lenet5"))
    (tmp_path / "t.pdparams").write_bytes((tmp_path / "t.pt").read_bytes())
    assert convert_main([str(tmp_path / "t.pdparams"), str(tmp_path / "u.pt")]) == 2
    assert "t.pdparams: holds a torch checkpoint (torch.save's zip), but its suffix says paddle; rename it to .pt" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".pt", ".pdparams"])
def test_corrupt_file_is_one_line_no_traceback(tmp_path, suffix):
    good = tmp_path / f"good{suffix}"
    (lenet_torch if suffix == ".pt" else lenet_paddle).save(good, (lenet_torch if suffix == ".pt" else lenet_paddle).build("lenet5"))
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    other = ".pdparams" if suffix == ".pt" else ".pt"
    proc = subprocess.run([sys.executable, "-m", "parity.convert", str(bad), str(tmp_path / f"out{other}")], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert f"bad{suffix}: not a readable" in proc.stderr
    assert not (tmp_path / f"out{other}").exists()


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    import torch

    path = tmp_path / "m.pt"
    lenet_torch.save(path, lenet_torch.build("lenet5", seed=1))
    before = path.read_bytes()

    def broken_save(obj, f):
        with open(f, "wb") as out:
            out.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        lenet_torch.save(path, lenet_torch.build("lenet5", seed=2))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary file left behind


def test_load_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        lenet_paddle.load(tmp_path / "missing.pdparams")
    import paddle

    paddle.save([1, 2, 3], str(tmp_path / "list.pdparams"))
    with pytest.raises(CheckpointError, match="holds a list, not a checkpoint dict"):
        lenet_paddle.load(tmp_path / "list.pdparams")


def test_a_missing_file_exits_2_as_every_command_does(tmp_path, capsys):
    """Unusable input is exit status 2 in every command (parity.convert's was 1): here a SRC that
    is not there, next to parity.check --weights given the same path."""
    from parity.check import main as check_main

    missing = tmp_path / "missing.pt"
    assert convert_main([str(missing), str(tmp_path / "out.pdparams")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("parity.convert: error: ") and "missing.pt" in err and len(err.splitlines()) == 1
    assert check_main(["--weights", str(missing), "--variant", "lenet5"]) == 2 and not (tmp_path / "out.pdparams").exists()
