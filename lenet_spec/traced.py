"""What a framework's importer (lenet_<framework>/importer.py, `trace(model, input_shape)`) reads of
a user's model, in NumPy: the operations one forward pass made, in call order, each with its
attributes, its parameters in the spec's layouts, its shapes and the line of the user's code
that made it. python -m parity.port turns these into a spec (parity.port.assemble); nothing here
imports a framework.

Op.kind and its attrs (every size an int; shapes without the batch axis):
  conv              in_channels, out_channels, kernel, stride, padding, dilation, groups, bias (bool)
  linear            in_features, out_features, bias (bool)
  max_pool          kernel, stride, padding, ceil_mode (bool)
  avg_pool          kernel, stride, padding, ceil_mode (bool), count_include_pad (bool: torch's
                    sense; paddle's exclusive=True is count_include_pad=False)
  adaptive_max_pool, adaptive_avg_pool     output_size (h, w)
  batchnorm         features, eps, momentum (torch's sense: the batch's weight), affine (bool),
                    track_running_stats (bool)
  dropout           p
  flatten           (none: the op takes (N, ...) to (N, prod(...)), checked on the shapes)
  relu, sigmoid, tanh, identity            (none)
  leaky_relu        slope
  log_softmax, softmax                     dim (1 or -1 on (N, F))
  subsample         channels, kernel, pooling ("avg": mean of the window; "sum"): a user's module
                    recognised as LeNet-5's trainable subsampling (seed 004's DownSample)
  unsupported       reason: what it is and why it cannot be mapped (the importer does not
                    raise for it; parity.port names the first one with its module and line)

Op.params: local name -> array, spec layouts (conv (out, in, kh, kw); linear (out, in), paddle's
(in, out) transposed by its importer): weight, bias; batchnorm also running_mean, running_var;
subsample: weight (C,) (the window's mean or sum times it), bias (C,).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

KINDS = (
    "conv", "linear", "max_pool", "avg_pool", "adaptive_max_pool", "adaptive_avg_pool", "batchnorm", "dropout", "flatten",
    "relu", "sigmoid", "tanh", "identity", "leaky_relu", "log_softmax", "softmax", "subsample", "unsupported",
)  # fmt: skip


class TraceError(ValueError):
    """A model the importer cannot follow (a forward that is not a chain, an input it rejects): one
    line naming what, where, and what to do."""


@dataclass
class Op:
    """One operation of the traced forward pass."""

    kind: str  # one of KINDS
    module: str  # the module's dotted path in the model ("features.0", "conv1"); "" for a functional op
    type_name: str  # the module's class name, or the function's or method's name ("relu", "view")
    attrs: dict = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()
    where: str = ""  # FILE:LINE of the user's code that made the call ("" when unknown)

    def describe(self) -> str:
        """'features.0 (Conv2d) at net.py:12' or 'relu at net.py:30'."""
        what = f"{self.module} ({self.type_name})" if self.module else self.type_name
        return what + (f" at {self.where}" if self.where else "")


@dataclass
class Trace:
    """A model's forward pass as a chain of ops."""

    class_name: str  # the model's class name
    source: str  # the file that defines it ("" when unknown)
    input_shape: tuple[int, ...]
    ops: list[Op]
    output_shape: tuple[int, ...]


def recognise_subsample(x: np.ndarray, y: np.ndarray, weight: np.ndarray, bias: np.ndarray, kernel: int) -> str | None:
    """Whether a user's module that took `x` (N, C, H, W) to `y`, owning a weight and a bias of C
    values each, is LeNet-5's trainable subsampling: "avg" when y = (window mean) * weight + bias
    per map over kernel x kernel windows at stride kernel, "sum" for the window sum, None when it is
    neither. Judged in float64 on the module's own recorded input and output (the proof that
    follows, parity.diff of the source against the port, checks it again on every phase)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n, c, h, w = x.shape
    if weight.shape != (c,) or bias.shape != (c,) or h % kernel or w % kernel or y.shape != (n, c, h // kernel, w // kernel):
        return None
    total = x.reshape(n, c, h // kernel, kernel, w // kernel, kernel).sum(axis=(3, 5))
    scale = max(float(np.abs(y).max()), 1e-300)
    for pooling, pooled in (("avg", total / (kernel * kernel)), ("sum", total)):
        got = pooled * weight[None, :, None, None] + bias[None, :, None, None]
        if float(np.abs(got - y).max()) <= 1e-9 * scale:
            return pooling
    return None


@dataclass
class Step:
    """One line of a generated model's forward: a traced op, called as a module or a function."""

    op: Op
    attr: str | None  # the attribute the module is held in (the source's name, dots as underscores); None: a function call
    define: bool = True  # the first call of that attribute defines it (a parameterless module may be called again)


@dataclass
class Plan:
    """What python -m parity.port generates: the source model's class name, its ops as lines, the files."""

    class_name: str
    source: str  # the source's file name, for the generated docstring
    source_framework: str
    input_shape: tuple[int, ...]
    steps: list[Step]
    output_shape: tuple[int, ...]
    stem: str = "net"  # the files' stem: net.toml, net_<framework>.py, net<suffix>, net.safetensors


# --- the arguments generated code gives a layer, the same words in both frameworks (lenet_<framework>/codegen.py) ---
def conv_args(a: dict) -> str:
    """A conv op's constructor arguments: the channels and kernel, then what is not the default."""
    args = [str(a["in_channels"]), str(a["out_channels"]), f"kernel_size={a['kernel']}"]
    args += [f"{k}={a[k]}" for k, default in (("stride", 1), ("padding", 0), ("dilation", 1)) if a[k] != default]
    return ", ".join(args)


def pool_call_args(a: dict, convention: str = "", value: bool = False) -> str:
    """A functional pool's arguments: the kernel, then the stride and padding where they are not the
    defaults, and with padding the framework's padding convention (`convention`=`value`)."""
    args = [str(a["kernel"])]
    if a["stride"] != a["kernel"] or a["padding"]:
        args.append(str(a["stride"]))
    if a["padding"]:
        args.append(str(a["padding"]))
        if convention:
            args.append(f"{convention}={value}")
    return ", ".join(args)
