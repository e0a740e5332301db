"""python -m parity.check: prove that the torch and paddle LeNets compute the same thing.

For each variant, direction and dtype: build the source model, move its weights to the
other framework through the mapping table, feed both the same images and compare
  1. every layer's output (so a failure names the first layer that differs) and the logits;
  2. the gradient of the mean cross-entropy for every parameter, on the same batch and labels;
  3. both frameworks' logits against the NumPy reference forward pass (float64);
  4. the weights after moving them back: the round trip must be bit-exact.
Differences are relative to the largest magnitude in the source tensor: max|a - b| / max|a|.
Exit status 0 only if every case passes.

--device gpu compares torch and paddle on the GPU, with each other and with both on the CPU
(parity/gpu.py); --env says what this machine has for the project (parity/env.py).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from numpy.lib.stride_tricks import sliding_window_view

from lenet_spec import VARIANTS, AdaptivePool, Pool, Variant, get_variant, reference
from lenet_spec.checkpoint import CheckpointError, atomic_write
from lenet_spec.cli import UsageError, check_output, run
from lenet_spec.data import DataError, dataset_dirs, find_dataset, load_split, to_model_input
from lenet_spec.schedule import dropout_masks
from lenet_spec.recipe import Recipe, default_recipe

from lenet_spec.frameworks import NAMES as FRAMEWORKS, FrameworkMissing, bridge, gpu_problem, package
from lenet_spec.load import load_checkpoint
from lenet_spec.mapping import MappingError, convert, table

DTYPES = ("float32", "float64")
DIRECTIONS = ("torch2paddle", "paddle2torch")

# Tolerances on max|a - b| / max|a|, set from measurement (README, "Measured parity"): over
# seeds 0-7, batches of 256 random and 256 MNIST images, every variant and direction, the
# worst figures were
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


def rel_diff(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(max|a - b|, max|a - b| / max|a|), computed in float64; shapes must match."""
    if a.shape != b.shape:
        raise ValueError(f"shape {a.shape} != {b.shape}")
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    abs_diff = float(np.abs(a - b).max(initial=0.0))
    scale = float(np.abs(a).max(initial=0.0))
    return abs_diff, (abs_diff / scale if scale > 0 else (0.0 if abs_diff == 0 else float("inf")))


def _pool_winners(layer: Pool | AdaptivePool, x: np.ndarray) -> np.ndarray:
    """Index of the maximum in every pooling window (first one on exact ties, as both frameworks pick)."""
    if isinstance(layer, Pool):
        win = sliding_window_view(x, (layer.kernel, layer.kernel), axis=(2, 3))[:, :, :: layer.stride, :: layer.stride]
        return win.reshape(*win.shape[:4], -1).argmax(-1)
    rows, cols = layer.windows(x.shape[2], layer.output_size[0]), layer.windows(x.shape[3], layer.output_size[1])
    return np.stack([x[:, :, h0:h1, w0:w1].reshape(*x.shape[:2], -1).argmax(-1) for h0, h1 in rows for w0, w1 in cols], -1)


def decision_flips(variant: Variant, out_a: dict[str, np.ndarray], out_b: dict[str, np.ndarray]) -> int:
    """How many discrete choices (a ReLU on or off, a max-pool winner) the two models made differently.

    A near-tie can go either way under float32 rounding; the gradient then flows through a
    different unit and differs by far more than rounding (seen: 8e-3 relative), in either
    framework against float64 alike. Such batches cannot test float32 gradients.
    """
    names = list(out_a)
    flips = 0
    for prev, layer in zip(names, variant.layers):
        if getattr(layer, "activation", None) == "relu":
            flips += int(((out_a[layer.name] > 0) != (out_b[layer.name] > 0)).sum())
        if isinstance(layer, AdaptivePool) or (isinstance(layer, Pool) and layer.mode == "max"):
            flips += int((_pool_winners(layer, out_a[prev]) != _pool_winners(layer, out_b[prev])).sum())
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


def argmax_agreement(logits_a: np.ndarray, logits_b: np.ndarray, reference: np.ndarray, abs_diff: float) -> tuple[int, int]:
    """(images whose predicted class agrees, disagreements where the float64 reference's top two
    classes are further apart than twice the logits' difference: not a near-tie)."""
    pick_a, pick_b = logits_a.argmax(1), logits_b.argmax(1)
    top2 = np.sort(reference, axis=1)[:, -2:]
    near_tie = (top2[:, 1] - top2[:, 0]) <= 2 * abs_diff
    return int((pick_a == pick_b).sum()), int(((pick_a != pick_b) & ~near_tie).sum())


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


def make_batches(variant: Variant, batch: int, seed: int, mnist: tuple[np.ndarray, np.ndarray] | None) -> list[Batch]:
    """Random [0, 1] images with random labels, plus real MNIST test images when given and the variant reads them."""
    rng = np.random.default_rng(seed)
    out = [Batch("random", rng.random((batch, *variant.input.shape)), rng.integers(0, variant.num_classes, batch))]
    if mnist is not None and variant.input.shape == (1, 28, 28):
        images, labels = mnist
        out.append(Batch("mnist", to_model_input(images[:batch], np.float64), labels[:batch]))
    return out


def run_case(variant: Variant, direction: str, dtype: str, batches: list[Batch], seed: int, weights: dict[str, np.ndarray] | None = None) -> CaseResult:
    """One variant, one direction, one dtype.

    Args:
        weights: spec-layout parameters to start from; None for the spec's init with `seed`.
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

    for i, b in enumerate(batches):
        x = b.images.astype(dtype)
        spec_params = convert(src_io.state_numpy(source), variant, src, "spec")  # training passes move running statistics
        out_a, out_b = src_io.forward_numpy(source, x), dst_io.forward_numpy(target, x)
        if list(out_a) != list(out_b):
            raise AssertionError(f"layer names differ: {list(out_a)} vs {list(out_b)}")
        for name in out_a:
            _, rel = rel_diff(out_a[name], out_b[name])
            if rel > res.worst_layer_rel_diff or not res.worst_layer:
                res.worst_layer, res.worst_layer_rel_diff = name, rel
            if rel > LAYER_TOL[dtype] and res.first_bad_layer is None:
                res.first_bad_layer = name
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
            train_stateful(res, variant, src_io, source, dst_io, target, x, masks, spec_params, (src, dst))

        loss_a, grads_a = src_io.grads_numpy(source, x, b.labels, masks)
        loss_b, grads_b = dst_io.grads_numpy(target, x, b.labels, masks)
        grads_b = convert(grads_b, variant, dst, src, params_only=True)
        res.loss_diff = max(res.loss_diff, abs(loss_a - loss_b))
        flips = decision_flips(variant, out_a, out_b)
        res.decision_flips += flips
        for pname, rel in grad_rel_diffs(variant, grads_a, grads_b).items():
            if flips:
                res.grad_max_rel_diff_with_flips = max(res.grad_max_rel_diff_with_flips, rel)
            elif rel > res.grad_max_rel_diff or not res.worst_grad:
                res.worst_grad, res.grad_max_rel_diff = pname, rel

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
        res.problems.append(f"in training mode, logits or running statistics differ from the NumPy reference by {res.train_reference_max_rel_diff:.2e} > {TRAIN_MODE_TOL[dtype]:.0e}")
    if not res.roundtrip_exact:
        res.problems.append("weights are not bit-identical after the round trip")
    res.passed = not res.problems
    return res


def train_stateful(res: CaseResult, variant: Variant, src_io, source, dst_io, target, x: np.ndarray, masks, spec_params: dict, sides: tuple[str, str]) -> None:
    """A training-mode pass through both models (BatchNorm on batch statistics, Dropout with the
    spec's masks): every layer's output, the running statistics it leaves, and both against the
    NumPy reference's training pass from the same state."""
    src, dst = sides
    out_a = src_io.forward_numpy(source, x, train=True, masks=masks)
    out_b = dst_io.forward_numpy(target, x, train=True, masks=masks)
    for name in out_a:
        rel = rel_diff(out_a[name], out_b[name])[1]
        if rel > res.train_max_rel_diff or not res.train_worst_layer:
            res.train_worst_layer, res.train_max_rel_diff = name, rel
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


# Training parity: after every step, max over parameters of max|w_torch - w_paddle| / max|w_torch|.
# float64 must stay within TRAIN_TOL for the whole run (measured over 100 steps of every
# variant's recipe: at most 1.6e-14). float32 drift is reported, not judged: a float32 near-tie
# decided differently (a ReLU at 0, a max-pool winner) sends the two runs along different,
# equally valid paths (measured: lenet-caffe 4.5e-2 after 100 steps; torch against itself,
# its initial weights nudged by 1 ulp, 5.9e-2). A float32 run fails only when the two runs no
# longer resemble each other: weights apart by more than their own size, or not finite.
TRAIN_TOL = {"float64": 1e-9}
TRAIN_UNRELATED = 1.0


@dataclass
class TrainResult:
    variant: str
    dtype: str
    steps: int
    data: str
    augment: bool
    max_rel_diff: float = 0.0  # over all steps and parameters
    final_max_rel_diff: float = 0.0
    worst_param: str = ""
    first_step_over: int | None = None  # 1-based step where the drift first exceeded the tolerance
    loss_diff: float = 0.0  # |mean training loss torch - paddle| over the run
    eval_rel_diff: float = 0.0  # logits in evaluation mode after the run (BatchNorm: the running statistics)
    drift: list[float] = field(default_factory=list)  # per step
    passed: bool = False


def train_batches_source(variant: Variant, steps: int, batch: int, seed: int, mnist_train: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray, str]:
    """Training images (uint8) and labels: MNIST's training set for 1x28x28 variants when found,
    else seeded random images, enough for `steps` batches."""
    if mnist_train is not None and variant.input.shape == (1, 28, 28):
        return mnist_train[0], mnist_train[1], "mnist"
    rng = np.random.default_rng([seed, 7])
    n = steps * batch
    c, h, w = variant.input.shape
    images = rng.integers(0, 256, (n, h, w) if c == 1 else (n, c, h, w), dtype=np.uint8)
    return images, rng.integers(0, variant.num_classes, n), "random"


def run_training_case(variant: Variant, dtype: str, steps: int, seed: int, mnist_train, augment: bool = False, recipe: Recipe | None = None) -> TrainResult:
    """Train torch and paddle side by side from the same init on the same batches with
    `recipe` (default: the variant's, for distorted images with `augment`), comparing every
    weight after every step."""
    from lenet_spec.schedule import epoch_steps

    recipe = recipe or default_recipe(variant.name, augment)
    images, labels, source = train_batches_source(variant, steps, recipe.batch_size, seed, mnist_train)
    res = TrainResult(variant.name, dtype, steps, source, augment)
    backends = [importlib.import_module(f"lenet_{fw}.train").Backend(variant, recipe, seed, "cpu", dtype) for fw in ("torch", "paddle")]
    for b in backends:
        b.set_train_data(images, labels)
    tol = TRAIN_TOL.get(dtype, TRAIN_UNRELATED)
    step = 0
    for epoch in range(recipe.epochs * 1000):
        for train_step in epoch_steps(len(labels), recipe, seed, epoch, augment, images.shape[-1], variant):  # the trainers' own schedule
            if step == steps:
                break
            for b in backends:
                b.train_step(*train_step)
            step += 1
            a, p = backends[0].weights(), convert(backends[1].weights(), variant, "paddle", "torch")
            worst = max(((rel_diff(a[k], p[k])[1], k) for k in a), key=lambda t: t[0])
            res.drift.append(worst[0])
            if worst[0] >= res.max_rel_diff or not np.isfinite(worst[0]):
                res.max_rel_diff, res.worst_param = worst
            if worst[0] > tol and res.first_step_over is None:
                res.first_step_over = step
        if step == steps:
            break
    res.final_max_rel_diff = res.drift[-1]
    res.loss_diff = abs(backends[0].running()[0] - backends[1].running()[0])
    res.eval_rel_diff = rel_diff(*(b.predict(images[:256]) for b in backends))[1]  # what the trained models answer
    res.passed = bool(res.first_step_over is None and np.isfinite(res.max_rel_diff) and res.eval_rel_diff <= tol)
    return res


WIDTH = max(12, *(len(v) for v in VARIANTS))  # of the variant column
TRAIN_HEADER = f"{'variant':<{WIDTH}} {'dtype':<8} {'steps':>5} {'data':<7} {'final rel':>9} {'max rel':>9} {'worst param':<22} {'over at':>7} {'loss diff':>9} {'eval rel':>9} result"


def format_train_row(r: TrainResult) -> str:
    over = "-" if r.first_step_over is None else str(r.first_step_over)
    return (
        f"{r.variant:<{WIDTH}} {r.dtype:<8} {r.steps:>5} {r.data:<7} {r.final_max_rel_diff:>9.1e} {r.max_rel_diff:>9.1e} "
        f"{r.worst_param:<22} {over:>7} {r.loss_diff:>9.1e} {r.eval_rel_diff:>9.1e} {('PASS' if r.dtype in TRAIN_TOL else 'report') if r.passed else 'FAIL'}"
    )


LEGEND = """\
  logit abs/rel  max |source - target| over the logits, and that over max |source logit|
  worst layer    the layer whose outputs differ most (relative), and by how much
  argmax         images whose predicted class agrees, of all images of the case
  grad rel       worst parameter gradient difference (relative), on batches without flips
  flips          ReLU / max-pool decisions made differently (float32 near-ties; never in float64)
  ref rel        both frameworks' logits against the NumPy float64 reference (relative)
  train rel      stateful variants (BatchNorm, dropout), training mode with the spec's masks: layer
                 outputs, the running statistics left behind, and both against the reference (worst)
  rt             ok: the weights and buffers moved back are bit-identical (round trip)"""

HEADER = f"{'variant':<{WIDTH}} {'direction':<13} {'dtype':<8} {'logit abs':>9} {'logit rel':>9} {'worst layer':<20} {'argmax':>9} {'grad rel':>9} {'flips':>5} {'ref rel':>9} {'train rel':>9} {'rt':<3} result"


def format_row(r: CaseResult) -> str:
    layer = f"{r.worst_layer} {r.worst_layer_rel_diff:.1e}"
    grad = f"{r.grad_max_rel_diff:.1e}" if r.worst_grad else "n/a"  # n/a: every batch had a flip
    train = f"{max(r.train_max_rel_diff, r.buffer_max_rel_diff, r.train_reference_max_rel_diff):.1e}" if r.train_worst_layer else "-"
    return (
        f"{r.variant:<{WIDTH}} {r.direction:<13} {r.dtype:<8} {r.max_abs_diff:>9.1e} {r.max_rel_diff:>9.1e} {layer:<20} "
        f"{f'{r.argmax_agree}/{r.argmax_total}':>9} {grad:>9} {r.decision_flips:>5} {r.reference_max_rel_diff:>9.1e} {train:>9} "
        f"{'ok' if r.roundtrip_exact else 'NO':<3} {'PASS' if r.passed else 'FAIL'}"
    )


def load_mnist(data_dir: str | None) -> tuple[tuple[np.ndarray, np.ndarray] | None, str]:
    """MNIST's test set and a line saying where it came from, or None and why."""
    folder = find_dataset("mnist", data_dir)
    if folder is None:
        if data_dir is not None:
            raise DataError(f"{data_dir}: no MNIST test files (t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) here or in {Path(data_dir) / 'mnist'}")
        looked = ", ".join(str(d) for d in dataset_dirs("mnist")) or "nowhere: $LENET_DATA is not set"
        return None, f"MNIST: not found (looked in {looked}); random images only. Pass --data-dir or set LENET_DATA to a folder holding mnist/."
    return load_split(folder, "test"), f"MNIST: test images from {folder}"


def finish(results: list, json_path: str | None) -> int:
    """The summary line, the JSON file if asked for, and the exit status of every mode."""
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    if json_path:
        text = json.dumps([asdict(r) for r in results], indent=2) + "\n"
        try:
            atomic_write(json_path, lambda tmp: Path(tmp).write_text(text))
        except OSError as e:  # a full disk: atomic_write's one line, the file as it was
            print(f"parity.check: error: {e}", file=sys.stderr)
            return 2
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parity.check", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="all", choices=["all", *VARIANTS], help="variant to check (default: all)")
    parser.add_argument("--dtype", default="both", choices=["both", *DTYPES], help="dtype to check (default: both)")
    parser.add_argument("--direction", default="both", choices=["both", *DIRECTIONS], help="direction of the weight transfer (default: both)")
    parser.add_argument("--batch", type=int, default=64, help="images per batch (default: 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights and the random images (default: 0)")
    parser.add_argument("--weights", default=None, help="check this checkpoint (.pt, .pdparams or .safetensors) instead of a fresh init")
    parser.add_argument("--data-dir", default=None, help="folder holding MNIST (or mnist/); default: $LENET_DATA/mnist")
    parser.add_argument("--train", type=int, default=None, metavar="STEPS", help="instead: train both frameworks STEPS steps side by side and compare every weight after each step")
    parser.add_argument("--augment", action="store_true", help="with --train: apply the random distortions too")
    parser.add_argument("--world-size", type=int, default=1, metavar="N", help="with --train: train data-parallel in N processes of each framework (their own launch APIs, gloo on loopback) and compare with one process and across the frameworks")
    parser.add_argument("--onnx", action="store_true", help="instead: export each variant from both frameworks and compare torch, paddle and both ONNX files in onnxruntime (4x4 matrix)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"], help="where the models run; gpu: torch and paddle on the GPU, compared with each other and with both on the CPU (default: cpu)")
    parser.add_argument("--env", action="store_true", help="instead: what this machine has for the project (Python, the frameworks and the GPUs they see, onnxruntime's providers, the data sets), one line with the fix for each problem; exit 1 if there is one")
    parser.add_argument("--json", default=None, nargs="?", const="-", metavar="PATH", help="also write the results as JSON to PATH; with --env and no PATH: print JSON instead of the report")
    args = parser.parse_args(argv)
    if args.env:
        from .env import env_main

        try:
            if args.json not in (None, "-"):
                check_output(args.json, "--json")
        except UsageError as e:
            print(f"parity.check: error: {e}", file=sys.stderr)
            return 2
        return env_main(None if args.json == "-" else args.json, as_json=args.json == "-")
    if args.json == "-":
        parser.error("--json needs a PATH (only --env prints JSON without one)")
    if args.batch < 1:
        parser.error("--batch must be at least 1")
    if args.device == "gpu" and (args.train is not None or args.onnx):
        parser.error("--device gpu compares the forward and backward passes (the default mode); --train and --onnx run on the CPU")

    try:
        if args.json is not None:
            check_output(args.json, "--json", inputs=[args.weights, args.data_dir, find_dataset("mnist", args.data_dir)])
        weights = None
        names = list(VARIANTS) if args.variant == "all" else [args.variant]
        if args.weights is not None:
            ckpt = load_checkpoint(args.weights, None if args.variant == "all" else args.variant)
            names = [ckpt.variant]
            weights = convert(ckpt.state, ckpt.variant, ckpt.framework, "spec")
        mnist, note = load_mnist(args.data_dir)
    except (CheckpointError, MappingError, DataError, FrameworkMissing, UsageError) as e:
        print(f"parity.check: error: {e}", file=sys.stderr)
        return 2

    dtypes = DTYPES if args.dtype == "both" else (args.dtype,)
    directions = DIRECTIONS if args.direction == "both" else (args.direction,)
    if args.train is not None:
        return train_main(args, names, dtypes)
    if args.onnx:
        return onnx_main(args, names, weights, mnist, note)
    if args.device == "gpu":
        return gpu_main(args, names, dtypes, weights, mnist, note)
    print(note)
    if weights is not None:
        print(f"weights: {args.weights} ({names[0]})")
    images = f"{args.batch} random images" + (f" + {min(args.batch, len(mnist[1]))} MNIST test images (1x28x28 variants)" if mnist is not None else "")
    print(f"each case: {images}, same weights, both frameworks\n{LEGEND}")
    print(HEADER)
    results = []
    for name in names:
        variant = get_variant(name)
        batches = make_batches(variant, args.batch, args.seed, mnist)
        for direction in directions:
            for dtype in dtypes:
                try:
                    r = run_case(variant, direction, dtype, batches, args.seed, weights)
                except FrameworkMissing as e:
                    print(f"parity.check: error: {e}", file=sys.stderr)
                    return 2
                results.append(r)
                print(format_row(r), flush=True)
                for problem in r.problems:
                    print(f"    {problem}")
    return finish(results, args.json)


def gpu_main(args: argparse.Namespace, names: list[str], dtypes: tuple[str, ...], weights: dict[str, np.ndarray] | None, mnist, note: str) -> int:
    from . import gpu

    try:
        problem = next(filter(None, (gpu_problem(framework) for framework in FRAMEWORKS)), None)
    except FrameworkMissing as e:
        problem = str(e)
    if problem:
        print(f"parity.check: error: {problem}", file=sys.stderr)
        return 2
    print(note)
    for line in gpu.prepare_gpu():
        print(f"GPU: {line}")
    if weights is not None:
        print(f"weights: {args.weights} ({names[0]})")
    images = f"{args.batch} random images" + (f" + {min(args.batch, len(mnist[1]))} MNIST test images (1x28x28 variants)" if mnist is not None else "")
    print(f"each case: {images}, same weights, TF32 off, deterministic cuDNN\n{gpu.LEGEND}")
    print(gpu.HEADER)
    results = []
    for name in names:
        variant = get_variant(name)
        batches = make_batches(variant, args.batch, args.seed, mnist)
        for dtype in dtypes:
            for r in gpu.run_device_case(variant, dtype, batches, args.seed, weights):
                results.append(r)
                print(gpu.format_row(r), flush=True)
                for problem in r.problems:
                    print(f"    {problem}")
    if any(r.layer_tol is None or r.grad_tol is None for r in results):
        print("GPU tolerance not measured yet (parity/gpu.py GPU_LAYER_TOL, GPU_GRAD_TOL): the differences above are reported, not judged")
    return finish(results, args.json)


def train_main(args: argparse.Namespace, names: list[str], dtypes: tuple[str, ...]) -> int:
    if args.train < 1:
        print("parity.check: error: --train needs at least 1 step", file=sys.stderr)
        return 2
    if args.weights is not None:
        print("parity.check: error: --train starts from the spec's init; drop --weights", file=sys.stderr)
        return 2
    folder = find_dataset("mnist", args.data_dir, split="train")
    try:
        mnist_train = load_split(folder, "train") if folder is not None else None
    except DataError as e:
        print(f"parity.check: error: {e}", file=sys.stderr)
        return 2
    print(f"MNIST: training images from {folder}" if folder else "MNIST: training set not found; random images")
    if args.world_size != 1:
        return distributed_main(args, names, dtypes, mnist_train)
    print(TRAIN_HEADER)
    results = []
    for name in names:
        for dtype in dtypes:
            try:
                r = run_training_case(get_variant(name), dtype, args.train, args.seed, mnist_train, args.augment)
            except FrameworkMissing as e:
                print(f"parity.check: error: {e}", file=sys.stderr)
                return 2
            results.append(r)
            print(format_train_row(r), flush=True)
    return finish(results, args.json)


def distributed_main(args: argparse.Namespace, names: list[str], dtypes: tuple[str, ...], mnist_train) -> int:
    from . import distributed

    if args.world_size < 2:
        print(f"parity.check: error: --world-size must be at least 2 (1 is the plain training check), got {args.world_size}", file=sys.stderr)
        return 2
    variants = [get_variant(n) for n in names]
    skipped = [v.name for v in variants if v.has_batchnorm]
    if skipped and len(names) == 1:
        print(f"parity.check: error: {names[0]} has BatchNorm, which the trainers do not train data-parallel (its statistics would be each process's shard's); choose another --variant", file=sys.stderr)
        return 2
    if skipped:
        print(f"skipped (BatchNorm, trained in one process only): {', '.join(skipped)}")
    print(f"each case: {args.world_size} processes of each framework (torch.multiprocessing, paddle.distributed.spawn; gloo on loopback), "
          f"each training its shard of every global batch, against one process and across the frameworks")  # fmt: skip
    print(distributed.HEADER)
    results = []
    for variant in variants:
        if variant.has_batchnorm:
            continue
        for dtype in dtypes:
            try:
                rows = distributed.run_distributed_case(variant, dtype, args.train, args.seed, args.world_size, mnist_train, args.augment)
            except (FrameworkMissing, RuntimeError) as e:
                print(f"parity.check: error: {e}", file=sys.stderr)
                return 2
            for r in rows:
                results.append(r)
                print(distributed.format_row(r), flush=True)
    return finish(results, args.json)


def onnx_main(args: argparse.Namespace, names: list[str], weights: dict[str, np.ndarray] | None, mnist, note: str) -> int:
    from export.exporter import ExportError

    from .onnx_check import format_onnx, run_onnx_case

    print(note)
    results = []
    for name in names:
        variant = get_variant(name)
        c, h, w = variant.input.shape
        images = np.random.default_rng(args.seed).random((args.batch, c, h, w), dtype=np.float32)
        what = f"{args.batch} random images"
        if mnist is not None and variant.input.shape == (1, 28, 28):
            images = np.concatenate([images, to_model_input(mnist[0][: args.batch])])
            what += f" + {min(args.batch, len(mnist[0]))} MNIST test images"
        try:
            r = run_onnx_case(variant, images, what, args.seed, weights)
        except (ExportError, FrameworkMissing) as e:
            print(f"parity.check: error: {e}", file=sys.stderr)
            return 2
        results.append(r)
        print(format_onnx(r), flush=True)
    return finish(results, args.json)


if __name__ == "__main__":
    run(main, "parity.check")
