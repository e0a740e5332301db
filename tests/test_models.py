"""lenet_torch and lenet_paddle: counts, shapes, bit-identical initialisation, float64, input errors."""

import numpy as np
import pytest
from conftest import random_images

import lenet_paddle
import lenet_torch
from lenet_paddle import bridge as paddle_io
from lenet_spec import VARIANTS, get_variant, init_params
from lenet_spec.__main__ import summary_rows
from lenet_torch import bridge as torch_io
from lenet_spec.mapping import convert

pytestmark = pytest.mark.cross
PACKAGES = {"torch": (lenet_torch, torch_io), "paddle": (lenet_paddle, paddle_io)}


def trainable_counts(framework, model):
    """Trainable parameters per top-level layer, as the framework itself reports them."""
    counts = {}
    if framework == "torch":
        named = [(n, p.numel()) for n, p in model.named_parameters() if p.requires_grad]
    else:
        named = [(n, int(np.prod(p.shape))) for n, p in model.named_parameters() if not p.stop_gradient]
    for name, n in named:
        layer = name.split(".")[0]
        counts[layer] = counts.get(layer, 0) + n
    return counts


@pytest.mark.parametrize("framework", PACKAGES)
@pytest.mark.parametrize("name", VARIANTS)
def test_counts_and_shapes_match_the_summary(framework, name):
    package, io = PACKAGES[framework]
    model = package.build(name)
    rows = summary_rows(name)
    counts = trainable_counts(framework, model)
    assert {r["layer"]: r["params"] for r in rows if r["params"]} == counts
    assert sum(counts.values()) == get_variant(name).num_params()
    out = io.forward_numpy(model, random_images(get_variant(name), n=3))
    expected = [(r["layer"], [3, *r["output_shape"][1:]]) for r in rows]
    if rows[1]["layer"] == "preprocess":  # the model's trace names its padded, normalised input "input"
        expected = [("input", expected[1][1]), *expected[2:]]
    assert [(k, list(v.shape)) for k, v in out.items()] == expected


@pytest.mark.parametrize("framework", PACKAGES)
def test_c3_is_really_partial(framework):
    package, _ = PACKAGES[framework]
    model = package.build("lenet5-1998")
    assert trainable_counts(framework, model)["c3"] == 1_516
    shapes = {k: list(v.shape) for k, v in model.c3.state_dict().items()}
    assert shapes == {"weight_3": [6, 3, 5, 5], "bias_3": [6], "weight_4": [9, 4, 5, 5], "bias_4": [9], "weight_6": [1, 6, 5, 5], "bias_6": [1]}


@pytest.mark.parametrize("framework", PACKAGES)
def test_c3_map_reads_only_its_table_row(framework):
    """Changing S2 map 0 must leave C3 maps that do not read it (Table I) untouched."""
    package, _ = PACKAGES[framework]
    model = package.build("lenet5-1998", dtype="float64")
    x = np.random.default_rng(0).random((2, 6, 14, 14))
    x2 = x.copy()
    x2[:, 0] += 1.0
    if framework == "torch":
        import torch

        a, b = (model.c3(torch.from_numpy(v)).detach().numpy() for v in (x, x2))
    else:
        import paddle

        a, b = (model.c3(paddle.to_tensor(v)).numpy() for v in (x, x2))
    changed = [j for j in range(16) if not np.array_equal(a[:, j], b[:, j])]
    assert changed == [0, 4, 5, 6, 9, 10, 11, 12, 14, 15]  # the rows of Table I that contain 0


@pytest.mark.parametrize("name", VARIANTS)
def test_same_seed_same_weights_in_both_frameworks(name):
    t, p = lenet_torch.build(name, seed=7), lenet_paddle.build(name, seed=7)
    spec = init_params(get_variant(name), 7)
    for side, state in (("torch", torch_io.state_numpy(t)), ("paddle", paddle_io.state_numpy(p))):
        as_spec = convert(state, name, side, "spec")
        assert all(np.array_equal(as_spec[k], spec[k]) and as_spec[k].dtype == spec[k].dtype for k in spec), side
    x = random_images(get_variant(name), n=4)
    logits_t, logits_p = torch_io.forward_numpy(t, x).popitem()[1], paddle_io.forward_numpy(p, x).popitem()[1]
    assert np.abs(logits_t - logits_p).max() <= 1e-5 * np.abs(logits_t).max()  # parity.check's LAYER_TOL


@pytest.mark.parametrize("framework", PACKAGES)
def test_float64_both_ways(framework):
    """build(dtype='float64'), and the framework's own cast (.double() / .to(dtype=float64))."""
    package, io = PACKAGES[framework]
    built = package.build("lenet5-1998", dtype="float64")
    cast = package.build("lenet5-1998")
    if framework == "torch":
        cast = cast.double()
    else:
        cast.to(dtype="float64")
    x = random_images(get_variant("lenet5-1998"), n=2, dtype=np.float64)
    a, b = io.forward_numpy(built, x)["output"], io.forward_numpy(cast, x)["output"]
    assert a.dtype == np.float64 and np.array_equal(a, b)


@pytest.mark.parametrize("framework", PACKAGES)
@pytest.mark.parametrize(
    "shape, dtype",
    [((2, 28, 28), np.float32), ((2, 1, 32, 32), np.float32), ((2, 3, 28, 28), np.float32), ((2, 1, 28, 28), np.float64), ((2, 1, 28, 28), np.uint8)],
)
def test_bad_input_names_the_expected_shape(framework, shape, dtype):
    package, _ = PACKAGES[framework]
    model = package.build("lenet5")
    x = np.zeros(shape, dtype)
    if framework == "torch":
        import torch

        tensor = torch.from_numpy(x)
    else:
        import paddle

        tensor = paddle.to_tensor(x)
    with pytest.raises(ValueError, match=r"lenet5 expects .*float32 images of shape \[N, 1, 28, 28\]"):
        model(tensor)


@pytest.mark.parametrize("framework", PACKAGES)
def test_cifar_net_takes_colour(framework):
    package, io = PACKAGES[framework]
    out = io.forward_numpy(package.build("cifar-net"), random_images(get_variant("cifar-net"), n=2))
    assert out["input"].shape == (2, 3, 32, 32) and out["fc3"].shape == (2, 10)


def test_unknown_variant_and_dtype():
    with pytest.raises(ValueError, match="unknown variant 'lenet7'"):
        lenet_torch.build("lenet7")
    with pytest.raises(ValueError, match="dtype must be"):
        lenet_paddle.build("lenet5", dtype="float16")


def test_each_framework_builds_every_layer_type_from_one_table():
    """Each model.py maps spec class -> module in one table, the same layer types in both."""
    import lenet_paddle.model
    import lenet_spec
    import lenet_torch.model

    types = {cls for cls in vars(lenet_spec.layers).values() if isinstance(cls, type) and issubclass(cls, lenet_spec.Layer)} - {
        lenet_spec.Layer,
        lenet_spec.Input,
    }
    assert set(lenet_torch.model.LAYERS) == set(lenet_paddle.model.LAYERS) == types
    assert (
        [cls.__name__ for cls in lenet_torch.model.LAYERS.values()]
        == [cls.__name__ for cls in lenet_paddle.model.LAYERS.values()]
        == [cls.__name__ for cls in lenet_torch.model.LAYERS]
    )
