"""The forward and gradient cases of parity.check: one variant, one direction of the weight
transfer, one dtype.

Build the source model, move its weights to the other framework through the mapping table,
feed both the same images and compare
  1. every layer's output (so a failure names the first layer that differs) and the logits;
  2. the gradient of the mean cross-entropy for every parameter, on the same batch and labels;
  3. both frameworks' logits against the NumPy reference forward pass (float64);
  4. the weights after moving them back: the round trip must be bit-exact.
Differences are relative to the largest magnitude in the source tensor: max|a - b| / max|a|
(lenet_spec.compare).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lenet_spec import Variant, reference
from lenet_spec.compare import GRAD_TOL, LAYER_TOL, REFERENCE_TOL, TRAIN_MODE_TOL, Worst, decision_flips, grad_rel_diffs, rel_diff
from lenet_spec.data import DataError, dataset_dirs, find_dataset, load_split, to_model_input
from lenet_spec.frameworks import NAMES, bridge, package
from lenet_spec.mapping import convert, table
from lenet_spec.schedule import dropout_masks

DTYPES = ("float32", "float64")
DIRECTIONS = (f"{NAMES[0]}2{NAMES[1]}", f"{NAMES[1]}2{NAMES[0]}")  # torch2paddle, paddle2torch


@dataclass
class Batch:
    name: str  # "random" or "mnist"
    images: np.ndarray  # float64 (N, C, H, W) in [0, 1]
    labels: np.ndarray  # int64 (N,)


@dataclass
class CaseResult:
    variant: str
    direction: str
    dtype: str
    batches: list[str]
    max_abs_diff: float = 0.0  # logits
    max_rel_diff: float = 0.0  # logits
    worst_layer: str = ""
    worst_layer_rel_diff: float = 0.0
    first_bad_layer: str | None = None
    argmax_agree: int = 0
    argmax_total: int = 0
    argmax_decisive_disagreements: int = 0  # disagreements where the reference is not a near-tie
    grad_max_rel_diff: float = 0.0  # over batches whose discrete decisions agree
    worst_grad: str = ""
    decision_flips: int = 0  # ReLU / max-pool choices made differently (float32 near-ties)
    grad_max_rel_diff_with_flips: float = 0.0  # over the batches with flips, reported only
    loss_diff: float = 0.0
    reference_max_rel_diff: float = 0.0  # max over both frameworks' logits vs NumPy float64
    # stateful variants (BatchNorm, Dropout), training mode with the spec's dropout masks:
    train_worst_layer: str = ""
    train_max_rel_diff: float = 0.0  # every layer's output, both frameworks
    buffer_max_rel_diff: float = 0.0  # running statistics after that pass
    train_reference_max_rel_diff: float = 0.0  # logits and running statistics vs NumPy float64
    roundtrip_exact: bool = False
    passed: bool = False
    problems: list[str] = field(default_factory=list)


def load_mnist(data_dir: str | None) -> tuple[tuple[np.ndarray, np.ndarray] | None, str]:
    """MNIST's test set and a line saying where it came from, or None and why."""
    folder = find_dataset("mnist", data_dir)
    if folder is None:
        if data_dir is not None:
            raise DataError(f"{data_dir}: no MNIST test files (t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) here or in {Path(data_dir) / 'mnist'}")
        looked = ", ".join(str(d) for d in dataset_dirs("mnist")) or "nowhere: $LENET_DATA is not set"
        return None, f"MNIST: not found (looked in {looked}); random images only. Pass --data-dir or set LENET_DATA to a folder holding mnist/."
    return load_split(folder, "test"), f"MNIST: test images from {folder}"


def make_batches(variant: Variant, batch: int, seed: int, mnist: tuple[np.ndarray, np.ndarray] | None) -> list[Batch]:
    """Random [0, 1] images with random labels, plus real MNIST test images when given and the variant reads them."""
    rng = np.random.default_rng(seed)
    out = [Batch("random", rng.random((batch, *variant.input.shape)), rng.integers(0, variant.num_classes, batch))]
    if mnist is not None and variant.input.shape == (1, 28, 28):
        images, labels = mnist
        out.append(Batch("mnist", to_model_input(images[:batch], np.float64), labels[:batch]))
    return out


def argmax_agreement(logits_a: np.ndarray, logits_b: np.ndarray, reference: np.ndarray, abs_diff: float) -> tuple[int, int]:
    """(images whose predicted class agrees, disagreements where the float64 reference's top two
    classes are further apart than twice the logits' difference: not a near-tie)."""
    pick_a, pick_b = logits_a.argmax(1), logits_b.argmax(1)
    top2 = np.sort(reference, axis=1)[:, -2:]
    near_tie = (top2[:, 1] - top2[:, 0]) <= 2 * abs_diff
    return int((pick_a == pick_b).sum()), int(((pick_a != pick_b) & ~near_tie).sum())


def run_case(variant: Variant, direction: str, dtype: str, batches: list[Batch], seed: int, weights: dict[str, np.ndarray] | None = None) -> CaseResult:
    """One variant, one direction, one dtype.

    Args:
        direction: "torch2paddle" or "paddle2torch": the source framework, then the target.
        batches: the images and labels (make_batches).
        weights: spec-layout parameters to start from; None for the spec's init with `seed`.
    Returns:
        Every figure of the case, `passed` and the `problems` that failed it.
    """
    src, dst = direction.split("2")
    src_io, dst_io = bridge(src), bridge(dst)
    res = CaseResult(variant.name, direction, dtype, [b.name for b in batches])

    source = package(src).build(variant, seed=seed, dtype=dtype)
    if weights is not None:
        src_io.load_state_numpy(source, convert(weights, variant, "spec", src))
    state = src_io.state_numpy(source)
    target = package(dst).build(variant, seed=seed + 1, dtype=dtype)  # other weights: the transfer must overwrite all
    dst_io.load_state_numpy(target, convert(state, variant, src, dst))
    back = convert(dst_io.state_numpy(target), variant, dst, src)
    res.roundtrip_exact = all(np.array_equal(back[k], state[k]) and back[k].dtype == state[k].dtype for k in state)

    layers, grads, train = Worst(tol=LAYER_TOL[dtype]), Worst(), Worst()
    for i, b in enumerate(batches):
        x = b.images.astype(dtype)
        spec_params = convert(src_io.state_numpy(source), variant, src, "spec")  # training passes move running statistics
        out_a, out_b = src_io.forward_numpy(source, x), dst_io.forward_numpy(target, x)
        if list(out_a) != list(out_b):
            raise AssertionError(f"layer names differ: {list(out_a)} vs {list(out_b)}")
        for name in out_a:
            layers.add(name, out_a[name], out_b[name])
        logits_a, logits_b = out_a[name], out_b[name]
        abs_diff, rel = rel_diff(logits_a, logits_b)
        res.max_abs_diff, res.max_rel_diff = max(res.max_abs_diff, abs_diff), max(res.max_rel_diff, rel)

        ref = reference.forward(variant, spec_params, b.images.astype(dtype).astype(np.float64))[name]
        res.reference_max_rel_diff = max(res.reference_max_rel_diff, rel_diff(ref, logits_a)[1], rel_diff(ref, logits_b)[1])

        agree, decisive = argmax_agreement(logits_a, logits_b, ref, abs_diff)
        res.argmax_agree += agree
        res.argmax_total += len(logits_a)
        res.argmax_decisive_disagreements += decisive

        masks = dropout_masks(variant, seed, 0, i, len(x))  # as a training step draws them
        if variant.stateful:
            train_stateful(res, train, variant, src_io, source, dst_io, target, x, masks, spec_params, (src, dst))

        loss_a, grads_a = src_io.grads_numpy(source, x, b.labels, masks)
        loss_b, grads_b = dst_io.grads_numpy(target, x, b.labels, masks)
        grads_b = convert(grads_b, variant, dst, src, params_only=True)
        res.loss_diff = max(res.loss_diff, abs(loss_a - loss_b))
        flips = decision_flips(variant, out_a, out_b)
        res.decision_flips += flips
        for pname, rel in grad_rel_diffs(variant, grads_a, grads_b).items():
            if flips:
                res.grad_max_rel_diff_with_flips = max(res.grad_max_rel_diff_with_flips, rel)
            else:
                grads.note(pname, rel)
    res.worst_layer, res.worst_layer_rel_diff, res.first_bad_layer = layers.name, layers.rel, layers.first_over
    res.worst_grad, res.grad_max_rel_diff = grads.name, grads.rel
    res.train_worst_layer, res.train_max_rel_diff = train.name, train.rel

    if res.first_bad_layer is not None:
        res.problems.append(f"layer {res.first_bad_layer} is the first to differ by more than {LAYER_TOL[dtype]:.0e}")
    if res.decision_flips and dtype == "float64":
        res.problems.append(f"{res.decision_flips} ReLU/max-pool decisions differ, in float64")
    if res.grad_max_rel_diff > GRAD_TOL[dtype]:
        res.problems.append(f"gradient of {res.worst_grad} differs by {res.grad_max_rel_diff:.2e} > {GRAD_TOL[dtype]:.0e}")
    if res.reference_max_rel_diff > REFERENCE_TOL[dtype]:
        res.problems.append(f"logits differ from the NumPy reference by {res.reference_max_rel_diff:.2e} > {REFERENCE_TOL[dtype]:.0e}")
    if res.argmax_decisive_disagreements:
        res.problems.append(f"{res.argmax_decisive_disagreements} predictions differ where the reference is not a tie")
    if res.train_max_rel_diff > TRAIN_MODE_TOL[dtype]:
        res.problems.append(f"in training mode, layer {res.train_worst_layer} differs by {res.train_max_rel_diff:.2e} > {TRAIN_MODE_TOL[dtype]:.0e}")
    if res.buffer_max_rel_diff > LAYER_TOL[dtype]:
        res.problems.append(f"the running statistics after a training pass differ by {res.buffer_max_rel_diff:.2e} > {LAYER_TOL[dtype]:.0e}")
    if res.train_reference_max_rel_diff > TRAIN_MODE_TOL[dtype]:
        res.problems.append(
            f"in training mode, logits or running statistics differ from the NumPy reference by {res.train_reference_max_rel_diff:.2e} > "
            f"{TRAIN_MODE_TOL[dtype]:.0e}"
        )
    if not res.roundtrip_exact:
        res.problems.append("weights are not bit-identical after the round trip")
    res.passed = not res.problems
    return res


def train_stateful(
    res: CaseResult, layers: Worst, variant: Variant, src_io, source, dst_io, target, x: np.ndarray, masks, spec_params: dict, sides: tuple[str, str]
) -> None:
    """A training-mode pass through both models (BatchNorm on batch statistics, Dropout with the
    spec's masks): every layer's output (into `layers`), the running statistics it leaves, and
    both against the NumPy reference's training pass from the same state."""
    src, dst = sides
    out_a = src_io.forward_numpy(source, x, train=True, masks=masks)
    out_b = dst_io.forward_numpy(target, x, train=True, masks=masks)
    for name in out_a:
        layers.add(name, out_a[name], out_b[name])
    state_a = src_io.state_numpy(source)
    state_b = convert(dst_io.state_numpy(target), variant, dst, src)
    buffers = {e.names[src]: e.names["spec"] for e in table(variant) if e.buffer}
    for k in buffers:
        res.buffer_max_rel_diff = max(res.buffer_max_rel_diff, rel_diff(state_a[k], state_b[k])[1])
    updated: dict = {}
    ref = reference.forward(variant, spec_params, x.astype(np.float64), train=True, masks=masks, updated=updated)
    logits = list(out_a)[-1]
    worst = max(rel_diff(ref[logits], out_a[logits])[1], rel_diff(ref[logits], out_b[logits])[1])
    for k, spec_name in buffers.items():
        worst = max(worst, rel_diff(updated[spec_name], state_a[k])[1], rel_diff(updated[spec_name], state_b[k])[1])
    res.train_reference_max_rel_diff = max(res.train_reference_max_rel_diff, worst)
