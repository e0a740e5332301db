"""lenet_spec: the paper's numbers, shapes, initialisation, the NumPy reference, the summary CLI."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, SHARED

import lenet_spec
from lenet_spec import C3_TABLE, VARIANTS, get_variant, init_params, rbf_bitmaps, reference
from lenet_spec.__main__ import main as spec_main

PUBLISHED_COUNTS = {"lenet5": 61_706, "lenet5-1998": 60_000, "d2l": 61_706, "lenet-caffe": 431_080, "cifar-net": 62_006}


def test_exactly_the_seven_variants():
    assert list(VARIANTS) == ["lenet5", "lenet5-1998", "d2l", "lenet-caffe", "cifar-net", "lenet5-bn", "lenet-caffe-dropout"]


@pytest.mark.parametrize("name", PUBLISHED_COUNTS)
def test_parameter_counts(name):
    assert get_variant(name).num_params() == PUBLISHED_COUNTS[name]


def test_lenet5_1998_layers_match_the_paper():
    v = get_variant("lenet5-1998")
    counts = v.layer_params()
    assert {k: counts[k] for k in ("c1", "s2", "c3", "s4", "c5", "f6", "output")} == {
        "c1": 156, "s2": 12, "c3": 1_516, "s4": 32, "c5": 48_120, "f6": 10_164, "output": 0,
    }  # fmt: skip
    shapes = dict(v.shapes())
    assert shapes["input"] == (1, 32, 32)
    assert shapes["c1"] == (6, 28, 28) and shapes["s2"] == (6, 14, 14) and shapes["c3"] == (16, 10, 10)
    assert shapes["s4"] == (16, 5, 5) and shapes["c5"] == (120, 1, 1) and shapes["f6"] == (84,) and shapes["output"] == (10,)


def test_c3_table_is_table_one():
    assert len(C3_TABLE) == 16
    assert [len(row) for row in C3_TABLE] == [3] * 6 + [4] * 9 + [6]
    c3 = next(layer for layer in get_variant("lenet5-1998").layers if layer.name == "c3")
    groups = c3.groups()
    assert [(g.fan, g.maps) for g in groups] == [(3, tuple(range(6))), (4, tuple(range(6, 15))), (6, (15,))]
    assert groups[0].inputs[:6] == (0, 1, 2, 1, 2, 3)  # maps 0 and 1 of Table I
    assert sum(int(np.prod(p.shape)) for p in c3.params()) == 1_516  # a dense 6->16 conv has 2,416


def test_paper_facts():
    v = get_variant("lenet5-1998")
    assert (v.input.pad, v.input.scale, v.input.offset) == (2, 1.275, -0.1)  # background -0.1, ink 1.175
    assert v.input.scale * 1.0 + v.input.offset == pytest.approx(1.175)
    assert lenet_spec.SCALED_TANH_A * np.tanh(lenet_spec.SCALED_TANH_S) == pytest.approx(1.0, abs=1e-4)  # f(1) = 1


def test_rbf_bitmaps():
    codes = rbf_bitmaps()
    assert codes.shape == (10, 84) and set(np.unique(codes)) == {-1.0, 1.0}
    assert len({tuple(row) for row in codes}) == 10
    shared = SHARED / "lenet5-1998" / "rbf_bitmaps.txt"
    if shared.exists():  # the package's copy is the paper's file
        assert shared.read_text() == (ROOT / "lenet_spec" / "data" / "rbf_bitmaps.txt").read_text()


@pytest.mark.parametrize("name", VARIANTS)
def test_init_is_seeded_and_within_bounds(name):
    v = get_variant(name)
    a, b, c = init_params(v, 0), init_params(v, 0), init_params(v, 1)
    assert list(a) == [s.name for s in v.state()]
    assert all(np.array_equal(a[k], b[k]) for k in a)
    constant = {p.name for p in v.params() if p.role.startswith("batchnorm.")} | {b.name for b in v.buffers()}  # BatchNorm starts as the identity
    assert not any(np.array_equal(a[k], c[k]) for k in a if k not in constant)
    assert all(np.array_equal(a[k], c[k]) for k in constant)
    for b in v.buffers():
        assert a[b.name].dtype == (np.int64 if b.dtype == "int64" else np.float32) and np.all(a[b.name] == b.initial)
    for p in v.params():
        if p.name in constant:
            assert np.all(a[p.name] == (1.0 if p.role == "batchnorm.weight" else 0.0))
            continue
        assert a[p.name].dtype == np.float32 and a[p.name].shape == p.shape
        if v.init == "lecun-1998":
            assert np.abs(a[p.name]).max() <= 2.4 / p.fan_in
            if a[p.name].size >= 100:
                assert np.abs(a[p.name]).max() > 0.9 * 2.4 / p.fan_in  # uses the whole range
        elif v.init == "xavier-uniform" and p.role.endswith("weight"):
            assert np.abs(a[p.name]).max() <= np.sqrt(6 / (p.fan_in + p.fan_out))
        else:
            assert np.abs(a[p.name]).max() <= 1 / np.sqrt(p.fan_in)


def test_c3_fan_in_counts_only_connected_maps():
    fans = {p.name: p.fan_in for p in get_variant("lenet5-1998").params()}
    assert (fans["c3.weight_3"], fans["c3.weight_4"], fans["c3.weight_6"]) == (75, 100, 150)
    assert fans["s2.coefficient"] == 4


def _direct_conv(x, w, b, padding):
    """Textbook loops, for checking the reference's im2col."""
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    out = np.zeros((n, o, h - k + 1, wd - k + 1))
    for i in range(h - k + 1):
        for j in range(wd - k + 1):
            out[:, :, i, j] = np.einsum("ncij,ocij->no", x[:, :, i : i + k, j : j + k], w) + b
    return out


def test_reference_layers_against_direct_formulas():
    v = get_variant("lenet5-1998")
    params = {k: v.astype(np.float64) for k, v in init_params(v, 3).items()}
    x = np.random.default_rng(0).random((2, 1, 28, 28))
    out = reference.forward(v, params, x)
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2))) * 1.275 - 0.1
    np.testing.assert_allclose(out["input"], padded, rtol=1e-15)
    c1 = 1.7159 * np.tanh(2 / 3 * _direct_conv(padded, params["c1.weight"], params["c1.bias"], 0))
    np.testing.assert_allclose(out["c1"], c1, rtol=1e-12, atol=1e-14)
    s2 = c1.reshape(2, 6, 14, 2, 14, 2).sum((3, 5)) * params["s2.coefficient"][:, None, None] + params["s2.bias"][:, None, None]
    np.testing.assert_allclose(out["s2"], 1.7159 * np.tanh(2 / 3 * s2), rtol=1e-12, atol=1e-14)
    # C3 map 7 reads S2 maps 1, 2, 3, 4 only (Table I): it is the 2nd map of the 4-input group.
    w7, b7 = params["c3.weight_4"][1:2], params["c3.bias_4"][1:2]
    c3_7 = _direct_conv(out["s2"][:, [1, 2, 3, 4]], w7, b7, 0)
    np.testing.assert_allclose(out["c3"][:, 7:8], 1.7159 * np.tanh(2 / 3 * c3_7), rtol=1e-12, atol=1e-14)
    rbf = -((out["f6"][:, None, :] - rbf_bitmaps()[None]) ** 2).sum(-1)
    np.testing.assert_allclose(out["output"], rbf, rtol=1e-15)


def test_reference_pools():
    x = np.arange(2 * 3 * 8 * 8, dtype=np.float64).reshape(2, 3, 8, 8) % 7
    v = get_variant("lenet-caffe")
    pool2 = v.layers[3]
    y = reference.layer_forward(pool2, x, {})
    assert y.shape == (2, 3, 4, 4)
    np.testing.assert_array_equal(y, x.reshape(2, 3, 4, 2, 4, 2).max((3, 5)))  # 8 -> 4 is plain 2x2 max-pooling
    avg = reference.layer_forward(get_variant("d2l").layers[1], x, {})
    np.testing.assert_allclose(avg, x.reshape(2, 3, 4, 2, 4, 2).mean((3, 5)))


def test_summary_cli(capsys):
    assert spec_main(["summary", "lenet5-1998"]) == 0
    text = capsys.readouterr().out
    assert "c3 (conv)" in text and "1,516" in text and "Total params: 60,000" in text
    assert spec_main(["summary", "lenet-caffe", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total_params"] == 431_080
    assert [r["layer"] for r in data["layers"]][:3] == ["input", "conv1", "pool1"]
    assert data["layers"][-1] == {"layer": "ip2", "kind": "dense", "output_shape": [-1, 10], "params": 5_010}


def test_summary_cli_unknown_variant(capsys):
    assert spec_main(["summary", "lenet6"]) == 2
    err = capsys.readouterr().err
    assert "unknown variant 'lenet6'" in err and "lenet5-1998" in err


def test_spec_imports_no_framework():
    code = (
        "import sys, lenet_spec, lenet_spec.reference, lenet_spec.data, lenet_spec.checkpoint, parity, lenet_spec.mapping; print(sorted(m for m in "
        "('torch', 'paddle') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("module", ["lenet_torch.train", "lenet_paddle.evaluate", "export", "export.verify", "export.predict", "benchmarks", "parity.check"])
def test_help_states_each_default_once(module):
    proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=ROOT)
    text = " ".join(proc.stdout.split())  # argparse wraps lines
    assert proc.returncode == 0 and "usage:" in text, proc.stderr[-300:]
    assert "(default: None)" not in text
    assert not re.search(r"\(default[^()]*\)\s*\(default", text), text


@pytest.mark.parametrize(
    "command", [["lenet_spec", "summary", "lenet5", "--json"], ["lenet_torch.train", "--help"], ["parity.check", "--help"], ["export.predict", "--help"]]
)
def test_a_reader_that_leaves_is_no_error(command):
    """`... | head -c 400`: the reader closes the pipe; the command ends quietly with status 0."""
    import subprocess
    import sys

    from conftest import ROOT

    proc = subprocess.Popen([sys.executable, "-m", *command], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # before the command writes: its first write meets a closed pipe
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_summary_shows_what_the_user_feeds():
    from lenet_spec.__main__ import summary_rows

    rows = summary_rows("lenet5-1998")
    assert rows[0] == {"layer": "input", "kind": "input", "output_shape": [-1, 1, 28, 28], "params": 0}
    assert rows[1]["layer"] == "preprocess" and rows[1]["kind"] == "pad 2, x * 1.275 - 0.1" and rows[1]["output_shape"] == [-1, 1, 32, 32]
    assert rows[2]["layer"] == "c1" and rows[2]["output_shape"] == [-1, 6, 28, 28]
    assert [r["layer"] for r in summary_rows("d2l")][:2] == ["input", "c1"]  # nothing to preprocess: no row


def test_every_layer_type_says_its_own_facts():
    """A layer type is its class: shapes, state, FLOPs, the reference, its inference form and its
    decisions come from the class (lenet_spec.layers.Layer), which every layer type derives from."""
    from lenet_spec import flops, layers

    for name in VARIANTS:
        v = get_variant(name)
        assert all(isinstance(layer, layers.Layer) for layer in (v.input, *v.layers))
        assert flops.forward_flops(v) == sum(layer.flops(shape) for (_, shape), layer in zip(v.shapes()[1:], v.layers))
    lenet5 = get_variant("lenet5")
    assert [layer.name for layer in lenet5.layers if layer.flops((6, 28, 28))] == ["c1", "c3", "f5", "f6", "output"]
    assert not lenet5.stateful and get_variant("lenet5-bn").has_batchnorm and get_variant("lenet-caffe-dropout").stateful


def test_decisions_are_relu_signs_and_max_pool_winners():
    v = get_variant("lenet-caffe")
    layer = {layer.name: layer for layer in v.layers}
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 8))
    pool = layer["pool1"]
    (winners,) = pool.decisions(x, reference.layer_forward(pool, x, {}))
    assert winners.shape == (2, 3, 4, 4)
    np.testing.assert_array_equal(
        np.take_along_axis(x.reshape(2, 3, 4, 2, 4, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 3, 4, 4, 4), winners[..., None], -1)[..., 0],
        x.reshape(2, 3, 4, 2, 4, 2).max((3, 5)),
    )
    relu = next(layer for layer in v.layers if getattr(layer, "activation", None) == "relu")
    y = np.array([[-1.0, 0.0, 2.0]])
    assert [d.tolist() for d in relu.decisions(None, y)] == [[[False, False, True]]]
    assert get_variant("lenet5-1998").layers[0].decisions(None, y) == ()  # scaled tanh decides nothing
    assert get_variant("d2l").layers[1].decisions(x, x) == ()  # average pooling neither


def test_mapping_rows_name_known_frameworks_only():
    from dataclasses import replace

    from lenet_spec import Dense, Variant, mapping

    class Odd(Dense):
        def params(self):
            return tuple(replace(p, transposed=("jax",)) for p in super().params())

    v = get_variant("lenet5")
    odd = Variant(**{**{f: getattr(v, f) for f in ("name", "title", "dataset", "input", "init", "classes")}, "layers": (*v.layers[:-1], Odd("output", 84, 10))})
    with pytest.raises(ValueError, match="unknown frameworks"):
        mapping.table(odd)
    assert mapping.SIDES == ("spec", *lenet_spec.frameworks.NAMES)
