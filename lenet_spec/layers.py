"""Framework-neutral description of a LeNet: input contract, layers, parameters.

Everything here is plain data (frozen dataclasses) plus the arithmetic that follows
from it: output shapes, parameter shapes and fan-ins. `lenet_torch` and `lenet_paddle`
build their modules from these objects; `lenet_spec.reference` computes with them in
NumPy. Parameter arrays in the spec use the mathematical layouts: conv kernels
(out, in, kh, kw), dense weights (out, in) for y = W x + b.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Union

ACTIVATIONS = ("identity", "relu", "sigmoid", "scaled_tanh")

# LeCun's squashing function f(a) = A tanh(S a) (1998, Appendix A): f(1) = 1, f(-1) = -1.
SCALED_TANH_A = 1.7159
SCALED_TANH_S = 2.0 / 3.0

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ParamSpec:
    """One trainable parameter, in the spec's layout."""

    name: str  # "<layer>.<attribute>", the state-dict key (lenet_spec.mapping renames where a framework differs)
    role: str  # e.g. "conv.weight", "dense.weight": selects the layout rule in lenet_spec.mapping
    shape: Shape
    fan_in: int  # inputs feeding one unit that this parameter belongs to
    fan_out: int  # units one input feeds (for Xavier)


@dataclass(frozen=True)
class BufferSpec:
    """State a layer keeps that is not trained by the optimizer (BatchNorm's running
    statistics): saved, converted and compared like a parameter, with a fixed initial value."""

    name: str  # "<layer>.<attribute>", spec (and torch) names; paddle's differ (lenet_spec.mapping)
    role: str
    shape: Shape
    dtype: str  # "float" (the model's dtype) or "int64"
    initial: float


@dataclass(frozen=True)
class Input:
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

    def params(self) -> tuple[ParamSpec, ...]:
        return ()


def _conv_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


@dataclass(frozen=True)
class ConnectionGroup:
    """Output maps of a partially connected conv that read the same number of input maps.

    They are computed together as one grouped convolution over the gathered inputs.
    """

    fan: int  # input maps read by each of these output maps
    maps: tuple[int, ...]  # output map indices, ascending
    inputs: tuple[int, ...]  # input map indices, len(maps) * fan, map by map


@dataclass(frozen=True)
class Conv:
    """2-D convolution, then `activation`.

    With `table`, output map j reads only the input maps table[j] (LeNet-5's C3); the
    parameters are then one kernel per connection group, not a masked dense kernel.
    """

    name: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    activation: str = "identity"
    table: tuple[tuple[int, ...], ...] | None = None
    kind: ClassVar[str] = "conv"

    def __post_init__(self) -> None:
        _check_activation(self)
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
        k, s, p = self.kernel, self.stride, self.padding
        return (self.out_channels, _conv_size(h, k, s, p), _conv_size(w, k, s, p))

    def params(self) -> tuple[ParamSpec, ...]:
        k2 = self.kernel * self.kernel
        if self.table is None:
            fan_in, fan_out = self.in_channels * k2, self.out_channels * k2
            return (
                ParamSpec(f"{self.name}.weight", "conv.weight", (self.out_channels, self.in_channels, self.kernel, self.kernel), fan_in, fan_out),
                ParamSpec(f"{self.name}.bias", "conv.bias", (self.out_channels,), fan_in, fan_out),
            )
        connections = sum(len(row) for row in self.table)
        fan_out = connections * k2 // self.in_channels  # average, for Xavier
        specs = []
        for g in self.groups():
            specs += [
                ParamSpec(f"{self.name}.weight_{g.fan}", "conv.weight", (len(g.maps), g.fan, self.kernel, self.kernel), g.fan * k2, fan_out),
                ParamSpec(f"{self.name}.bias_{g.fan}", "conv.bias", (len(g.maps),), g.fan * k2, fan_out),
            ]
        return tuple(specs)


@dataclass(frozen=True)
class Pool:
    """Max or average pooling (no parameters), then `activation`."""

    name: str
    mode: str  # "max" | "avg"
    kernel: int
    stride: int
    activation: str = "identity"
    kind: ClassVar[str] = "pool"

    def __post_init__(self) -> None:
        _check_activation(self)
        if self.mode not in ("max", "avg"):
            raise ValueError(f"{self.name}: pool mode must be 'max' or 'avg', not {self.mode!r}")

    def out_shape(self, shape: Shape) -> Shape:
        c, h, w = shape
        return (c, _conv_size(h, self.kernel, self.stride, 0), _conv_size(w, self.kernel, self.stride, 0))

    def params(self) -> tuple[ParamSpec, ...]:
        return ()


@dataclass(frozen=True)
class AdaptivePool:
    """Adaptive max pooling to a fixed output size (Caffe-LeNet's last pooling)."""

    name: str
    output_size: tuple[int, int]
    mode: str = "max"
    kind: ClassVar[str] = "adaptive_pool"

    def __post_init__(self) -> None:
        if self.mode != "max":
            raise ValueError(f"{self.name}: only adaptive max pooling is specified")

    def windows(self, size: int, out: int) -> list[tuple[int, int]]:
        """[start, end) of each output cell, the rule both frameworks use."""
        return [(i * size // out, math.ceil((i + 1) * size / out)) for i in range(out)]

    def out_shape(self, shape: Shape) -> Shape:
        return (shape[0], *self.output_size)

    def params(self) -> tuple[ParamSpec, ...]:
        return ()


@dataclass(frozen=True)
class Subsample:
    """LeNet-5's trainable subsampling: per map, (sum of a kernel x kernel window) *
    coefficient + bias, then `activation`. Stride equals the kernel."""

    name: str
    channels: int
    kernel: int = 2
    activation: str = "scaled_tanh"
    kind: ClassVar[str] = "subsample"

    def __post_init__(self) -> None:
        _check_activation(self)

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


@dataclass(frozen=True)
class Flatten:
    """(C, H, W) -> (C*H*W,), row-major in both frameworks."""

    name: str = "flatten"
    kind: ClassVar[str] = "flatten"

    def out_shape(self, shape: Shape) -> Shape:
        return (math.prod(shape),)

    def params(self) -> tuple[ParamSpec, ...]:
        return ()


@dataclass(frozen=True)
class Dense:
    """Fully connected y = W x + b, W of shape (out, in), then `activation`."""

    name: str
    in_features: int
    out_features: int
    activation: str = "identity"
    kind: ClassVar[str] = "dense"

    def __post_init__(self) -> None:
        _check_activation(self)

    def out_shape(self, shape: Shape) -> Shape:
        if shape != (self.in_features,):
            raise ValueError(f"{self.name}: expects ({self.in_features},), got {shape}")
        return (self.out_features,)

    def params(self) -> tuple[ParamSpec, ...]:
        return (
            ParamSpec(f"{self.name}.weight", "dense.weight", (self.out_features, self.in_features), self.in_features, self.out_features),
            ParamSpec(f"{self.name}.bias", "dense.bias", (self.out_features,), self.in_features, self.out_features),
        )


@dataclass(frozen=True)
class RBF:
    """Euclidean RBF output units with fixed centres (LeNet-5's output layer).

    y_i = sum_j (x_j - w_ij)^2; the layer returns -y as logits, so the most likely class
    is the nearest centre. The centres are `lenet_spec.rbf_bitmaps()`, not trainable.
    """

    name: str
    in_features: int
    out_features: int
    kind: ClassVar[str] = "rbf"

    def out_shape(self, shape: Shape) -> Shape:
        if shape != (self.in_features,):
            raise ValueError(f"{self.name}: expects ({self.in_features},), got {shape}")
        return (self.out_features,)

    def params(self) -> tuple[ParamSpec, ...]:
        return ()


@dataclass(frozen=True)
class BatchNorm:
    """Batch normalisation over the channels (of (N, C, H, W)) or the features (of (N, F)),
    then `activation`.

    Training: y = (x - mean) / sqrt(var + eps) * weight + bias with the batch's mean and
    *biased* variance, and the running averages move toward the batch's mean and *unbiased*
    variance (n / (n - 1) times the biased one, n the values per channel):
    running = (1 - momentum) * running + momentum * batch. Evaluation: the running averages.
    `momentum` is the batch's weight, torch's form; paddle's `momentum` is the running
    average's weight, 1 - this (lenet_paddle.model.BatchNorm gives each its own form).
    """

    name: str
    features: int
    eps: float = 1e-5
    momentum: float = 0.1
    activation: str = "identity"
    kind: ClassVar[str] = "batchnorm"

    def __post_init__(self) -> None:
        _check_activation(self)
        if not 0 < self.momentum <= 1 or not self.eps > 0:
            raise ValueError(f"{self.name}: momentum must lie in (0, 1] and eps be positive")

    def out_shape(self, shape: Shape) -> Shape:
        if len(shape) not in (1, 3) or shape[0] != self.features:
            raise ValueError(f"{self.name}: normalises {self.features} channels or features, got {shape}")
        return shape

    def params(self) -> tuple[ParamSpec, ...]:
        return (
            ParamSpec(f"{self.name}.weight", "batchnorm.weight", (self.features,), 1, 1),
            ParamSpec(f"{self.name}.bias", "batchnorm.bias", (self.features,), 1, 1),
        )

    def buffers(self) -> tuple[BufferSpec, ...]:
        return (
            BufferSpec(f"{self.name}.running_mean", "batchnorm.running_mean", (self.features,), "float", 0.0),
            BufferSpec(f"{self.name}.running_var", "batchnorm.running_var", (self.features,), "float", 1.0),
            BufferSpec(f"{self.name}.num_batches_tracked", "batchnorm.num_batches_tracked", (), "int64", 0),
        )


@dataclass(frozen=True)
class Dropout:
    """In training, each unit is kept with probability 1 - p and the kept ones are scaled by
    1 / (1 - p) (torch's rule, and paddle's default mode `upscale_in_train`); evaluation passes
    the input through. Which units are kept is drawn by the spec (`lenet_spec.schedule.dropout_masks`),
    as the batch order is, so that both frameworks drop the same units."""

    name: str
    p: float
    kind: ClassVar[str] = "dropout"

    def __post_init__(self) -> None:
        if not 0 <= self.p < 1:
            raise ValueError(f"{self.name}: p must lie in [0, 1)")

    def out_shape(self, shape: Shape) -> Shape:
        return shape

    def params(self) -> tuple[ParamSpec, ...]:
        return ()


Layer = Union[Conv, Pool, AdaptivePool, Subsample, Flatten, Dense, RBF, BatchNorm, Dropout]


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
        return tuple(b for layer in self.layers for b in getattr(layer, "buffers", tuple)())

    def state(self) -> tuple[ParamSpec | BufferSpec, ...]:
        """Everything a checkpoint holds: each layer's parameters, then its buffers."""
        return tuple(s for layer in self.layers for s in (*layer.params(), *getattr(layer, "buffers", tuple)()))

    @property
    def has_batchnorm(self) -> bool:
        """Whether training depends on the batch beyond each image (BatchNorm's statistics)."""
        return any(isinstance(layer, BatchNorm) for layer in self.layers)

    def biases_before_batchnorm(self) -> dict[str, str]:
        """bias -> its layer's weight, for each convolution or dense layer whose output goes
        straight into a BatchNorm: in training the BatchNorm subtracts the batch's mean, shift
        and all, so the bias's gradient is zero but for rounding (d2l's chapter keeps them)."""
        pairs = zip(self.layers, self.layers[1:])
        return {f"{a.name}.bias": f"{a.name}.weight" for a, b in pairs if isinstance(a, (Conv, Dense)) and isinstance(b, BatchNorm)}

    @property
    def stateful(self) -> bool:
        """Whether training and evaluation compute differently (BatchNorm, Dropout)."""
        return any(isinstance(layer, (BatchNorm, Dropout)) for layer in self.layers)

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
