"""LeNet in PaddlePaddle, built from a lenet_spec.Variant.

Mirrors lenet_torch/model.py: same classes, attributes and order, framework words only.
Parameters are created from `lenet_spec.init_params`, never by a framework initialiser.
Paddle layouts: conv kernels (out, in, kh, kw), Linear weights (in, out).
"""

from __future__ import annotations

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

import lenet_spec
from lenet_spec import LEAKY_RELU_SLOPE, SCALED_TANH_A, SCALED_TANH_S

from . import kernels


def parameter(array: np.ndarray) -> paddle.Tensor:
    """A trainable parameter holding a copy of `array`."""
    return paddle.create_parameter(list(array.shape), str(array.dtype), default_initializer=nn.initializer.Assign(np.array(array)))


def index(values: tuple[int, ...], like: paddle.Tensor) -> paddle.Tensor:
    """An int64 index tensor on `like`'s device."""
    return paddle.to_tensor(values, dtype="int64", place=like.place)


def activate(x: paddle.Tensor, name: str) -> paddle.Tensor:
    if name == "relu":
        return F.relu(x)
    if name == "sigmoid":
        return F.sigmoid(x)
    if name == "scaled_tanh":
        return SCALED_TANH_A * paddle.tanh(SCALED_TANH_S * x)
    if name == "tanh":
        return paddle.tanh(x)
    if name == "leaky_relu":
        return F.leaky_relu(x, LEAKY_RELU_SLOPE)
    return x


class Input(nn.Layer):
    """Background padding and normalisation: the model takes [0, 1] images as they come."""

    def __init__(self, spec: lenet_spec.Input, params: dict[str, np.ndarray]):
        super().__init__()
        self.spec = spec

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        p = self.spec.pad
        if p:
            x = F.pad(x, [0, 0, 0, 0, p, p, p, p])  # (N, C, H + 2p, W + 2p), background = 0; every axis named, so one pad op, not pad3d on a 5-D view
        if (self.spec.scale, self.spec.offset) != (1.0, 0.0):
            x = x * self.spec.scale + self.spec.offset
        return x


class Conv(nn.Layer):
    """Convolution. With a connection table the parameters hold only the table's connections;
    forward scatters them into a dense (out, in, kh, kw) kernel, zeros elsewhere, and runs one
    ordinary convolution: 10x faster than grouped convolutions over gathered maps (measured on
    C3), and gradients reach only the real connections."""

    def __init__(self, spec: lenet_spec.Conv, params: dict[str, np.ndarray]):
        super().__init__()
        self.spec = spec
        if spec.table is None:
            self.weight = parameter(params[f"{spec.name}.weight"])  # (out, in, kh, kw)
            self.bias = parameter(params[f"{spec.name}.bias"])
            return
        for g in spec.groups():
            setattr(self, f"weight_{g.fan}", parameter(params[f"{spec.name}.weight_{g.fan}"]))  # (maps, fan, kh, kw)
            setattr(self, f"bias_{g.fan}", parameter(params[f"{spec.name}.bias_{g.fan}"]))
        # Plain tuples, not integer buffers: paddle's Layer.to(dtype=...) casts those to float.
        self.fans = [g.fan for g in spec.groups()]
        self.connections = spec.connections()
        maps = [j for g in spec.groups() for j in g.maps]  # the order the groups hold them in
        self.order = None if maps == sorted(maps) else tuple(int(i) for i in np.argsort(maps))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        s, p, d = self.spec.stride, self.spec.padding, self.spec.dilation
        weight, bias = (self.weight, self.bias) if self.spec.table is None else self.dense_kernel()
        y = kernels.conv2d(x, weight, bias, s, p, d)  # (N, out, H', W')
        return activate(y, self.spec.activation)

    def dense_kernel(self) -> tuple[paddle.Tensor, paddle.Tensor]:
        """The table's kernels scattered into (out, in, kh, kw), and the biases in map order."""
        spec, k2 = self.spec, self.spec.kernel * self.spec.kernel
        rows = paddle.concat([getattr(self, f"weight_{fan}").reshape([-1, k2]) for fan in self.fans])  # (connections, kh*kw)
        dense = paddle.zeros([spec.out_channels * spec.in_channels, k2], dtype=rows.dtype)
        dense = paddle.index_add(dense, index(self.connections, rows), 0, rows)
        bias = paddle.concat([getattr(self, f"bias_{fan}") for fan in self.fans])
        if self.order is not None:
            bias = paddle.index_select(bias, index(self.order, bias), axis=0)
        return dense.reshape([spec.out_channels, spec.in_channels, spec.kernel, spec.kernel]), bias


class Pool(nn.Layer):
    def __init__(self, spec: lenet_spec.Pool, params: dict[str, np.ndarray]):
        super().__init__()
        self.spec = spec

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        k, s, p = self.spec.kernel, self.spec.stride, self.spec.padding
        y = kernels.max_pool(x, k, s, p) if self.spec.mode == "max" else kernels.avg_pool(x, k, s, p, self.spec.count_include_pad)
        return activate(y, self.spec.activation)


class AdaptivePool(nn.Layer):
    def __init__(self, spec: lenet_spec.AdaptivePool, params: dict[str, np.ndarray]):
        super().__init__()
        self.spec = spec

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return kernels.adaptive_max_pool(x, self.spec) if self.spec.mode == "max" else kernels.adaptive_avg_pool(x, self.spec)


class Subsample(nn.Layer):
    """LeNet-5's S2/S4: window sum (or mean, pooling="avg") * coefficient + bias, per map, then the activation."""

    def __init__(self, spec: lenet_spec.Subsample, params: dict[str, np.ndarray]):
        super().__init__()
        self.spec = spec
        self.coefficient = parameter(params[f"{spec.name}.coefficient"])  # (maps,)
        self.bias = parameter(params[f"{spec.name}.bias"])  # (maps,)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        c, h, w = x.shape[1:]
        k = self.spec.kernel
        windows = x.reshape([-1, c, h // k, k, w // k, k])
        total = windows.sum([3, 5]) if self.spec.pooling == "sum" else windows.mean([3, 5])  # (N, C, H/k, W/k)
        y = total * kernels.per_map(self.coefficient, total) + kernels.per_map(self.bias, total)
        return activate(y, self.spec.activation)


class Flatten(nn.Layer):
    def __init__(self, spec: lenet_spec.Flatten, params: dict[str, np.ndarray]):
        super().__init__()
        self.spec = spec

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x.flatten(1)  # (N, C*H*W)


class LogSoftmax(nn.Layer):
    """Log-probabilities over the features (lenet_paddle.kernels.log_softmax)."""

    def __init__(self, spec: lenet_spec.LogSoftmax, params: dict[str, np.ndarray]):
        super().__init__()
        self.spec = spec

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return kernels.log_softmax(x)


class Softmax(nn.Layer):
    def __init__(self, spec: lenet_spec.Softmax, params: dict[str, np.ndarray]):
        super().__init__()
        self.spec = spec

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return F.softmax(x, -1)


class Dense(nn.Layer):
    def __init__(self, spec: lenet_spec.Dense, params: dict[str, np.ndarray]):
        super().__init__()
        self.spec = spec
        self.weight = parameter(params[f"{spec.name}.weight"].T)  # (in, out): paddle Linear layout
        self.bias = parameter(params[f"{spec.name}.bias"])

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return activate(F.linear(x, self.weight, self.bias), self.spec.activation)


class RBF(nn.Layer):
    """Logits = minus the squared distances to the fixed centres."""

    def __init__(self, spec: lenet_spec.RBF, params: dict[str, np.ndarray]):
        super().__init__()
        self.spec = spec
        self.register_buffer("centres", paddle.to_tensor(lenet_spec.rbf_bitmaps().astype(np.float32)), persistable=False)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        diff = x.unsqueeze(1) - self.centres.unsqueeze(0)  # (N, classes, features)
        return -(diff * diff).sum(-1)


class BatchNorm(kernels.BatchNormKernel, nn.Layer):
    """Batch normalisation with nn.BatchNorm2D/1D's state: weight, bias, _mean, _variance; plus
    torch's num_batches_tracked, so that a torch checkpoint's count survives the round trip. The
    arithmetic, and how it keeps the spec's conventions, is lenet_paddle.kernels.BatchNormKernel."""

    def __init__(self, spec: lenet_spec.BatchNorm, params: dict[str, np.ndarray]):
        super().__init__()
        self.spec = spec
        self.weight = parameter(params[f"{spec.name}.weight"])  # (C,)
        self.bias = parameter(params[f"{spec.name}.bias"])
        self.register_buffer("_mean", paddle.to_tensor(np.array(params[f"{spec.name}.running_mean"])))
        self.register_buffer("_variance", paddle.to_tensor(np.array(params[f"{spec.name}.running_var"])))
        self.register_buffer("num_batches_tracked", paddle.to_tensor(int(params[f"{spec.name}.num_batches_tracked"]), dtype="int64"))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return activate(self.normalise_batch(x), self.spec.activation)


class Dropout(nn.Layer):
    """In training, the units the spec chose are kept (`mask`: kept / (1 - p), set by the
    trainer for each step, lenet_spec.schedule.dropout_masks); without a mask, paddle's own F.dropout
    (mode upscale_in_train, torch's scaling), whose units come from paddle's RNG: what a plain port
    does, and no other framework can match."""

    def __init__(self, spec: lenet_spec.Dropout, params: dict[str, np.ndarray]):
        super().__init__()
        self.spec = spec
        self.mask: paddle.Tensor | None = None  # (N, *features), kept / (1 - p), in the model's dtype

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if not self.training or self.spec.p == 0:
            return x
        if self.mask is None:
            return F.dropout(x, self.spec.p, training=True, mode="upscale_in_train")
        return x * self.mask


# spec class -> its module: the one place the model dispatches on a layer's type
LAYERS = {
    lenet_spec.Conv: Conv, lenet_spec.Pool: Pool, lenet_spec.AdaptivePool: AdaptivePool, lenet_spec.Subsample: Subsample, lenet_spec.Flatten: Flatten,
    lenet_spec.Dense: Dense, lenet_spec.RBF: RBF, lenet_spec.BatchNorm: BatchNorm, lenet_spec.Dropout: Dropout, lenet_spec.LogSoftmax: LogSoftmax,
    lenet_spec.Softmax: Softmax,
}  # fmt: skip


class LeNet(nn.Layer):
    """A variant's layers in order; forward takes float [0, 1] NCHW images, returns logits (N, classes)."""

    def __init__(self, variant: lenet_spec.Variant, params: dict[str, np.ndarray]):
        super().__init__()
        self.variant = variant
        self.input = Input(variant.input, params)
        for spec in variant.layers:
            self.add_sublayer(spec.name, LAYERS[type(spec)](spec, params))

    def check_input(self, x: paddle.Tensor) -> None:
        if not paddle.in_dynamic_mode():
            return  # being converted to a static graph (jit.save, export): the InputSpec fixes the input
        spec = self.variant.input
        dtype = self.parameters()[0].dtype
        if not isinstance(x, paddle.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != spec.shape or x.dtype != dtype:
            got = f"{x.dtype} {list(x.shape)}" if isinstance(x, paddle.Tensor) else type(x).__name__
            raise ValueError(f"{self.variant.name} expects {dtype} images of shape [N, {spec.channels}, {spec.height}, {spec.width}] in [0, 1], got {got}")

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        self.check_input(x)
        for layer in self.children():
            x = layer(x)
        return x

    def set_dropout_masks(self, masks: dict[str, np.ndarray] | None) -> None:
        """The units each Dropout layer keeps in the next training passes (bool (N, *features) by
        layer name, from lenet_spec.schedule.dropout_masks); None: the framework's own draws."""
        dtype = self.parameters()[0].dtype
        for name, layer in self.named_children():
            if isinstance(layer, Dropout):
                mask = None if masks is None else paddle.to_tensor(masks[name]).astype(dtype)
                layer.mask = None if mask is None else mask / (1 - layer.spec.p)

    def trace(self, x: paddle.Tensor) -> dict[str, paddle.Tensor]:
        """Every layer's output by name, in order; the last is the logits."""
        self.check_input(x)
        out = {}
        for name, layer in self.named_children():
            x = layer(x)
            out[name] = x
        return out


def build(variant: str | lenet_spec.Variant, seed: int = 0, dtype: str = "float32") -> LeNet:
    """A LeNet with the spec's initial weights for `seed`.

    Args:
        variant: a name of lenet_spec.VARIANTS, or a Variant.
        seed: initialisation seed; the same seed gives the same weights as lenet_torch.build.
        dtype: "float32" or "float64".
    Returns:
        The model, on the CPU, in train mode.
    """
    if isinstance(variant, str):
        variant = lenet_spec.get_variant(variant)
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', not {dtype!r}")
    model = LeNet(variant, lenet_spec.init_params(variant, seed))
    counters = [name.split(".") for name, buffer in model.named_buffers() if buffer.dtype == paddle.int64]
    model.to(dtype=dtype)
    for layer, attr in counters:  # Layer.to casts every buffer, integer ones too: made int64 again
        setattr(getattr(model, layer), attr, getattr(getattr(model, layer), attr).astype("int64"))
    return model
