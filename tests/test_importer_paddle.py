"""lenet_paddle.importer.trace: paddle models read as chains of ops (lenet_spec.traced). Seed 004's
paddle half (its DownSample recognised as LeNet-5's subsampling), the chain ports of the corpus
(tests/ports/right_*_paddle.py), functional ops caught in forward with their lines, the ops outside
the spec's vocabulary (unsupported, named with their line), the forwards that are not chains
(TraceError), and the model left as it was (dtype, mode, weights)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")
nn = paddle.nn
F = paddle.nn.functional

from lenet_paddle.importer import trace  # noqa: E402
from lenet_spec.traced import KINDS, Trace, TraceError  # noqa: E402

PORTS = Path(__file__).parent / "ports"
sys.path.insert(0, str(PORTS))
HERE = Path(__file__).name


def port(name: str, cls: str = "Net"):
    """A fresh model of tests/ports/<name>.py."""
    paddle.seed(0)
    return getattr(importlib.import_module(name), cls)()


def line_of(path: Path, text: str) -> int:
    """The number of the one line of `path` holding `text`."""
    found = [i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    assert len(found) == 1, (text, found)
    return found[0]


def here(text: str) -> str:
    """'test_importer_paddle.py:LINE' of the line of this file ending in `text` (a '# <-' marker)."""
    found = [i for i, line in enumerate(Path(__file__).read_text().splitlines(), 1) if line.rstrip().endswith(text)]
    assert len(found) == 1, (text, found)
    return f"{HERE}:{found[0]}"


def state(model) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def assert_params_are_the_state(t: Trace, model) -> None:
    """Every op's params equal the model's own tensors in the spec's layouts (Linear transposed)."""
    sd = state(model)
    used = set()
    for op in t.ops:
        for local, value in op.params.items():
            key = f"{op.module}.{ {'running_mean': '_mean', 'running_var': '_variance'}.get(local, local) }"
            want = sd[key].T if op.kind == "linear" and local == "weight" else sd[key]
            assert value.dtype == np.float64 and value.shape == want.shape, key
            np.testing.assert_array_equal(value, want.astype(np.float64))
            used.add(key)
    assert used == set(sd), set(sd) - used  # every parameter and buffer lands in one op


def assert_untouched(model, before: dict[str, np.ndarray], training: bool) -> None:
    assert all(str(p.dtype) == "paddle.float32" for p in model.parameters())
    assert model.training is training and all(m.training is training for m in model.sublayers())
    after = state(model)
    assert set(after) == set(before)
    for k in before:
        assert after[k].dtype == before[k].dtype
        np.testing.assert_array_equal(after[k], before[k])


def kinds(t: Trace) -> list[str]:
    return [op.kind for op in t.ops]


def test_seed004_downsample_is_subsampling_and_the_rest_maps_layer_for_layer():
    model = port("seed004_paddle", "LeNet")
    model.train()
    before = state(model)
    t = trace(model, (1, 32, 32))
    assert (t.class_name, t.input_shape, t.output_shape) == ("LeNet", (1, 32, 32), (10,))
    assert t.source.endswith("seed004_paddle.py")
    tanh, sub = "tanh", "subsample"
    assert kinds(t) == ["conv", tanh, sub, tanh, "conv", tanh, sub, tanh, "conv", tanh, "flatten", "linear", tanh, "linear"]
    assert all(k in KINDS for k in kinds(t))
    subs = [op for op in t.ops if op.kind == "subsample"]
    assert [(op.module, op.type_name, op.attrs) for op in subs] == [
        ("con_sam.2", "DownSample", {"channels": 6, "kernel": 2, "pooling": "avg", "pool_attr": "sum_4"}),
        ("con_sam.6", "DownSample", {"channels": 16, "kernel": 2, "pooling": "avg", "pool_attr": "sum_4"}),
    ]
    assert [(op.in_shape, op.out_shape) for op in subs] == [((6, 28, 28), (6, 14, 14)), ((16, 10, 10), (16, 5, 5))]
    convs = [op for op in t.ops if op.kind == "conv"]
    assert [op.attrs for op in convs] == [
        {"in_channels": i, "out_channels": o, "kernel": 5, "stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True}
        for i, o in ((1, 6), (6, 16), (16, 120))
    ]
    assert [op.params["weight"].shape for op in convs] == [(6, 1, 5, 5), (16, 6, 5, 5), (120, 16, 5, 5)]
    linears = [op for op in t.ops if op.kind == "linear"]
    assert [op.attrs for op in linears] == [{"in_features": 120, "out_features": 84, "bias": True}, {"in_features": 84, "out_features": 10, "bias": True}]
    assert [op.params["weight"].shape for op in linears] == [(84, 120), (10, 84)]
    assert_params_are_the_state(t, model)
    # no op of DownSample's own forward (its indexing, *, +, unsqueeze, concat) leaks out
    assert all(op.kind != "unsupported" for op in t.ops)
    src = PORTS / "seed004_paddle.py"
    assert t.ops[0].where.endswith(f"seed004_paddle.py:{line_of(src, 'output = self.con_sam(input)')}")
    assert t.ops[-1].where.endswith(f"seed004_paddle.py:{line_of(src, 'output = self.fc(output)')}")
    assert_untouched(model, before, training=True)


def test_right_relu_port_layer_for_layer():
    model = port("right_relu_paddle")
    model.eval()
    before = state(model)
    t = trace(model, (1, 28, 28))
    assert kinds(t) == ["conv", "relu", "max_pool", "conv", "relu", "max_pool", "flatten", "linear", "relu", "linear", "relu", "linear"]
    assert [op.module for op in t.ops][:3] == ["features.0", "features.1", "features.2"]
    assert t.ops[0].attrs["padding"] == 2 and t.ops[3].attrs["padding"] == 0
    assert t.ops[2].attrs == {"kernel": 2, "stride": 2, "padding": 0, "ceil_mode": False}
    assert (t.ops[6].module, t.ops[6].type_name, t.ops[6].in_shape, t.ops[6].out_shape) == ("flatten", "Flatten", (16, 5, 5), (400,))
    assert t.output_shape == (10,)
    assert_params_are_the_state(t, model)
    assert_untouched(model, before, training=False)


def test_right_functional_port_caught_with_its_lines():
    """F.relu, F.max_pool2d and paddle.flatten(x, 1) in forward: functional ops (module ""),
    each at its own line of the port."""
    model = port("right_functional_paddle")
    t = trace(model, (1, 28, 28))
    src = PORTS / "right_functional_paddle.py"
    l1, l2 = line_of(src, "F.relu(self.conv1(x))"), line_of(src, "F.relu(self.conv2(x))")
    lf, lfc1, lfc2 = line_of(src, "x = paddle.flatten(x, 1)"), line_of(src, "self.fc1(x)"), line_of(src, "self.fc2(x)")
    got = [(op.kind, op.module, op.type_name, int(op.where.rsplit(":", 1)[1])) for op in t.ops]
    assert got == [
        ("conv", "conv1", "Conv2D", l1),
        ("relu", "", "relu", l1),
        ("max_pool", "", "max_pool2d", l1),
        ("conv", "conv2", "Conv2D", l2),
        ("relu", "", "relu", l2),
        ("max_pool", "", "max_pool2d", l2),
        ("flatten", "", "flatten", lf),
        ("linear", "fc1", "Linear", lfc1),
        ("relu", "", "relu", lfc1),
        ("linear", "fc2", "Linear", lfc2),
        ("relu", "", "relu", lfc2),
        ("linear", "fc3", "Linear", line_of(src, "self.fc3(x)")),
    ]
    assert all(op.where.startswith("tests/ports/right_functional_paddle.py:") or op.where.startswith("right_functional_paddle.py:") for op in t.ops)
    assert t.ops[2].attrs == {"kernel": 2, "stride": 2, "padding": 0, "ceil_mode": False}  # F.max_pool2d's stride defaults to its kernel
    assert (t.ops[6].in_shape, t.ops[6].out_shape) == ((16, 5, 5), (400,))
    assert_params_are_the_state(t, model)


def test_right_dropout_port():
    model = port("right_dropout_paddle")
    t = trace(model, (1, 28, 28))
    assert kinds(t) == ["conv", "relu", "max_pool", "conv", "relu", "max_pool", "flatten"] + ["linear", "relu", "dropout"] * 2 + ["linear"]
    assert [op.attrs for op in t.ops if op.kind == "dropout"] == [{"p": 0.5}, {"p": 0.5}]
    assert t.ops[2].attrs["stride"] == 2  # MaxPool2D(2): its stride is its kernel
    assert_params_are_the_state(t, model)


def test_right_bn_dropout_port_batchnorm_in_torchs_sense():
    model = port("right_bn_dropout_paddle")
    model.train()
    before = state(model)
    t = trace(model, (3, 32, 32))
    block = ["conv", "batchnorm", "relu", "max_pool"]
    assert kinds(t) == block * 2 + ["flatten", "dropout", "linear", "batchnorm", "relu", "dropout", "linear", "relu", "linear"]
    bns = [op for op in t.ops if op.kind == "batchnorm"]
    assert [op.attrs for op in bns] == [
        {"features": f, "eps": 1e-5, "momentum": 0.1, "affine": True, "track_running_stats": True} for f in (16, 32, 256)
    ]  # paddle's momentum 0.9 (the running average's weight) is torch's 0.1
    assert [op.type_name for op in bns] == ["BatchNorm2D", "BatchNorm2D", "BatchNorm1D"]
    assert set(bns[0].params) == {"weight", "bias", "running_mean", "running_var"}
    assert [op.attrs["p"] for op in t.ops if op.kind == "dropout"] == [0.5, 0.25]
    assert_params_are_the_state(t, model)
    assert_untouched(model, before, training=True)


class Residual(nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2D(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2D(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        y = F.relu(self.conv1(x))
        z = self.conv2(y) + y  # <- residual
        return self.fc(z.flatten(1))


def test_a_residual_add_is_not_a_chain():
    with pytest.raises(TraceError) as e:
        trace(Residual(), (1, 8, 8))
    said = str(e.value)
    assert said.startswith("forward is not a chain of layers: __add__ at ") and "parity.port follows chains only" in said
    assert said.split(" at ", 1)[1].split(" ", 1)[0].endswith(here("# <- residual"))
    assert "conv2 (Conv2D)" in said  # the op whose output it is not


class Gelu(nn.Layer):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(12, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        x = F.gelu(self.fc1(x))  # <- gelu
        return self.fc2(x)


def test_functional_gelu_is_unsupported_with_its_name_and_line():
    t = trace(Gelu(), (12,))
    assert kinds(t) == ["linear", "unsupported", "linear"]
    op = t.ops[1]
    assert (op.module, op.type_name, op.in_shape, op.out_shape) == ("", "gelu", (8,), (8,))
    assert op.where.endswith(here("# <- gelu")) and "gelu" in op.attrs["reason"] and "vocabulary" in op.attrs["reason"]
    assert op.describe() == f"gelu at {op.where}"


class Scaled(nn.Layer):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 5)
        self.fc2 = nn.Linear(5, 2)

    def forward(self, x):
        n = x.shape[0]
        s = paddle.shape(x)  # noqa: F841 (a shape-only call: not an op)
        x = self.fc1(x) * 2  # <- times two
        x = paddle.tanh(x)
        x = x.reshape([n, -1])
        return self.fc2(x)


def test_an_operator_on_a_tensor_is_unsupported_and_shape_calls_are_not_ops():
    t = trace(Scaled(), (6,))
    assert kinds(t) == ["linear", "unsupported", "tanh", "flatten", "linear"]
    op = t.ops[1]
    assert op.type_name == "__mul__" and op.where.endswith(here("# <- times two")) and "*" in op.attrs["reason"]
    assert paddle.Tensor.__mul__.__class__.__name__ == "method_descriptor"  # put back after the pass


def test_a_sequential_model():
    paddle.seed(1)
    model = nn.Sequential(
        nn.Conv2D(1, 4, 3),
        nn.Sigmoid(),
        nn.AvgPool2D(2),
        nn.Conv2D(4, 6, 3, bias_attr=False),
        nn.LeakyReLU(0.2),
        nn.AdaptiveAvgPool2D(2),
        nn.Flatten(),
        nn.Linear(24, 10),
        nn.LogSoftmax(),
        nn.Identity(),
    )
    before = state(model)
    t = trace(model, (1, 12, 12))
    assert (t.class_name, t.output_shape) == ("Sequential", (10,))
    assert kinds(t) == ["conv", "sigmoid", "avg_pool", "conv", "leaky_relu", "adaptive_avg_pool", "flatten", "linear", "log_softmax", "identity"]
    assert [op.module for op in t.ops] == [str(i) for i in range(10)]
    assert t.ops[2].attrs == {"kernel": 2, "stride": 2, "padding": 0, "ceil_mode": False, "count_include_pad": False}  # paddle's exclusive=True
    assert t.ops[3].attrs["bias"] is False and set(t.ops[3].params) == {"weight"}
    assert t.ops[4].attrs == {"slope": 0.2}
    assert t.ops[5].attrs == {"output_size": (2, 2)}
    assert t.ops[8].attrs == {"dim": -1}
    assert all(op.where == "" for op in t.ops)  # called by paddle's own Sequential, from trace itself
    assert_params_are_the_state(t, model)
    assert_untouched(model, before, training=True)


class Block(nn.Layer):
    """A user's layer without parameters of its own: transparent."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2D(cin, cout, 3, padding=1)

    def forward(self, x):
        return F.max_pool2d(F.relu(self.conv(x)), kernel_size=2, stride=2)  # <- block


class Functional(nn.Layer):
    def __init__(self):
        super().__init__()
        self.block = Block(2, 3)
        self.fc = nn.Linear(3 * 4 * 4, 5)

    def forward(self, x):
        x = self.block(x)
        x = paddle.reshape(x, [x.shape[0], -1])
        x = F.dropout(x, 0.3, training=self.training)
        x = F.leaky_relu(self.fc(x), negative_slope=0.05)
        x = F.sigmoid(x)
        return F.log_softmax(x, axis=1)


def test_a_users_layer_without_parameters_is_transparent_and_functional_ops_read_their_arguments():
    t = trace(Functional(), (2, 8, 8))
    assert kinds(t) == ["conv", "relu", "max_pool", "flatten", "dropout", "linear", "leaky_relu", "sigmoid", "log_softmax"]
    assert t.ops[0].module == "block.conv" and t.ops[1].where.endswith(here("# <- block"))
    assert t.ops[2].attrs == {"kernel": 2, "stride": 2, "padding": 0, "ceil_mode": False}
    assert t.ops[4].attrs == {"p": 0.3} and t.ops[6].attrs == {"slope": 0.05} and t.ops[8].attrs == {"dim": 1}


class OwnLayer(nn.Layer):
    """A user's layer owning parameters that is not LeNet-5's subsampling (it scales twice)."""

    def __init__(self, c):
        super().__init__()
        self.pool = nn.AvgPool2D(2, 2)
        self.weight = self.create_parameter([c])
        self.bias = self.create_parameter([c], is_bias=True)

    def forward(self, x):
        x = self.pool(x)
        return x * self.weight.reshape([1, -1, 1, 1]) ** 2 + self.bias.reshape([1, -1, 1, 1])


class WithOwn(nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(1, 3, 3)
        self.sub = OwnLayer(3)

    def forward(self, x):
        return self.sub(self.conv(x))  # <- own


def test_a_users_own_layer_that_is_not_subsampling_is_one_unsupported_op():
    paddle.seed(0)
    model = WithOwn()
    model.sub.weight.set_value(np.array([0.5, 2.0, -1.5], np.float32))
    t = trace(model, (1, 6, 6))
    assert kinds(t) == ["conv", "unsupported"]
    op = t.ops[1]
    assert (op.module, op.type_name, op.in_shape, op.out_shape) == ("sub", "OwnLayer", (3, 4, 4), (3, 2, 2))
    assert "OwnLayer" in op.attrs["reason"] and "not in the spec's vocabulary" in op.attrs["reason"] and "parity.diff" in op.attrs["reason"]
    assert op.where.endswith(here("# <- own"))


class Odd(nn.Layer):
    def __init__(self, layer, returns=None):
        super().__init__()
        self.layer = layer
        self.returns = returns

    def forward(self, x):
        y = self.layer(x)
        return (y, x) if self.returns == "tuple" else y


@pytest.mark.parametrize(
    "layer, shape, words",
    [
        (nn.Conv2D(4, 4, 3, groups=2), (4, 6, 6), "groups=2"),
        (nn.Conv2D(2, 2, 3, padding="SAME"), (2, 6, 6), "padding='SAME'"),
        (nn.Conv2D(2, 2, 3, padding=1, padding_mode="reflect"), (2, 6, 6), "padding_mode='reflect'"),
        (nn.Conv2D(2, 2, (3, 5)), (2, 6, 6), "not square"),
        (nn.MaxPool2D((2, 3)), (2, 6, 6), "not square"),
        (nn.Dropout(0.5, mode="downscale_in_infer"), (5,), "downscale_in_infer"),
        (nn.GELU(), (5,), "GELU"),
        (nn.Softmax(axis=1), (2, 3, 3), "softmax"),
        (nn.Conv2D(2, 2, 3, padding=[1, 2, 3, 4]), (2, 6, 6), "not symmetric"),
        (nn.Conv2D(2, 2, 3, data_format="NHWC"), (6, 6, 2), "NHWC"),
        (nn.AvgPool2D(2, divisor_override=3), (2, 6, 6), "divisor_override"),
        (nn.Dropout(0.5, axis=1), (2, 6), "axis"),
        (nn.BatchNorm(3, act="relu"), (3, 4, 4), "fused activation"),
        (nn.BatchNorm2D(3, use_global_stats=True), (3, 4, 4), "use_global_stats"),
        (nn.Dropout2D(0.5), (2, 4, 4), "Dropout2D"),
        (nn.Conv2DTranspose(2, 2, 3), (2, 4, 4), "Conv2DTranspose"),
    ],
)
def test_layers_outside_the_vocabulary_are_unsupported_with_the_reason(layer, shape, words):
    t = trace(Odd(layer), shape)
    assert kinds(t) == ["unsupported"] and words.lower() in t.ops[0].attrs["reason"].lower(), t.ops[0].attrs
    assert t.ops[0].module == "layer"


def test_a_reshape_that_is_not_a_flatten_and_a_dropout_left_on_are_unsupported():
    class Reshape(nn.Layer):
        def forward(self, x):
            x = F.dropout(x, 0.5)  # training=True: drops in eval too
            return x.reshape([-1, 3, 4])

    t = trace(Reshape(), (12,))
    assert kinds(t) == ["unsupported", "unsupported"]
    assert "training=True" in t.ops[0].attrs["reason"] and "not a flatten" in t.ops[1].attrs["reason"]
    assert t.ops[1].type_name == "reshape"


def test_what_trace_refuses():
    with pytest.raises(TraceError, match="returns a tuple, not one tensor"):
        trace(Odd(nn.ReLU(), "tuple"), (3,))
    with pytest.raises(TraceError, match="not a paddle model"):
        trace(object(), (3,))
    with pytest.raises(TraceError, match="input shape"):
        trace(Odd(nn.ReLU()), (0, 3))
    with pytest.raises(TraceError, match="forward raised ValueError") as e:
        trace(Odd(nn.Linear(4, 2)), (5,))
    assert "(2, 5) float64 input" in str(e.value)
    assert sys.getprofile() is None and paddle.Tensor.__add__.__class__.__name__ == "method_descriptor"
    a = paddle.to_tensor([1.0, 2.0])
    np.testing.assert_array_equal((2 * a + a / 2 - 1).numpy(), [1.5, 4.0])  # the operators work as before


class Uncopyable(nn.Layer):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.bn = nn.BatchNorm1D(3)

    def forward(self, x):
        return F.relu(self.bn(self.fc(x)))

    def __deepcopy__(self, memo):
        raise TypeError("no copies")


def test_a_model_that_cannot_be_copied_is_cast_and_restored():
    model = Uncopyable()
    model.train()
    before = state(model)
    params = [id(p) for p in model.parameters()]
    t = trace(model, (4,))
    assert kinds(t) == ["linear", "batchnorm", "relu"]
    assert_params_are_the_state(t, model)
    assert_untouched(model, before, training=True)
    assert [id(p) for p in model.parameters()] == params  # the same tensors, the user's optimizer still holds them


class Pools(nn.Layer):
    def forward(self, x):
        x = F.avg_pool2d(x, 2, exclusive=False)
        x = F.adaptive_max_pool2d(x, 2)
        x = F.adaptive_avg_pool2d(x, [1, 1])
        x = F.relu_(x)  # <- in place
        x = x.view([-1, 3])
        x = x.tanh()
        return F.softmax(x)


def test_functional_pools_in_place_relu_view_and_tensor_methods():
    """paddle 3.3.1 wraps these three ways (a plain function, decorator_utils' `func`,
    wrapped_decorator's `decorated`): all are read."""
    t = trace(Pools(), (3, 8, 8))
    got = [(op.kind, op.type_name, op.attrs, op.out_shape) for op in t.ops]
    assert got == [
        ("avg_pool", "avg_pool2d", {"kernel": 2, "stride": 2, "padding": 0, "ceil_mode": False, "count_include_pad": True}, (3, 4, 4)),
        ("adaptive_max_pool", "adaptive_max_pool2d", {"output_size": (2, 2)}, (3, 2, 2)),
        ("adaptive_avg_pool", "adaptive_avg_pool2d", {"output_size": (1, 1)}, (3, 1, 1)),
        ("relu", "relu_", {}, (3, 1, 1)),
        ("flatten", "view", {}, (3,)),
        ("tanh", "tanh", {}, (3,)),
        ("softmax", "softmax", {"dim": -1}, (3,)),
    ]
    assert t.ops[3].where.endswith(here("# <- in place"))


class Subsample(nn.Layer):
    """LeNet-5's subsampling written as the window's sum: 4 x the 2x2 mean, scaled and shifted per map."""

    def __init__(self, c):
        super().__init__()
        self.pool = nn.AvgPool2D(2)
        self.w = self.create_parameter([c])
        self.b = self.create_parameter([c], is_bias=True)

    def forward(self, x):
        return self.pool(x) * 4 * self.w.reshape([1, -1, 1, 1]) + self.b.reshape([1, -1, 1, 1])


def test_subsampling_by_the_windows_sum_and_a_users_layer_traced_alone():
    paddle.seed(2)
    layer = Subsample(3)
    layer.b.set_value(np.array([0.1, -0.2, 0.3], np.float32))
    t = trace(layer, (3, 6, 6))
    want = {"channels": 3, "kernel": 2, "pooling": "sum", "pool_attr": "pool"}
    assert [(op.kind, op.module, op.type_name, op.attrs) for op in t.ops] == [("subsample", "", "Subsample", want)]
    np.testing.assert_array_equal(t.ops[0].params["weight"], layer.w.numpy().astype(np.float64))
    np.testing.assert_array_equal(t.ops[0].params["bias"], layer.b.numpy().astype(np.float64))
    seed = trace(importlib.import_module("seed004_paddle").DownSample(4), (4, 6, 6))
    assert [(op.kind, op.attrs) for op in seed.ops] == [("subsample", {"channels": 4, "kernel": 2, "pooling": "avg", "pool_attr": "sum_4"})]


def test_a_c_function_called_directly_is_unsupported():
    from paddle import _C_ops

    class Direct(nn.Layer):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return _C_ops.relu(self.fc(x))  # <- C

    t = trace(Direct(), (4,))
    assert kinds(t) == ["linear", "unsupported"]
    assert t.ops[1].type_name == "relu" and t.ops[1].where.endswith(here("# <- C")) and "C function" in t.ops[1].attrs["reason"]


def test_the_gelu_port_flattens_with_a_tensor_method():
    t = trace(port("gelu_approximate_paddle"), (3, 16, 16))
    assert kinds(t) == ["conv", "unsupported", "max_pool", "flatten", "linear", "unsupported", "linear"]
    assert t.ops[1].attrs == {"reason": "paddle's GELU is not in the spec's vocabulary"} and t.ops[1].module == "act1"
    assert (t.ops[3].type_name, t.ops[3].module) == ("flatten", "")
    assert t.ops[3].where.endswith(f"gelu_approximate_paddle.py:{line_of(PORTS / 'gelu_approximate_paddle.py', 'x = x.flatten(1)')}")


def test_paddle_visions_lenet_its_forward_read_as_a_users():
    """paddle.vision.models.LeNet: its forward's paddle.flatten(x, 1) is caught as a user's call."""
    paddle.seed(0)
    model = paddle.vision.models.LeNet()
    t = trace(model, (1, 28, 28))
    assert kinds(t) == ["conv", "relu", "max_pool", "conv", "relu", "max_pool", "flatten", "linear", "linear", "linear"]
    assert t.ops[0].attrs["padding"] == 1 and t.ops[6].type_name == "flatten"
    assert t.ops[6].where.startswith("lenet.py:")  # paddle/vision/models/lenet.py, outside the working folder: its base name
    assert t.class_name == "LeNet" and t.output_shape == (10,)
    assert_params_are_the_state(t, model)


class Constants(nn.Layer):
    """Tensors made from no data (a reshaped parameter, paddle.ones) are not on the chain: the ops
    that take them with the data are."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.scale = self.create_parameter([3])

    def forward(self, x):
        x = self.fc(x)
        x = x * self.scale.reshape([1, -1])  # <- scale
        return x + paddle.ones([1, 3], dtype=x.dtype)  # <- shift


def test_tensors_made_from_parameters_or_nothing_are_not_on_the_chain():
    t = trace(Constants(), (4,))
    assert [(op.kind, op.type_name) for op in t.ops] == [("linear", "Linear"), ("unsupported", "__mul__"), ("unsupported", "__add__")]
    assert t.ops[1].where.endswith(here("# <- scale")) and t.ops[2].where.endswith(here("# <- shift"))


def test_the_old_batchnorm_and_one_without_affine_parameters():
    paddle.seed(3)
    model = nn.Sequential(nn.Conv2D(1, 3, 3), nn.BatchNorm(3, momentum=0.8, epsilon=1e-3), nn.BatchNorm2D(3, weight_attr=False, bias_attr=False))
    t = trace(model, (1, 5, 5))
    assert [(op.kind, op.type_name) for op in t.ops] == [("conv", "Conv2D"), ("batchnorm", "BatchNorm"), ("batchnorm", "BatchNorm2D")]
    assert t.ops[1].attrs == {"features": 3, "eps": 1e-3, "momentum": 0.2, "affine": True, "track_running_stats": True}
    assert t.ops[2].attrs["affine"] is False and set(t.ops[2].params) == {"running_mean", "running_var"}
    assert_params_are_the_state(t, model)


def test_resnet18s_residual_adds_are_not_a_chain():
    src = PORTS / "resnet18_paddle.py"
    with pytest.raises(TraceError) as e:
        trace(port("resnet18_paddle", "ResNet18"), (3, 32, 32))
    said = str(e.value)
    assert said.startswith("forward is not a chain of layers: __add__ at ") and "layer1.0.bn2 (BatchNorm2D)" in said
    line = int(said.split(" at ", 1)[1].split(" ", 1)[0].rsplit(":", 1)[1])
    assert "+" in src.read_text().splitlines()[line - 1]  # the residual add's own line


class Copies(nn.Layer):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = self.fc(x.clone()).detach()
        return F.linear(x, self.fc.weight[:3, :3])  # <- functional linear


def test_copies_are_not_ops_and_a_functional_linear_is_unsupported():
    t = trace(Copies(), (4,))
    assert [(op.kind, op.type_name) for op in t.ops] == [("linear", "Linear"), ("unsupported", "linear")]
    assert "nn.Linear" in t.ops[1].attrs["reason"] and t.ops[1].where.endswith(here("# <- functional linear"))
