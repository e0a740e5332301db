"""Spec files (lenet_spec/specfile.py): a network as TOML data, written and read back exactly, and
every mistake in one is one line naming the layer, the key and the fix."""

from __future__ import annotations

import pytest

from lenet_spec import VARIANTS
from lenet_spec.specfile import MAX_BYTES, SpecError, dumps, load, loads, save


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_variant_round_trips_through_its_spec_file(name, tmp_path):
    variant = VARIANTS[name]
    save(tmp_path / f"{name}.toml", variant)
    back = load(tmp_path / f"{name}.toml")
    assert back == variant
    assert back.shapes() == variant.shapes() and back.num_params() == variant.num_params()
    assert dumps(back) == dumps(variant)


LENET5 = dumps(VARIANTS["lenet5"])


@pytest.mark.parametrize(
    "edit, expected",
    [
        (("kernel = 5\n", "kernle = 5\n", 1), "layers[0] (c1): unknown key 'kernle'; did you mean kernel?"),
        (('type = "pool"', 'type = "pooling"', 1), 'layers[1] (s2): unknown layer type "pooling"; did you mean pool?'),
        (("in_features = 400", "in_features = 256", 1), "f5: expects (256,), got (400,)"),
        (("out_channels = 6\n", "out_channels = 6.5\n", 1), "layers[0] (c1): out_channels must be a whole number, not 6.5"),
        (("kernel = 5\n", "", 1), "layers[0] (c1): missing 'kernel'; a conv layer needs kernel"),
        (('activation = "relu"', 'activation = "gelu"', 1), "c1: unknown activation 'gelu'"),
        (('init = "fan-in-uniform"', 'init = "he"', 1), "init 'he' is not a scheme the spec knows"),
        (('name = "lenet5"', 'nmae = "lenet5"', 1), "unknown key 'nmae' at the top; did you mean name?"),
        (("format_version = 1", "format_version = 2", 1), "format_version 2 is not 1"),
        (("[input]", "[input", 1), "not a TOML file"),
        (('type = "pool"', 'type = "gru"', 1), 'layers[1] (s2): unknown layer type "gru"; the spec knows adaptive_pool, batchnorm, conv'),
        (('"8", "9"]', '"8"]', 1), "output (10,) does not match 9 classes"),
        (("channels = 1", "channels = 3", 1), "c1: expects 1 input maps, got 3"),
    ],
)
def test_a_mistake_is_one_line_naming_the_layer_and_the_key(tmp_path, edit, expected):
    old, new, count = edit
    assert LENET5.count(old) >= count, old
    text = LENET5.replace(old, new, count)
    (tmp_path / "net.toml").write_text(text)
    with pytest.raises(SpecError) as e:
        load(tmp_path / "net.toml")
    message = str(e.value)
    assert expected in message and "\n" not in message and message.startswith(str(tmp_path / "net.toml"))


def test_a_spec_file_is_data_and_bounded(tmp_path):
    """Not a spec: other TOML, a file too large to be one, bytes that are not text."""
    with pytest.raises(SpecError, match="not a lenet-parity spec"):
        loads('title = "x"\n', "x.toml")
    (tmp_path / "big.toml").write_text(LENET5 + "#" * MAX_BYTES)
    with pytest.raises(SpecError, match="more than 1024 KiB"):
        load(tmp_path / "big.toml")
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SpecError, match="not UTF-8 text"):
        load(tmp_path / "bin.toml")
    with pytest.raises(SpecError, match="cannot read it"):
        load(tmp_path / "missing.toml")


@pytest.mark.parametrize("activation", ["tanh", "leaky_relu"])
def test_a_new_activation_is_proven_in_both_frameworks_and_the_reference(tmp_path, activation):
    """tanh and leaky_relu (issue 24's vocabulary): lenet5 with every ReLU replaced, written as a
    spec file and read back, built by both frameworks: parity.diff finds them equal in every phase,
    and torch's float64 logits agree with the NumPy reference."""
    pytest.importorskip("torch")
    pytest.importorskip("paddle")
    import dataclasses

    import numpy as np

    from lenet_paddle.model import build as paddle_build
    from lenet_spec.compare import REFERENCE_TOL
    from lenet_spec.mapping import convert
    from lenet_spec.reference import forward
    from lenet_torch import bridge
    from lenet_torch.model import build as torch_build
    from parity.diff import compare

    base = VARIANTS["lenet5"]
    layers = tuple(dataclasses.replace(layer, activation=activation) if getattr(layer, "activation", "identity") == "relu" else layer for layer in base.layers)
    variant = dataclasses.replace(base, name=f"lenet5-{activation}", layers=layers)
    save(tmp_path / "net.toml", variant)
    variant = load(tmp_path / "net.toml")
    assert sum(getattr(layer, "activation", "") == activation for layer in variant.layers) == 4
    x = np.random.default_rng(0).random((8, 1, 28, 28))
    report = compare(torch_build(variant, seed=1), paddle_build(variant, seed=2), x, train=2)
    assert report.equal, report
    model = torch_build(variant, seed=3, dtype="float64")
    spec_params = convert(bridge.state_numpy(model), variant, "torch", "spec")
    ours, reference = bridge.forward_numpy(model, x), forward(variant, spec_params, x)
    logits = list(ours)[-1]
    assert np.abs(ours[logits] - reference[list(reference)[-1]]).max() / np.abs(reference[list(reference)[-1]]).max() < REFERENCE_TOL["float64"]
