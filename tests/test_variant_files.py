"""--variant takes a spec file in every command, and checkpoints carry their network's spec: a
network that is not built in (here lenet5 with tanh for relu, "mynet") is trained, evaluated,
checked, converted and exported from its .toml file, and then from its checkpoint alone."""

from __future__ import annotations

import dataclasses
import json
import pickle

import numpy as np
import pytest

import lenet_paddle
import lenet_torch
from lenet_paddle import bridge as paddle_bridge
from lenet_torch import bridge as torch_bridge
from lenet_spec import VARIANTS, get_variant, resolve, specfile
from lenet_spec.checkpoint import CheckpointError, loads_paddle, save_safetensors
from lenet_spec.load import load_checkpoint
from lenet_spec.recipe import RECIPES, default_recipe
from lenet_spec.variants import is_builtin


def mynet(name: str = "mynet", activation: str = "tanh") -> object:
    """lenet5 with every relu turned into `activation`: a network no built-in variant is."""
    base = get_variant("lenet5")
    layers = tuple(dataclasses.replace(layer, activation=activation) if getattr(layer, "activation", None) == "relu" else layer for layer in base.layers)
    return dataclasses.replace(base, name=name, title=f"lenet5 with {activation}", layers=layers)


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "mynet.toml"
    specfile.save(path, mynet())
    return path


def one_line(text: str) -> str:
    assert text.count("\n") == 1 and "Traceback" not in text, text
    return text


# --- the resolver ---
def test_resolve_takes_a_name_or_a_spec_file(spec_file):
    assert resolve("lenet5") is VARIANTS["lenet5"]
    assert resolve(str(spec_file)) == mynet() and not is_builtin(resolve(str(spec_file)))
    assert get_variant(mynet()) == mynet()  # code that takes a name takes a Variant too
    specfile.save(spec_file.parent / "copy.toml", VARIANTS["d2l"])
    assert resolve(str(spec_file.parent / "copy.toml")) is VARIANTS["d2l"]  # a built-in's own spec is that variant


def test_resolve_errors_are_one_line_naming_the_fix(tmp_path):
    with pytest.raises(
        ValueError, match=r"unknown variant 'lenet6'; choose from lenet5, .*or give a spec file \(a path ending in \.toml\); did you mean lenet5\?"
    ):
        resolve("lenet6")
    with pytest.raises(specfile.SpecError, match="no such spec file"):
        resolve(str(tmp_path / "missing.toml"))
    specfile.save(tmp_path / "fake.toml", mynet(name="lenet5"))
    with pytest.raises(specfile.SpecError, match="a built-in variant's name, but is another network"):
        resolve(str(tmp_path / "fake.toml"))


def test_a_network_of_ones_own_trains_with_lenet5s_recipe_on_its_data_set():
    assert default_recipe(mynet()) == RECIPES["lenet5"]
    assert default_recipe(dataclasses.replace(mynet(), dataset="fashion-mnist")).dataset == "fashion-mnist"
    assert default_recipe(VARIANTS["d2l"]) == RECIPES["d2l"]


# --- the commands' --variant ---
def _mains():
    from benchmarks.run import main as bench_main
    from export.__main__ import main as export_main
    from lenet_train.cli import evaluate_main, train_main
    from parity.check import main as check_main
    from parity.convert import main as convert_main

    return {
        "train": lambda v, d: train_main("torch", ["--variant", v, "--out", str(d / "run")]),
        "evaluate": lambda v, d: evaluate_main("paddle", [str(d / "x.pt"), "--variant", v]),
        "parity.check": lambda v, d: check_main(["--variant", v]),
        "parity.convert": lambda v, d: convert_main([str(d / "x.pt"), str(d / "x.pdparams"), "--variant", v]),
        "export": lambda v, d: export_main(["--variant", v, "--framework", "torch", "--out", str(d / "x.onnx")]),
        "benchmarks": lambda v, d: bench_main(["--quick", "--variants", v, "--json", str(d / "b.json")]),
    }


@pytest.mark.parametrize("command", sorted(_mains()))
@pytest.mark.parametrize("case", ["missing", "unknown layer"])
def test_every_command_says_a_bad_spec_file_in_one_line(tmp_path, capsys, command, case):
    path = tmp_path / "net.toml"
    if case == "unknown layer":
        path.write_text(specfile.dumps(mynet()).replace('type = "pool"', 'type = "pooling"', 1))
    try:
        status = _mains()[command](str(path), tmp_path)
    except SystemExit as e:  # the parser's one line
        status = e.code
    assert status == 2
    err = one_line(capsys.readouterr().err)
    assert str(path) in err
    assert ("no such spec file" if case == "missing" else 'unknown layer type "pooling"; did you mean pool?') in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "x.onnx").exists()


def test_an_unknown_name_is_still_an_invalid_choice(capsys):
    from parity.check import main as check_main

    with pytest.raises(SystemExit) as e:
        check_main(["--variant", "lenet6"])
    assert e.value.code == 2
    err = one_line(capsys.readouterr().err)
    assert "invalid choice: 'lenet6'; choose from lenet5, " in err and "or a .toml spec file; did you mean lenet5?" in err


def test_summary_of_a_spec_file(spec_file, capsys):
    from lenet_spec.__main__ import main as spec_main

    assert spec_main(["summary", str(spec_file), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["variant"] == "mynet" and doc["total_params"] == VARIANTS["lenet5"].num_params()


def test_parity_check_of_a_spec_file(spec_file, capsys):
    from parity.check import main as check_main

    assert check_main(["--variant", str(spec_file), "--dtype", "float64", "--direction", "torch2paddle", "--batch", "4"]) == 0
    out = capsys.readouterr().out
    assert "mynet " in out and "1 passed, 0 failed" in out


# --- checkpoints carry the spec ---
@pytest.mark.parametrize("writer", ["torch", "paddle", "safetensors"])
def test_a_checkpoint_carries_its_spec_and_loads_without_the_file(tmp_path, writer):
    net = mynet()
    if writer == "torch":
        path = tmp_path / "m.pt"
        lenet_torch.save(path, lenet_torch.build(net, seed=1))
    elif writer == "paddle":
        path = tmp_path / "m.pdparams"
        lenet_paddle.save(path, lenet_paddle.build(net, seed=1))
    else:
        path = tmp_path / "m.safetensors"
        save_safetensors(path, "torch", net, torch_bridge.state_numpy(lenet_torch.build(net, seed=1)))
    ckpt = load_checkpoint(path)
    assert ckpt.variant == "mynet" and ckpt.spec == net and specfile.loads(ckpt.meta["spec"]) == net
    assert load_checkpoint(path, net).spec == net  # the expected network, compared by its spec
    with pytest.raises(CheckpointError, match="whose spec differs from the one given"):
        load_checkpoint(path, mynet(activation="sigmoid"))
    with pytest.raises(CheckpointError, match="holds variant 'mynet', not 'lenet5'"):
        load_checkpoint(path, "lenet5")


def test_a_built_in_variants_checkpoint_carries_its_spec_too(tmp_path):
    lenet_paddle.save(tmp_path / "d.pdparams", lenet_paddle.build("d2l"))
    ckpt = load_checkpoint(tmp_path / "d.pdparams", VARIANTS["d2l"])
    assert ckpt.spec is VARIANTS["d2l"] and specfile.loads(ckpt.meta["spec"]) == VARIANTS["d2l"]


def rewritten(tmp_path, name: str = "mynet", **change):
    """A .pdparams of mynet whose envelope is changed (None: the key removed), as a stranger's could be."""
    src = tmp_path / "src.pdparams"
    lenet_paddle.save(src, lenet_paddle.build(mynet() if name == "mynet" else name))
    ckpt = loads_paddle(src.read_bytes(), src)
    envelope = {**ckpt.meta, **change, "state_dict": ckpt.state}
    envelope = {k: v for k, v in envelope.items() if v is not None}
    path = tmp_path / "changed.pdparams"
    path.write_bytes(pickle.dumps(envelope, protocol=2))
    return path


def test_a_checkpoint_written_before_the_spec_loads_as_before(tmp_path):
    old = rewritten(tmp_path, "lenet5", spec=None)
    ckpt = load_checkpoint(old)
    assert ckpt.variant == "lenet5" and ckpt.spec is VARIANTS["lenet5"] and "spec" not in ckpt.meta
    with pytest.raises(CheckpointError, match="unknown variant 'mynet', and the checkpoint carries no spec of it"):
        load_checkpoint(rewritten(tmp_path, spec=None))


@pytest.mark.parametrize(
    "spec, message",
    [
        ("not toml [", "its spec: not a TOML file"),
        (specfile.dumps(mynet()).replace('type = "pool"', 'type = "gru"', 1), 'its spec: layers[1] (s2): unknown layer type "gru"'),
        (12, "its spec is 12, not the text of a spec file"),
        (specfile.dumps(mynet(name="other")), "its spec is of 'other', but it says it holds 'mynet'"),
        ("#" * (specfile.MAX_BYTES + 1), "more than a network's spec (1024 KiB at most)"),
    ],
)
def test_a_corrupt_embedded_spec_is_one_line(tmp_path, capsys, spec, message):
    path = rewritten(tmp_path, spec=spec)
    with pytest.raises(CheckpointError, match=None) as e:
        load_checkpoint(path)
    assert message in str(e.value) and "\n" not in str(e.value) and str(e.value).startswith(str(path))
    from parity.convert import main as convert_main

    assert convert_main([str(path), str(tmp_path / "out.pt")]) == 2
    assert message in one_line(capsys.readouterr().err)


def test_a_spec_under_a_built_in_name_must_be_that_variant(tmp_path):
    path = rewritten(tmp_path, "lenet5", spec=specfile.dumps(mynet(name="lenet5")))
    with pytest.raises(CheckpointError, match="a built-in variant's name, whose spec is not that variant's"):
        load_checkpoint(path)
    retitled = rewritten(tmp_path, "lenet5", spec=specfile.dumps(dataclasses.replace(VARIANTS["lenet5"], title="renamed")))
    assert load_checkpoint(retitled).spec is VARIANTS["lenet5"]  # a title is no part of the network


def test_convert_carries_the_spec_to_the_other_framework(tmp_path, capsys):
    from parity.convert import main as convert_main

    net = mynet()
    model = lenet_torch.build(net, seed=4)
    lenet_torch.save(tmp_path / "m.pt", model)
    assert convert_main([str(tmp_path / "m.pt"), str(tmp_path / "m.pdparams")]) == 0
    assert "wrote" in capsys.readouterr().out
    other = lenet_paddle.load_model(tmp_path / "m.pdparams")  # no spec file: the network from the checkpoint
    assert other.variant == net
    x = np.random.default_rng(0).random((4, 1, 28, 28)).astype(np.float32)
    a, b = torch_bridge.forward_numpy(model, x).popitem()[1], paddle_bridge.forward_numpy(other, x).popitem()[1]
    assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max()
    assert convert_main([str(tmp_path / "m.pdparams"), str(tmp_path / "m.safetensors"), "--layout", "torch"]) == 0
    assert load_checkpoint(tmp_path / "m.safetensors").spec == net


def test_parity_check_of_a_checkpoint_without_its_spec_file(tmp_path, capsys):
    from parity.check import main as check_main

    lenet_paddle.save(tmp_path / "m.pdparams", lenet_paddle.build(mynet(), seed=2))
    assert check_main(["--weights", str(tmp_path / "m.pdparams"), "--dtype", "float32", "--direction", "paddle2torch", "--batch", "4"]) == 0
    out = capsys.readouterr().out
    assert "weights: " in out and "(mynet)" in out and "1 passed, 0 failed" in out


@pytest.mark.slow
def test_export_from_a_spec_file_and_from_its_checkpoint(tmp_path, spec_file, capsys):
    """Two exports (child processes, seconds each), each checked in onnxruntime."""
    from export.__main__ import main as export_main

    assert export_main(["--variant", str(spec_file), "--seed", "1", "--framework", "paddle", "--out", str(tmp_path / "fresh.onnx"), "--check", "--json"]) == 0
    fresh = json.loads(capsys.readouterr().out)
    assert fresh["variant"] == "mynet" and fresh["verify"]["passed"]
    lenet_torch.save(tmp_path / "m.pt", lenet_torch.build(mynet(), seed=3))
    assert export_main([str(tmp_path / "m.pt"), "--check", "--json"]) == 0  # the network from the checkpoint
    saved = json.loads(capsys.readouterr().out)
    assert saved["variant"] == "mynet" and saved["verify"]["passed"] and (tmp_path / "m.onnx").exists()


@pytest.mark.slow
def test_train_evaluate_resume_and_convert_a_network_of_ones_own(trainer, tmp_path, spec_file, capsys):
    """Train 1 epoch from the .toml file (tiny random data), then everything from the checkpoint alone."""
    out = tmp_path / "run"
    assert trainer.train_main("torch", ["--variant", str(spec_file), "--epochs", "1", "--out", str(out), "--no-progress", "--device", "cpu"]) == 0
    capsys.readouterr()
    spec_file.unlink()  # from here on the network comes from the checkpoint
    assert lenet_torch.load(out / "best.pt").spec == mynet()
    assert trainer.evaluate_main("paddle", [str(out / "best.pt"), "--json", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["variant"] == "mynet"
    assert trainer.train_main("torch", ["--resume", "--epochs", "2", "--out", str(out), "--no-progress", "--device", "cpu"]) == 0
    assert lenet_torch.load(out / "last.pt").meta["epoch"] == 2
    assert trainer.train_main("torch", ["--resume", "--variant", "lenet5", "--out", str(out), "--no-progress"]) == 2
    assert "drop --variant lenet5 (run has mynet)" in one_line(capsys.readouterr().err)
    from parity.convert import main as convert_main

    assert convert_main([str(out / "last.pt"), str(tmp_path / "last.pdparams")]) == 0
    assert trainer.evaluate_main("torch", [str(tmp_path / "last.pdparams"), "--json", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["variant"] == "mynet"
