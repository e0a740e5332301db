"""How two computations of the same thing are compared: the one relative difference, the tracker
of the worst difference and its name, the decision flips that make float32 gradients
incomparable, and every tolerance of the project, each with where it was measured.

NumPy only: the parity checks (parity/), export.verify and a user's own hand-ported pair
(python -m parity.diff) all compare through this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layers import Variant

# Tolerances on max|a - b| / max|a| between the frameworks' layer outputs, logits and gradients
# (parity.check's default mode), set from measurement (docs/PROOFS.md, "Measured parity"): over seeds
# 0-7, batches of 256 random and 256 MNIST images, every variant and direction, the worst
# figures were
#   float32: layer output 1.3e-6, logits 1.3e-6, gradients 3.2e-5 (batches without decision
#            flips), against the NumPy reference 8.4e-7;
#   float64: layer output 1.3e-15, gradients 9.0e-14, against the reference 1.2e-15.
# Each bound leaves at least 6x headroom for other CPUs' kernels and batch sizes.
LAYER_TOL = {"float32": 1e-5, "float64": 1e-12}
GRAD_TOL = {"float32": 2e-4, "float64": 1e-11}
REFERENCE_TOL = {"float32": 1e-5, "float64": 1e-12}  # float32 models vs the float64 reference
# Training mode (BatchNorm on the batch's statistics): layer outputs and logits, between the
# frameworks and against the reference. Its floor is torch's own float64 kernel, whose batch
# statistics are 3.6e-12 off the exact ones on 256 MNIST images (c1 of lenet5-bn, normalised;
# NumPy's reference and paddle's layer: 6e-15), which later layers carry; worst measured below.
TRAIN_MODE_TOL = {"float32": 5e-5, "float64": 5e-12}

# Training parity (parity.check --train): after every step, max over parameters of
# max|w_a - w_b| / max|w_a|. float64 must stay within TRAIN_TOL for the whole run (measured over
# 100 steps of every variant's recipe: at most 1.6e-14). float32 drift is reported, not judged:
# a float32 near-tie decided differently (a ReLU at 0, a max-pool winner) sends the two runs
# along different, equally valid paths (measured: lenet-caffe 4.5e-2 after 100 steps; torch
# against itself, its initial weights nudged by 1 ulp, 5.9e-2). A float32 run fails only when
# the two runs no longer resemble each other: weights apart by more than their own size, or
# not finite.
TRAIN_TOL = {"float64": 1e-9}
TRAIN_UNRELATED = 1.0

# Data-parallel training (parity.check --train --world-size N), float64, N processes against
# one of the same framework. Measured (lenet5, MNIST, 100 steps, 2 processes): see docs/TRAINING.md
# "Distributed training"; the bound is the 1e-12.
SAME_FRAMEWORK_TOL = {"float64": 1e-12}

# parity.check --device gpu, every pair of sides: NOT MEASURED YET. No GPU has run this check
# (issue 16's machines had none), and the CPU's bounds (LAYER_TOL, GRAD_TOL) are not reused:
# cuDNN rounds otherwise. Until a run on a GPU sets them from the figures that check prints
# (docs/INSTALL-GPU.md), the differences are reported, not judged; judged is what
# needs no tolerance: every output and gradient finite, and in float64 no ReLU/max-pool decision
# made differently. (Predictions are counted, not judged: a prediction can only change where the
# two sides' logits differ by half the gap between its top two classes, so whether that is a
# near-tie is a tolerance too.)
GPU_LAYER_TOL: dict[str, float | None] = {"float32": None, "float64": None}
GPU_GRAD_TOL: dict[str, float | None] = {"float32": None, "float64": None}

# Largest |ONNX - framework| logit difference allowed, float32: 1e-5 absolute for logits up to
# 1 in magnitude, relative above (logit_tolerance = ONNX_TOL * max(1, max |logit|)). Measured
# over every variant, both exporters, both frameworks' models, 512 random + 10,000 MNIST test
# images: at most 8.3e-7 where logits stay under 2 (cross-entropy variants), and 6.1e-5 on
# lenet5-1998's RBF logits of magnitude 85 (7.2e-7 of it; 1e-5 absolute would be 1.3 ulp there).
ONNX_TOL = 1e-5


def rel_diff(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(max|a - b|, max|a - b| / max|a|), computed in float64; shapes must match.

    Raises:
        ValueError: the shapes differ.
    """
    if a.shape != b.shape:
        raise ValueError(f"shape {a.shape} != {b.shape}")
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    abs_diff = float(np.abs(a - b).max(initial=0.0))
    scale = float(np.abs(a).max(initial=0.0))
    return abs_diff, (abs_diff / scale if scale > 0 else (0.0 if abs_diff == 0 else float("inf")))


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max|a - b| in float64; shapes must match (ValueError otherwise)."""
    return rel_diff(a, b)[0]


class Worst:
    """The worst relative difference seen so far, and the name of the tensor it belongs to.

    `add(name, a, b)` compares two tensors (shapes first); `note(name, rel)` takes a difference
    measured otherwise. Equal differences keep the first name; with `latest`, the later one
    (and a difference that is not finite always replaces): a run's worst step.

    Attributes:
        name: the worst tensor's name ("" until something is added).
        rel: its max|a - b| / max|a|.
        abs_diff: its max|a - b| (0.0 when it came through `note`).
        first_over: the first name whose difference exceeded `tol`, None if none (or no `tol`).
    """

    def __init__(self, tol: float | None = None, latest: bool = False):
        self.tol, self.latest = tol, latest
        self.name, self.rel, self.abs_diff = "", 0.0, 0.0
        self.first_over: str | None = None

    def add(self, name: str, a: np.ndarray, b: np.ndarray) -> float:
        """Compare `a` with `b` (relative to `a`) and keep the worst.

        Returns:
            The relative difference of this pair.
        Raises:
            ValueError: the shapes differ; the message names the tensor.
        """
        if np.shape(a) != np.shape(b):
            raise ValueError(f"{name}: shape {np.shape(a)} != {np.shape(b)}")
        abs_diff, rel = rel_diff(a, b)
        self.note(name, rel, abs_diff)
        return rel

    def note(self, name: str, rel: float, abs_diff: float = 0.0) -> float:
        """Keep `name`'s difference `rel` if it is the worst so far; returns `rel`."""
        if self.latest:
            worse = rel >= self.rel or not np.isfinite(rel)
        else:
            worse = rel > self.rel or not self.name
        if worse:
            self.name, self.rel, self.abs_diff = name, rel, abs_diff
        if self.tol is not None and rel > self.tol and self.first_over is None:
            self.first_over = name
        return rel

    def __repr__(self) -> str:
        return f"Worst({self.name!r}, rel={self.rel:.3g}, first_over={self.first_over!r})"


def decision_flips(variant: Variant, out_a: dict[str, np.ndarray], out_b: dict[str, np.ndarray]) -> int:
    """How many discrete choices (a ReLU on or off, a max-pool winner) the two models made differently.

    A near-tie can go either way under float32 rounding; the gradient then flows through a
    different unit and differs by far more than rounding (seen: 8e-3 relative), in either
    framework against float64 alike. Such batches cannot test float32 gradients.
    """
    flips = 0
    for prev, layer in zip(list(out_a), variant.layers):  # each layer says what it decides (Layer.decisions)
        for a, b in zip(layer.decisions(out_a[prev], out_a[layer.name]), layer.decisions(out_b[prev], out_b[layer.name])):
            flips += int((a != b).sum())
    return flips


def grad_rel_diffs(variant: Variant, grads_a: dict[str, np.ndarray], grads_b: dict[str, np.ndarray]) -> dict[str, float]:
    """Parameter -> relative difference of its gradients (both sides in one layout). A bias whose
    gradient is zero by construction (before a BatchNorm) is zero but for rounding: it is
    measured against its layer's weight gradient."""
    zero_grads = variant.biases_before_batchnorm()  # bias -> its layer's weight
    out = {}
    for pname, g in grads_a.items():
        if pname in zero_grads:
            out[pname] = float(np.abs(g - grads_b[pname]).max()) / max(float(np.abs(grads_a[zero_grads[pname]]).max()), np.finfo(g.dtype).tiny)
        else:
            out[pname] = rel_diff(g, grads_b[pname])[1]
    return out


def logit_tolerance(logits: np.ndarray) -> float:
    """The largest |ONNX - framework| logit difference allowed for these framework logits (ONNX_TOL)."""
    return ONNX_TOL * max(1.0, float(np.abs(logits).max(initial=0.0)))


@dataclass
class Comparison:
    """Two computations' logits on one set of images, judged by logit_tolerance."""

    images: str  # "random" or the data set's name
    count: int
    max_abs: float
    logit_scale: float  # max |logit| of the reference
    tolerance: float
    argmax_agreement: float
    passed: bool


def compare_logits(reference: np.ndarray, other: np.ndarray, images: str, names: tuple[str, str] = ("framework", "ONNX")) -> Comparison:
    """`other`'s logits against `reference`'s on the images called `images`.

    Raises:
        ValueError: the shapes differ (the message names both sides).
    """
    if reference.shape != other.shape:
        raise ValueError(f"{images}: {names[0]} logits {reference.shape} but {names[1]} logits {other.shape}")
    diff = float(np.abs(reference.astype(np.float64) - other).max(initial=0.0))
    tol = logit_tolerance(reference)
    agree = float((reference.argmax(1) == other.argmax(1)).mean())
    return Comparison(images, len(reference), diff, float(np.abs(reference).max()), tol, agree, diff <= tol)
