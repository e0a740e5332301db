"""Framework-neutral description of a LeNet: input contract, layers, parameters.

Everything here is plain data (frozen dataclasses) plus the arithmetic that follows from it.
A layer type is its class here, a module in lenet_torch/model.py and one in
lenet_paddle/model.py; the rest of the project reads what the class says instead of asking
which type a layer is (but lenet_spec.schedule, which draws the Dropout layers' masks). The
class says (`Layer`):
  out_shape, params, buffers   shapes, parameters and buffers (each ParamSpec carries how it is
                               initialised and which frameworks transpose or rename it:
                               lenet_spec.init, lenet_spec.mapping)
  flops                        its multiply-adds (lenet_spec.flops)
  reference                    its NumPy forward pass (lenet_spec.reference)
  inference                    its inference form (lenet_spec.deploy)
  decisions                    the discrete choices it makes (a ReLU on or off, a max-pool winner)
  stateful, batch_statistics, affine   what the trainer and the checks need to know of it
Parameter arrays in the spec use the mathematical layouts: conv kernels (out, in, kh, kw),
dense weights (out, in) for y = W x + b.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "ACTIVATIONS", "LEAKY_RELU_SLOPE", "SCALED_TANH_A", "SCALED_TANH_S", "AdaptivePool", "BatchNorm", "BufferSpec", "ConnectionGroup", "Conv", "Dense",
    "Dropout", "Flatten", "Input", "Layer", "LogSoftmax", "ParamSpec", "Pool", "RBF", "Softmax", "Subsample", "Variant", "rbf_bitmaps",
]  # fmt: skip

ACTIVATIONS = ("identity", "relu", "sigmoid", "scaled_tanh", "tanh", "leaky_relu")
LEAKY_RELU_SLOPE = 0.01  # leaky_relu's slope below zero: torch's and paddle's default

# LeCun's squashing function f(a) = A tanh(S a) (1998, Appendix A): f(1) = 1, f(-1) = -1.
SCALED_TANH_A = 1.7159
SCALED_TANH_S = 2.0 / 3.0

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ParamSpec:
    """One trainable parameter, in the spec's layout."""

    name: str  # "<layer>.<attribute>", the state-dict key (lenet_spec.mapping renames where a framework differs)
    role: str  # e.g. "conv.weight", "dense.weight": what it is (lenet_spec.mapping.Entry.role)
    shape: Shape
    fan_in: int  # inputs feeding one unit that this parameter belongs to
    fan_out: int  # units one input feeds (for Xavier)
    weight: bool = False  # a connection weight (conv kernel, dense matrix), which Xavier draws; else drawn as a bias
    initial: float | None = None  # a constant start, drawn from nothing; None: drawn by the variant's init scheme
    transposed: tuple[str, ...] = ()  # the frameworks whose layout is the spec's transposed (lenet_spec.mapping)
    renamed: tuple[tuple[str, str], ...] = ()  # (framework, its attribute name) where it differs from the spec's


@dataclass(frozen=True)
class BufferSpec:
    """State a layer keeps that is not trained by the optimizer (BatchNorm's running
    statistics): saved, converted and compared like a parameter, with a fixed initial value."""

    name: str  # "<layer>.<attribute>", spec (and torch) names; paddle's differ (lenet_spec.mapping)
    role: str
    shape: Shape
    dtype: str  # "float" (the model's dtype) or "int64"
    initial: float
    transposed: tuple[str, ...] = ()  # as ParamSpec's
    renamed: tuple[tuple[str, str], ...] = ()


def activate(x: np.ndarray, name: str) -> np.ndarray:
    """Activation `name` of ACTIVATIONS, in NumPy."""
    if name == "identity":
        return x
    if name == "relu":
        return np.maximum(x, 0)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-x))
    if name == "scaled_tanh":
        return SCALED_TANH_A * np.tanh(SCALED_TANH_S * x)
    if name == "tanh":
        return np.tanh(x)
    if name == "leaky_relu":
        return np.where(x > 0, x, LEAKY_RELU_SLOPE * x)
    raise ValueError(f"unknown activation {name!r}")


def activation_decisions(name: str, y: np.ndarray) -> tuple[np.ndarray, ...]:
    """The on/off choices of activation `name` that produced `y`: a (leaky) ReLU's units above zero; none for the smooth ones."""
    return ((y > 0),) if name in ("relu", "leaky_relu") else ()


def _windows(x: np.ndarray, k: int, s: int, d: int = 1) -> np.ndarray:
    """(N, C, H, W) -> (N, C, Ho, Wo, k, k) views of every k x k window at stride s, its taps d apart (dilation)."""
    span = d * (k - 1) + 1
    return sliding_window_view(x, (span, span), axis=(2, 3))[:, :, ::s, ::s, ::d, ::d]


def _pad(x: np.ndarray, p: int, value: float = 0.0) -> np.ndarray:
    """(N, C, H, W) with `p` pixels of `value` on every side of each map."""
    return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=value) if p else x


def _conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int, padding: int, dilation: int = 1) -> np.ndarray:
    k = weight.shape[-1]
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = _windows(x, k, stride, dilation)  # (N, C, Ho, Wo, k, k)
    n, c, ho, wo = win.shape[:4]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * k * k)
    out = cols @ weight.reshape(weight.shape[0], -1).T + bias  # (N*Ho*Wo, O)
    return out.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2)


class Layer:
    """What every layer type says about itself. The defaults are those of a layer without
    parameters, state, FLOPs or decisions that is kept as it is for inference; each type
    overrides what it has. `x` is always a batch, (N, *shape)."""

    name: str
    kind: ClassVar[str]  # its word in summaries and in each framework's LAYERS table
    stateful: ClassVar[bool] = False  # trains and evaluates differently (BatchNorm, Dropout)
    batch_statistics: ClassVar[bool] = False  # in training, normalises each channel with the batch's mean (BatchNorm): a bias just before is cancelled
    affine: ClassVar[bool] = False  # a weighted sum plus a bias per output map (Conv, Dense): a BatchNorm after it folds into its weights

    def out_shape(self, shape: Shape) -> Shape:
        """The output shape for an input of `shape`, both without the batch axis."""
        raise NotImplementedError

    def params(self) -> tuple[ParamSpec, ...]:
        """Its trainable parameters, in construction (and initialisation) order."""
        return ()

    def buffers(self) -> tuple[BufferSpec, ...]:
        """Its state that the optimizer does not train."""
        return ()

    def flops(self, out_shape: Shape) -> int:
        """FLOPs of one image's forward pass (lenet_spec.flops counts multiply-adds only), given its output shape."""
        return 0

    def reference(self, x: np.ndarray, params: dict[str, np.ndarray], train: bool = False, masks: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """The NumPy forward pass, in `x`'s dtype (lenet_spec.reference.layer_forward)."""
        raise NotImplementedError(f"no reference for layer {self!r}")

    def inference(self, layers: list[Layer], params: dict[str, np.ndarray]) -> None:
        """Append this layer's inference form to `layers` (the inference form of the layers
        before it), editing `params` (the caller's copy) to match (lenet_spec.deploy)."""
        layers.append(self)

    def decisions(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
        """The discrete choices the layer made computing `y` from `x` (a ReLU on or off, a max
        pooling's winner), each an array: two computations of the layer decided differently
        where those arrays differ."""
        return activation_decisions(getattr(self, "activation", "identity"), y)


@dataclass(frozen=True)
class Input(Layer):
    """The input contract and the preprocessing that the model applies itself.

    Images arrive as float [0, 1] NCHW at the dataset's native size. The model pads
    `pad` background pixels (value 0) on every side, then maps x -> x * scale + offset
    (the same affine map on every channel).
    """

    channels: int
    height: int
    width: int
    pad: int = 0
    scale: float = 1.0
    offset: float = 0.0
    name: str = "input"
    kind: ClassVar[str] = "input"

    @classmethod
    def from_mean_std(cls, channels: int, height: int, width: int, mean: float, std: float) -> "Input":
        """Normalisation written as (x - mean) / std."""
        return cls(channels, height, width, scale=1.0 / std, offset=-mean / std)

    @property
    def shape(self) -> Shape:
        return (self.channels, self.height, self.width)

    def out_shape(self, shape: Shape) -> Shape:
        c, h, w = shape
        return (c, h + 2 * self.pad, w + 2 * self.pad)

    def reference(self, x: np.ndarray, params: dict[str, np.ndarray], train: bool = False, masks: dict[str, np.ndarray] | None = None) -> np.ndarray:
        p = self.pad
        x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        return x * self.scale + self.offset


def _conv_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@dataclass(frozen=True)
class ConnectionGroup:
    """Output maps of a partially connected conv that read the same number of input maps.

    They are computed together as one grouped convolution over the gathered inputs.
    """

    fan: int  # input maps read by each of these output maps
    maps: tuple[int, ...]  # output map indices, ascending
    inputs: tuple[int, ...]  # input map indices, len(maps) * fan, map by map


@dataclass(frozen=True)
class Conv(Layer):
    """2-D convolution, then `activation`. `dilation` spaces a kernel's taps that many pixels
    apart (torch's and paddle's `dilation`); the kernel still has kernel x kernel weights.

    With `table`, output map j reads only the input maps table[j] (LeNet-5's C3); the
    parameters are then one kernel per connection group, not a masked dense kernel.
    """

    name: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    activation: str = "identity"
    table: tuple[tuple[int, ...], ...] | None = None
    kind: ClassVar[str] = "conv"
    affine: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _check_activation(self)
        if self.dilation < 1:
            raise ValueError(f"{self.name}: dilation must be at least 1, not {self.dilation}")
        if self.table is not None:
            if len(self.table) != self.out_channels:
                raise ValueError(f"{self.name}: table has {len(self.table)} rows, expected {self.out_channels}")
            for j, row in enumerate(self.table):
                if len(set(row)) != len(row) or not all(0 <= i < self.in_channels for i in row):
                    raise ValueError(f"{self.name}: table row {j} {row} is not a set of input maps")

    def groups(self) -> tuple[ConnectionGroup, ...]:
        """Connection groups by fan, ascending; one group of all maps for a dense conv."""
        table = self.table or tuple(tuple(range(self.in_channels)) for _ in range(self.out_channels))
        fans = sorted({len(row) for row in table})
        groups = []
        for fan in fans:
            maps = tuple(j for j, row in enumerate(table) if len(row) == fan)
            groups.append(ConnectionGroup(fan, maps, tuple(i for j in maps for i in table[j])))
        return tuple(groups)

    def connections(self) -> tuple[int, ...]:
        """For each row of the grouped kernels (group by group, map by map, input by input),
        its position out_map * in_channels + in_map in a dense (out, in) kernel."""
        return tuple(j * self.in_channels + i for g in self.groups() for j in g.maps for i in self.table[j])

    def out_shape(self, shape: Shape) -> Shape:
        c, h, w = shape
        if c != self.in_channels:
            raise ValueError(f"{self.name}: expects {self.in_channels} input maps, got {c}")
        k, s, p, d = self.kernel, self.stride, self.padding, self.dilation
        return (self.out_channels, _conv_size(h, k, s, p, d), _conv_size(w, k, s, p, d))

    def params(self) -> tuple[ParamSpec, ...]:
        k2 = self.kernel * self.kernel
        if self.table is None:
            fan_in, fan_out = self.in_channels * k2, self.out_channels * k2
            return (
                ParamSpec(f"{self.name}.weight", "conv.weight", (self.out_channels, self.in_channels, self.kernel, self.kernel), fan_in, fan_out, weight=True),
                ParamSpec(f"{self.name}.bias", "conv.bias", (self.out_channels,), fan_in, fan_out),
            )
        connections = sum(len(row) for row in self.table)
        fan_out = connections * k2 // self.in_channels  # average, for Xavier
        specs = []
        for g in self.groups():
            specs += [
                ParamSpec(f"{self.name}.weight_{g.fan}", "conv.weight", (len(g.maps), g.fan, self.kernel, self.kernel), g.fan * k2, fan_out, weight=True),
                ParamSpec(f"{self.name}.bias_{g.fan}", "conv.bias", (len(g.maps),), g.fan * k2, fan_out),
            ]
        return tuple(specs)

    def flops(self, out_shape: Shape) -> int:
        kernels = sum(len(row) for row in self.table) if self.table is not None else self.in_channels * self.out_channels
        return 2 * kernels * self.kernel * self.kernel * out_shape[1] * out_shape[2]  # a tabled conv: its real connections

    def reference(self, x: np.ndarray, params: dict[str, np.ndarray], train: bool = False, masks: dict[str, np.ndarray] | None = None) -> np.ndarray:
        if self.table is None:
            y = _conv(x, params[f"{self.name}.weight"], params[f"{self.name}.bias"], self.stride, self.padding, self.dilation)
        else:  # map by map, straight from the table
            shape = self.out_shape(x.shape[1:])
            y = np.empty((x.shape[0], *shape), dtype=x.dtype)
            for g in self.groups():
                w, b = params[f"{self.name}.weight_{g.fan}"], params[f"{self.name}.bias_{g.fan}"]
                for m, j in enumerate(g.maps):
                    y[:, j : j + 1] = _conv(x[:, list(self.table[j])], w[m : m + 1], b[m : m + 1], self.stride, self.padding, self.dilation)
        return activate(y, self.activation)

    def dense_kernel(self, params: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """A tabled conv's parameters as a dense (out, in, kh, kw) kernel and (out,) bias."""
        k = self.kernel
        first = params[f"{self.name}.weight_{self.groups()[0].fan}"]
        weight = np.zeros((self.out_channels, self.in_channels, k, k), dtype=first.dtype)
        bias = np.zeros(self.out_channels, dtype=first.dtype)
        for g in self.groups():
            w, b = params[f"{self.name}.weight_{g.fan}"], params[f"{self.name}.bias_{g.fan}"]  # (maps, fan, k, k), (maps,)
            for m, j in enumerate(g.maps):
                weight[j, list(self.table[j])] = w[m]
                bias[j] = b[m]
        return weight, bias

    def inference(self, layers: list[Layer], params: dict[str, np.ndarray]) -> None:
        """A connection table becomes a dense kernel, zero off the table."""
        if self.table is None:
            layers.append(self)
            return
        weight, bias = self.dense_kernel(params)
        for g in self.groups():
            del params[f"{self.name}.weight_{g.fan}"], params[f"{self.name}.bias_{g.fan}"]
        params[f"{self.name}.weight"], params[f"{self.name}.bias"] = weight, bias
        layers.append(replace(self, table=None))


@dataclass(frozen=True)
class Pool(Layer):
    """Max or average pooling (no parameters), then `activation`.

    `padding` pixels on every side (at most kernel // 2, as both frameworks require): max pooling
    pads with -inf, so a padded pixel never wins; average pooling pads with 0 and divides by
    kernel * kernel when `count_include_pad` (torch's name and default), by the number of real
    pixels in the window when not (paddle's `exclusive=True`, its default, is
    count_include_pad=False). Without ceil_mode every window starts inside the padded map and
    ends within it, so kernel * kernel is also the window's whole padded size."""

    name: str
    mode: str  # "max" | "avg"
    kernel: int
    stride: int
    padding: int = 0
    count_include_pad: bool = True
    activation: str = "identity"
    kind: ClassVar[str] = "pool"

    def __post_init__(self) -> None:
        _check_activation(self)
        if self.mode not in ("max", "avg"):
            raise ValueError(f"{self.name}: pool mode must be 'max' or 'avg', not {self.mode!r}")
        if not 0 <= self.padding <= self.kernel // 2:
            raise ValueError(f"{self.name}: pool padding must lie in [0, kernel // 2 = {self.kernel // 2}], not {self.padding}")

    def out_shape(self, shape: Shape) -> Shape:
        c, h, w = shape
        k, s, p = self.kernel, self.stride, self.padding
        return (c, _conv_size(h, k, s, p), _conv_size(w, k, s, p))

    def padded_windows(self, x: np.ndarray) -> np.ndarray:
        """(N, C, Ho, Wo, k, k) windows of `x` padded as the mode pads: -inf for max, 0 for avg."""
        return _windows(_pad(x, self.padding, -np.inf if self.mode == "max" else 0.0), self.kernel, self.stride)

    def reference(self, x: np.ndarray, params: dict[str, np.ndarray], train: bool = False, masks: dict[str, np.ndarray] | None = None) -> np.ndarray:
        win = self.padded_windows(x)
        if self.mode == "max":
            y = win.max(axis=(4, 5))
        elif self.count_include_pad or not self.padding:
            y = win.mean(axis=(4, 5))  # the window's sum / (kernel * kernel), padding included
        else:  # the sum over the real pixels / how many there are
            real = _windows(_pad(np.ones((1, 1, *x.shape[2:]), dtype=x.dtype), self.padding), self.kernel, self.stride).sum(axis=(4, 5))
            y = win.sum(axis=(4, 5)) / real
        return activate(y, self.activation)

    def winners(self, x: np.ndarray) -> np.ndarray:
        """Index of the maximum in every (padded) window of `x` (N, C, H, W), row-major within the
        k x k window (the first one on exact ties, as both frameworks pick; a padded -inf never wins)."""
        win = self.padded_windows(x)
        return win.reshape(*win.shape[:4], -1).argmax(-1)

    def decisions(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
        """Max pooling: which input won each window (and the activation's choices)."""
        own = (self.winners(x),) if self.mode == "max" else ()
        return (*activation_decisions(self.activation, y), *own)


@dataclass(frozen=True)
class AdaptivePool(Layer):
    """Adaptive max or average pooling to a fixed output size (Caffe-LeNet's last pooling): output
    cell i of a size-`out` axis covers [floor(i * size / out), ceil((i + 1) * size / out)), the
    rule both frameworks use (`windows`); "avg" takes the cell's mean."""

    name: str
    output_size: tuple[int, int]
    mode: str = "max"  # "max" | "avg"
    kind: ClassVar[str] = "adaptive_pool"

    def __post_init__(self) -> None:
        if self.mode not in ("max", "avg"):
            raise ValueError(f"{self.name}: adaptive pool mode must be 'max' or 'avg', not {self.mode!r}")

    def windows(self, size: int, out: int) -> list[tuple[int, int]]:
        """[start, end) of each output cell, the rule both frameworks use."""
        return [(i * size // out, math.ceil((i + 1) * size / out)) for i in range(out)]

    def out_shape(self, shape: Shape) -> Shape:
        return (shape[0], *self.output_size)

    def reference(self, x: np.ndarray, params: dict[str, np.ndarray], train: bool = False, masks: dict[str, np.ndarray] | None = None) -> np.ndarray:
        h, w = x.shape[2:]
        oh, ow = self.output_size
        y = np.empty((*x.shape[:2], oh, ow), dtype=x.dtype)
        pool = np.max if self.mode == "max" else np.mean
        for i, (h0, h1) in enumerate(self.windows(h, oh)):
            for j, (w0, w1) in enumerate(self.windows(w, ow)):
                y[:, :, i, j] = pool(x[:, :, h0:h1, w0:w1], axis=(2, 3))
        return y

    def winners(self, x: np.ndarray) -> np.ndarray:
        """Index of the maximum in every cell's window of `x` (N, C, H, W) (the first one on exact ties)."""
        rows, cols = self.windows(x.shape[2], self.output_size[0]), self.windows(x.shape[3], self.output_size[1])
        return np.stack([x[:, :, h0:h1, w0:w1].reshape(*x.shape[:2], -1).argmax(-1) for h0, h1 in rows for w0, w1 in cols], -1)

    def decisions(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
        """Max pooling: which input won each cell; average pooling decides nothing."""
        return (self.winners(x),) if self.mode == "max" else ()


@dataclass(frozen=True)
class Subsample(Layer):
    """LeNet-5's trainable subsampling: per map, (sum of a kernel x kernel window) *
    coefficient + bias, then `activation`. Stride equals the kernel. With pooling="avg" the
    window's mean takes the sum's place (an average pooling times a weight per map, plus a bias:
    how ports often write it, seed 004's DownSample); the parameter is still `coefficient`."""

    name: str
    channels: int
    kernel: int = 2
    activation: str = "scaled_tanh"
    pooling: str = "sum"  # "sum" | "avg"
    kind: ClassVar[str] = "subsample"

    def __post_init__(self) -> None:
        _check_activation(self)
        if self.pooling not in ("sum", "avg"):
            raise ValueError(f"{self.name}: subsample pooling must be 'sum' or 'avg', not {self.pooling!r}")

    def out_shape(self, shape: Shape) -> Shape:
        c, h, w = shape
        if c != self.channels or h % self.kernel or w % self.kernel:
            raise ValueError(f"{self.name}: cannot subsample {shape} by {self.kernel}")
        return (c, h // self.kernel, w // self.kernel)

    def params(self) -> tuple[ParamSpec, ...]:
        fan_in = self.kernel * self.kernel
        return (
            ParamSpec(f"{self.name}.coefficient", "subsample.coefficient", (self.channels,), fan_in, 1),
            ParamSpec(f"{self.name}.bias", "subsample.bias", (self.channels,), fan_in, 1),
        )

    def reference(self, x: np.ndarray, params: dict[str, np.ndarray], train: bool = False, masks: dict[str, np.ndarray] | None = None) -> np.ndarray:
        win = _windows(x, self.kernel, self.kernel)
        total = win.sum(axis=(4, 5)) if self.pooling == "sum" else win.mean(axis=(4, 5))
        coef = params[f"{self.name}.coefficient"][None, :, None, None]
        bias = params[f"{self.name}.bias"][None, :, None, None]
        return activate(total * coef + bias, self.activation)


@dataclass(frozen=True)
class Flatten(Layer):
    """(C, H, W) -> (C*H*W,), row-major in both frameworks."""

    name: str = "flatten"
    kind: ClassVar[str] = "flatten"

    def out_shape(self, shape: Shape) -> Shape:
        return (math.prod(shape),)

    def reference(self, x: np.ndarray, params: dict[str, np.ndarray], train: bool = False, masks: dict[str, np.ndarray] | None = None) -> np.ndarray:
        return x.reshape(x.shape[0], -1)


def _features_only(layer: Layer, shape: Shape) -> Shape:
    if len(shape) != 1:
        raise ValueError(f"{layer.name}: {layer.kind} takes (features,), got {shape}; flatten first")
    return shape


@dataclass(frozen=True)
class LogSoftmax(Layer):
    """Log-probabilities of (F,) features: x - logsumexp(x), computed as (x - max) - log(sum(exp(x - max)))
    so that no exp overflows and no log-probability is clipped (paddle's own F.log_softmax clips
    below about -64 even in float64: lenet_paddle.kernels.log_softmax)."""

    name: str = "log_softmax"
    kind: ClassVar[str] = "log_softmax"

    def out_shape(self, shape: Shape) -> Shape:
        return _features_only(self, shape)

    def reference(self, x: np.ndarray, params: dict[str, np.ndarray], train: bool = False, masks: dict[str, np.ndarray] | None = None) -> np.ndarray:
        shifted = x - x.max(axis=-1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


@dataclass(frozen=True)
class Softmax(Layer):
    """Probabilities of (F,) features: exp(x - max) / sum(exp(x - max))."""

    name: str = "softmax"
    kind: ClassVar[str] = "softmax"

    def out_shape(self, shape: Shape) -> Shape:
        return _features_only(self, shape)

    def reference(self, x: np.ndarray, params: dict[str, np.ndarray], train: bool = False, masks: dict[str, np.ndarray] | None = None) -> np.ndarray:
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class Dense(Layer):
    """Fully connected y = W x + b, W of shape (out, in), then `activation`."""

    name: str
    in_features: int
    out_features: int
    activation: str = "identity"
    kind: ClassVar[str] = "dense"
    affine: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _check_activation(self)

    def out_shape(self, shape: Shape) -> Shape:
        if shape != (self.in_features,):
            raise ValueError(f"{self.name}: expects ({self.in_features},), got {shape}")
        return (self.out_features,)

    def params(self) -> tuple[ParamSpec, ...]:
        return (
            # paddle's Linear holds W as (in, out)
            ParamSpec(
                f"{self.name}.weight",
                "dense.weight",
                (self.out_features, self.in_features),
                self.in_features,
                self.out_features,
                weight=True,
                transposed=("paddle",),
            ),
            ParamSpec(f"{self.name}.bias", "dense.bias", (self.out_features,), self.in_features, self.out_features),
        )

    def flops(self, out_shape: Shape) -> int:
        return 2 * self.in_features * self.out_features

    def reference(self, x: np.ndarray, params: dict[str, np.ndarray], train: bool = False, masks: dict[str, np.ndarray] | None = None) -> np.ndarray:
        y = x @ params[f"{self.name}.weight"].T + params[f"{self.name}.bias"]
        return activate(y, self.activation)


_BITMAPS = Path(__file__).with_name("data") / "rbf_bitmaps.txt"


def rbf_bitmaps() -> np.ndarray:
    """The fixed 7x12 codes of LeNet-5's output RBF units, float64 (10, 84) of +-1 (a fresh copy)."""
    return _read_bitmaps().copy()


@functools.lru_cache(maxsize=1)
def _read_bitmaps() -> np.ndarray:
    rows: dict[int, list[str]] = {}
    digit = None
    for line in _BITMAPS.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line.startswith("digit "):
            digit = int(line.split()[1])
            rows[digit] = []
        else:
            rows[digit].append(line.strip())
    codes = np.empty((10, 84))
    for d in range(10):
        bitmap = rows[d]
        if len(bitmap) != 12 or any(len(r) != 7 or set(r) - {"X", "."} for r in bitmap):
            raise ValueError(f"{_BITMAPS}: digit {d} is not a 12x7 bitmap of 'X' and '.'")
        codes[d] = [1.0 if ch == "X" else -1.0 for r in bitmap for ch in r]
    return codes


@dataclass(frozen=True)
class RBF(Layer):
    """Euclidean RBF output units with fixed centres (LeNet-5's output layer).

    y_i = sum_j (x_j - w_ij)^2; the layer returns -y as logits, so the most likely class
    is the nearest centre. The centres are `rbf_bitmaps()`, not trainable.
    """

    name: str
    in_features: int
    out_features: int
    kind: ClassVar[str] = "rbf"

    def out_shape(self, shape: Shape) -> Shape:
        if shape != (self.in_features,):
            raise ValueError(f"{self.name}: expects ({self.in_features},), got {shape}")
        return (self.out_features,)

    def flops(self, out_shape: Shape) -> int:
        return 3 * self.in_features * self.out_features  # subtract, square, add

    def reference(self, x: np.ndarray, params: dict[str, np.ndarray], train: bool = False, masks: dict[str, np.ndarray] | None = None) -> np.ndarray:
        centres = rbf_bitmaps().astype(x.dtype)
        return -((x[:, None, :] - centres[None]) ** 2).sum(axis=-1)


@dataclass(frozen=True)
class BatchNorm(Layer):
    """Batch normalisation over the channels (of (N, C, H, W)) or the features (of (N, F)),
    then `activation`.

    Training: y = (x - mean) / sqrt(var + eps) * weight + bias with the batch's mean and
    *biased* variance, and the running averages move toward the batch's mean and *unbiased*
    variance (n / (n - 1) times the biased one, n the values per channel):
    running = (1 - momentum) * running + momentum * batch. Evaluation: the running averages.
    `momentum` is the batch's weight, torch's form; paddle's `momentum` is the running
    average's weight, 1 - this (lenet_paddle.kernels.BatchNormKernel gives each its own form).
    """

    name: str
    features: int
    eps: float = 1e-5
    momentum: float = 0.1
    activation: str = "identity"
    kind: ClassVar[str] = "batchnorm"
    stateful: ClassVar[bool] = True
    batch_statistics: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _check_activation(self)
        if not 0 < self.momentum <= 1 or not self.eps > 0:
            raise ValueError(f"{self.name}: momentum must lie in (0, 1] and eps be positive")

    def out_shape(self, shape: Shape) -> Shape:
        if len(shape) not in (1, 3) or shape[0] != self.features:
            raise ValueError(f"{self.name}: normalises {self.features} channels or features, got {shape}")
        return shape

    def params(self) -> tuple[ParamSpec, ...]:
        # It starts as the identity: scale 1, shift 0 (torch's and paddle's default), drawn from
        # nothing, so a variant's random draws do not depend on where its BatchNorm layers sit.
        return (
            ParamSpec(f"{self.name}.weight", "batchnorm.weight", (self.features,), 1, 1, initial=1.0),
            ParamSpec(f"{self.name}.bias", "batchnorm.bias", (self.features,), 1, 1, initial=0.0),
        )

    def buffers(self) -> tuple[BufferSpec, ...]:
        return (
            BufferSpec(f"{self.name}.running_mean", "batchnorm.running_mean", (self.features,), "float", 0.0, renamed=(("paddle", "_mean"),)),
            BufferSpec(f"{self.name}.running_var", "batchnorm.running_var", (self.features,), "float", 1.0, renamed=(("paddle", "_variance"),)),
            BufferSpec(f"{self.name}.num_batches_tracked", "batchnorm.num_batches_tracked", (), "int64", 0),
        )

    def reference(self, x: np.ndarray, params: dict[str, np.ndarray], train: bool = False, masks: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """In training mode, on the batch's statistics, updating `params`' running ones in place."""
        shape = (1, -1, 1, 1) if x.ndim == 4 else (1, -1)
        mean_key, var_key, count_key = (f"{self.name}.{k}" for k in ("running_mean", "running_var", "num_batches_tracked"))
        if train:
            # each channel's values copied into one contiguous row, which NumPy sums pairwise; a
            # conv's output here is laid out channel-fastest, and summed as it lies the variance
            # is 1.2e-12 off (lenet5-bn's c1 on 256 MNIST images; math.fsum as the exact sum)
            rows = np.ascontiguousarray(np.moveaxis(x, 1, 0).reshape(x.shape[1], -1))
            mean, var = rows.mean(axis=1), rows.var(axis=1)
            n = x.size // x.shape[1]
            params[mean_key] = (1 - self.momentum) * params[mean_key] + self.momentum * mean
            params[var_key] = (1 - self.momentum) * params[var_key] + self.momentum * var * n / (n - 1)
            params[count_key] = params[count_key] + 1
        else:
            mean, var = params[mean_key], params[var_key]
        y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + self.eps)
        return activate(y * params[f"{self.name}.weight"].reshape(shape) + params[f"{self.name}.bias"].reshape(shape), self.activation)

    def inference(self, layers: list[Layer], params: dict[str, np.ndarray]) -> None:
        """After an affine layer without activation: folded into it (`fold_into`)."""
        if layers and layers[-1].affine and layers[-1].activation == "identity":
            layers[-1] = self.fold_into(layers[-1], params)
        else:
            layers.append(self)

    def fold_into(self, before: Conv | Dense, params: dict[str, np.ndarray]) -> Conv | Dense:
        """`before` followed by this layer (evaluation mode) as one layer: its weight and bias
        replaced in `params` (computed in float64, stored in the weight's dtype), this layer's
        entries removed."""
        name = self.name
        dtype = params[f"{before.name}.weight"].dtype
        var = params.pop(f"{name}.running_var").astype(np.float64)
        mean = params.pop(f"{name}.running_mean").astype(np.float64)
        del params[f"{name}.num_batches_tracked"]
        s = params.pop(f"{name}.weight").astype(np.float64) / np.sqrt(var + self.eps)  # (C,)
        shift = params.pop(f"{name}.bias").astype(np.float64)
        weight = params[f"{before.name}.weight"].astype(np.float64)
        params[f"{before.name}.weight"] = (weight * s.reshape(-1, *[1] * (weight.ndim - 1))).astype(dtype)
        params[f"{before.name}.bias"] = ((params[f"{before.name}.bias"].astype(np.float64) - mean) * s + shift).astype(dtype)
        return replace(before, activation=self.activation)


@dataclass(frozen=True)
class Dropout(Layer):
    """In training, each unit is kept with probability 1 - p and the kept ones are scaled by
    1 / (1 - p) (torch's rule, and paddle's default mode `upscale_in_train`); evaluation passes
    the input through. Which units are kept is drawn by the spec (`lenet_spec.schedule.dropout_masks`),
    as the batch order is, so that both frameworks drop the same units."""

    name: str
    p: float
    kind: ClassVar[str] = "dropout"
    stateful: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not 0 <= self.p < 1:
            raise ValueError(f"{self.name}: p must lie in [0, 1)")

    def out_shape(self, shape: Shape) -> Shape:
        return shape

    def reference(self, x: np.ndarray, params: dict[str, np.ndarray], train: bool = False, masks: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """In training mode, keeps `masks[name]`'s units."""
        if not train:
            return x
        return x * masks[self.name] / (1 - self.p)

    def inference(self, layers: list[Layer], params: dict[str, np.ndarray]) -> None:
        """Left out: evaluation passes the input through."""


def _check_activation(layer) -> None:
    if layer.activation not in ACTIVATIONS:
        raise ValueError(f"{layer.name}: unknown activation {layer.activation!r}; choose from {ACTIVATIONS}")


@dataclass(frozen=True)
class Variant:
    """One network: its input contract, its layers in order, and how it is initialised."""

    name: str
    title: str
    dataset: str  # the data set the input contract is written for
    input: Input
    layers: tuple[Layer, ...]
    init: str  # a scheme of lenet_spec.init.SCHEMES
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        names = [self.input.name] + [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: layer names are not unique: {names}")
        shapes = self.shapes()
        if shapes[-1][1] != (len(self.classes),):
            raise ValueError(f"{self.name}: output {shapes[-1][1]} does not match {len(self.classes)} classes")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def shapes(self) -> list[tuple[str, Shape]]:
        """(layer name, output shape without the batch axis), the input layer first."""
        shape = self.input.out_shape(self.input.shape)
        out = [(self.input.name, shape)]
        for layer in self.layers:
            shape = layer.out_shape(shape)
            out.append((layer.name, shape))
        return out

    def params(self) -> tuple[ParamSpec, ...]:
        """Every trainable parameter, in construction order."""
        return tuple(p for layer in self.layers for p in layer.params())

    def buffers(self) -> tuple[BufferSpec, ...]:
        """Every buffer (state not trained by the optimizer), in construction order."""
        return tuple(b for layer in self.layers for b in layer.buffers())

    def state(self) -> tuple[ParamSpec | BufferSpec, ...]:
        """Everything a checkpoint holds: each layer's parameters, then its buffers."""
        return tuple(s for layer in self.layers for s in (*layer.params(), *layer.buffers()))

    @property
    def has_batchnorm(self) -> bool:
        """Whether training depends on the batch beyond each image (BatchNorm's statistics)."""
        return any(layer.batch_statistics for layer in self.layers)

    def biases_before_batchnorm(self) -> dict[str, str]:
        """bias -> its layer's weight, for each convolution or dense layer whose output goes
        straight into a BatchNorm: in training the BatchNorm subtracts the batch's mean, shift
        and all, so the bias's gradient is zero but for rounding (d2l's chapter keeps them)."""
        pairs = zip(self.layers, self.layers[1:])
        return {f"{a.name}.bias": f"{a.name}.weight" for a, b in pairs if a.affine and b.batch_statistics}

    @property
    def stateful(self) -> bool:
        """Whether training and evaluation compute differently (BatchNorm, Dropout)."""
        return any(layer.stateful for layer in self.layers)

    def num_params(self) -> int:
        return sum(math.prod(p.shape) for p in self.params())

    def num_buffer_values(self) -> int:
        return sum(math.prod(b.shape) for b in self.buffers())

    def layer_params(self) -> dict[str, int]:
        """Trainable parameter count per layer, the input layer first."""
        counts = {self.input.name: 0}
        for layer in self.layers:
            counts[layer.name] = sum(math.prod(p.shape) for p in layer.params())
        return counts
