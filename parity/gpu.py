"""parity.check --device gpu: the same weights and images through torch and paddle on the GPU,
compared with each other and with each framework on the CPU.

cuDNN's convolutions are not the CPU's: cuDNN picks one of several algorithms (implicit GEMM,
FFT, Winograd) per shape and GPU and sums in its own order, so its results differ from the
CPU's in the last bits, and by far more where TF32 is on (float32 products on Ampere and later
GPUs rounded to a 10-bit mantissa). The check turns TF32 off in both frameworks and asks cuDNN
for deterministic algorithms, so that it compares float32 with float32 and repeats.

Pairs, each every layer's output (evaluation mode), the logits and every parameter's gradient:
  torch GPU / paddle GPU    the port, on the GPU
  torch GPU / torch CPU     what the GPU changes in torch
  paddle GPU / paddle CPU   what the GPU changes in paddle
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from lenet_spec import Variant, init_params
from lenet_spec.compare import GPU_GRAD_TOL, GPU_LAYER_TOL, Worst, decision_flips, grad_rel_diffs, rel_diff
from lenet_spec.frameworks import NAMES, bridge, package
from lenet_spec.mapping import convert
from lenet_spec.schedule import dropout_masks

from .cases import Batch

# The tolerances of every pair below, GPU_LAYER_TOL and GPU_GRAD_TOL, are in lenet_spec.compare:
# not measured yet, so the differences are reported, not judged (see there).

SIDES = tuple((framework, where) for where in ("gpu", "cpu") for framework in NAMES)  # torch gpu, paddle gpu, torch cpu, paddle cpu
PAIRS = ((0, 1), (0, 2), (1, 3))  # indices into SIDES


@dataclass
class DeviceResult:
    variant: str
    dtype: str
    pair: str  # "torch gpu / paddle gpu"
    batches: list[str]
    worst_layer: str = ""
    layer_rel_diff: float = 0.0  # the worst layer's outputs, logits included
    logit_rel_diff: float = 0.0
    argmax_agree: int = 0  # counted, not judged (see GPU_LAYER_TOL)
    argmax_total: int = 0
    decision_flips: int = 0  # ReLU / max-pool choices made differently
    worst_grad: str = ""
    grad_rel_diff: float = 0.0  # over batches without flips
    finite: bool = True
    layer_tol: float | None = None  # None: not measured yet, the figures are reported only
    grad_tol: float | None = None
    passed: bool = False
    problems: list[str] = field(default_factory=list)


def prepare_gpu() -> list[str]:
    """Both frameworks' CUDA arithmetic made fit for comparison (bridge.exact_gpu); returns how
    each runs, in words. NVIDIA's libraries read NVIDIA_TF32_OVERRIDE when they start, so it is
    set before any CUDA work of this process."""
    os.environ["NVIDIA_TF32_OVERRIDE"] = "0"
    return [bridge(framework).exact_gpu() for framework in NAMES]


def side_outputs(
    framework: str, device: str, variant: Variant, dtype: str, params: dict[str, np.ndarray], batches: list[Batch], seed: int
) -> list[tuple[dict, dict]]:
    """(every layer's output in evaluation mode, every gradient in the spec's layout) per batch,
    from `framework`'s model holding `params` (spec layout) on `device`. The evaluation passes
    come first, so that BatchNorm's running statistics are `params`' in all of them."""
    io = bridge(framework)
    model = io.to_device(package(framework).build(variant, seed=seed, dtype=dtype), device)
    io.load_state_numpy(model, convert(params, variant, "spec", framework))
    layers = [io.forward_numpy(model, b.images.astype(dtype)) for b in batches]
    grads = []
    for i, b in enumerate(batches):
        _, g = io.grads_numpy(model, b.images.astype(dtype), b.labels, dropout_masks(variant, seed, 0, i, len(b.labels)))
        grads.append(convert(g, variant, framework, "spec", params_only=True))
    return list(zip(layers, grads))


def compare_sides(variant: Variant, dtype: str, pair: str, runs_a: list, runs_b: list, batches: list[Batch]) -> DeviceResult:
    """One pair of sides over every batch, judged by what needs no tolerance, and by the
    tolerances once they are measured."""
    res = DeviceResult(variant.name, dtype, pair, [b.name for b in batches], layer_tol=GPU_LAYER_TOL[dtype], grad_tol=GPU_GRAD_TOL[dtype])
    layers, grads = Worst(), Worst()
    for (out_a, grads_a), (out_b, grads_b) in zip(runs_a, runs_b):
        res.finite &= all(np.isfinite(v).all() for side in (out_a, out_b, grads_a, grads_b) for v in side.values())
        for name in out_a:
            layers.add(name, out_a[name], out_b[name])
        logits_a, logits_b = out_a[name], out_b[name]
        res.logit_rel_diff = max(res.logit_rel_diff, rel_diff(logits_a, logits_b)[1])
        res.argmax_agree += int((logits_a.argmax(1) == logits_b.argmax(1)).sum())
        res.argmax_total += len(logits_a)
        flips = decision_flips(variant, out_a, out_b)
        res.decision_flips += flips
        for pname, rel in grad_rel_diffs(variant, grads_a, grads_b).items():
            if not flips:
                grads.note(pname, rel)
    res.worst_layer, res.layer_rel_diff, res.worst_grad, res.grad_rel_diff = layers.name, layers.rel, grads.name, grads.rel
    if not res.finite:
        res.problems.append("outputs or gradients that are not finite")
    if res.decision_flips and dtype == "float64":
        res.problems.append(f"{res.decision_flips} ReLU/max-pool decisions differ, in float64")
    if res.layer_tol is not None and res.layer_rel_diff > res.layer_tol:
        res.problems.append(f"layer {res.worst_layer} differs by {res.layer_rel_diff:.2e} > {res.layer_tol:.0e}")
    if res.grad_tol is not None and res.grad_rel_diff > res.grad_tol:
        res.problems.append(f"gradient of {res.worst_grad} differs by {res.grad_rel_diff:.2e} > {res.grad_tol:.0e}")
    res.passed = not res.problems
    return res


def run_device_case(
    variant: Variant, dtype: str, batches: list[Batch], seed: int, weights: dict[str, np.ndarray] | None = None, device: str = "gpu"
) -> list[DeviceResult]:
    """Every pair of PAIRS for one variant and dtype, all sides holding the same weights
    (`weights` in the spec's layout, else the spec's init with `seed`).

    Args:
        device: where the "gpu" sides run; "cpu" runs this very code on a machine without one.
    """
    params = weights if weights is not None else init_params(variant, seed)
    runs = [side_outputs(framework, device if where == "gpu" else "cpu", variant, dtype, params, batches, seed) for framework, where in SIDES]
    name = lambda i: f"{SIDES[i][0]} {SIDES[i][1]}"  # noqa: E731
    return [compare_sides(variant, dtype, f"{name(a)} / {name(b)}", runs[a], runs[b], batches) for a, b in PAIRS]
