"""What a framework's probe (lenet_<framework>/diff.py) reports about a user's model, in NumPy:
its units (the modules that compute: leaves, and modules that own parameters directly), the
calls one forward pass made to them in call order, with their inputs, outputs and output
gradients, and what raised. parity.diff pairs and compares these; nothing here imports a framework.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Unit.kind for the units whose randomness the probes replace with masks drawn in NumPy
DROPOUT = "dropout"  # a mask of the input's shape
CHANNEL_DROPOUT = "channel_dropout"  # one draw per (example, channel): torch's Dropout1d/2d/3d, paddle's Dropout2D/3D


@dataclass
class Unit:
    """One module of a model that computes something parity.diff compares."""

    name: str  # dotted name in its model ("features.3", "b1"); "" for the model itself
    type: str  # its class's name
    params: list[tuple[str, tuple[int, ...]]]  # trainable parameters it owns directly: (local name, shape), in registration order
    buffers: list[tuple[str, tuple[int, ...]]]  # state it owns that is not trained (running statistics): (local name, shape)
    kind: str = ""  # DROPOUT, CHANNEL_DROPOUT or ""
    p: float = 0.0  # a dropout's probability
    convention: str = ""  # a dropout's scaling: "upscale_in_train" (torch's, paddle's default) or "downscale_in_infer"
    defined: str = ""  # FILE:LINE of its class
    unsupported: str = ""  # why its randomness cannot be shared (a dropout along an axis), or ""
    eps: float | None = None  # a normalisation's epsilon, as the framework keeps it
    momentum: float | None = None  # a BatchNorm's momentum in torch's sense: the batch's weight in the running average

    @property
    def state_names(self) -> list[str]:
        """Its parameters' and buffers' full names in the model's state dict."""
        prefix = f"{self.name}." if self.name else ""
        return [prefix + n for n, _ in self.params + self.buffers]


@dataclass
class Call:
    """One call of a unit during a forward pass."""

    unit: int  # index into the probe's units
    in_shapes: list[tuple[int, ...]]
    out_shape: tuple[int, ...] | None = None  # None: it raised
    inputs: list[np.ndarray] | None = None  # kept when asked (keep=True)
    output: np.ndarray | None = None
    grad: np.ndarray | None = None  # d loss / d output, after a backward pass
    at: str = ""  # FILE:LINE of the user's code that made the call


@dataclass
class Run:
    """One forward pass (and backward, when asked) of a model, as its probe saw it."""

    calls: list[Call]
    output: np.ndarray | None = None  # the model's output (None: it raised)
    loss: float | None = None
    grads: dict[str, np.ndarray] = field(default_factory=dict)  # full parameter name -> gradient (the model's layout)
    raised: str | None = None  # one line: what raised, when the forward did not finish
    raised_call: int | None = None  # index into calls of the innermost unit that raised (None: outside any unit)
    odd_output: str = ""  # the type the model returned when it was not one tensor


def draw_mask(rng: np.random.Generator, kind: str, shape: tuple[int, ...], p: float) -> np.ndarray:
    """A dropout mask (1 keeps, 0 drops) for an input of `shape`, float64, in NumPy: both
    frameworks' layers then drop the same units (lenet_<framework>/diff.py applies it)."""
    mask_shape = shape[:2] + (1,) * (len(shape) - 2) if kind == CHANNEL_DROPOUT else shape
    return (rng.random(mask_shape) >= p).astype(np.float64)


def loss_of(output: np.ndarray, labels: np.ndarray | None) -> str:
    """Which loss parity.diff differentiates: "cross_entropy" for (N, classes) outputs with labels
    in range, else "projection" (the sum of the output times a fixed random tensor, over N)."""
    if labels is not None and output.ndim == 2 and output.shape[1] > 1 and output.shape[0] == len(labels) and int(labels.max()) < output.shape[1]:
        return "cross_entropy"
    return "projection"
