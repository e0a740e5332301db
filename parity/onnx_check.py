"""python -m parity.check --onnx: one set of weights, four computations (torch, paddle, torch's
ONNX file, paddle's ONNX file in onnxruntime), every pair compared on the same images."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lenet_spec import Variant, init_params

from lenet_spec.compare import logit_tolerance, max_abs_diff
from lenet_spec.frameworks import NAMES

COMPUTATIONS = (*NAMES, *(f"{fw}.onnx" for fw in NAMES))  # torch, paddle, torch.onnx, paddle.onnx


@dataclass
class OnnxResult:
    variant: str
    images: str
    names: tuple[str, ...]
    matrix: list[list[float]]  # max |logit difference| between computations i and j
    logit_scale: float
    tolerance: float
    nodes: dict[str, int]  # node count of each framework's file
    passed: bool


def run_onnx_case(variant: Variant, images: np.ndarray, what: str, seed: int, weights: dict[str, np.ndarray] | None = None) -> OnnxResult:
    """Export the weights from both frameworks and compare all four computations on `images`."""
    from export.exporter import Source, export
    from export.runtime import run, session
    from export.verify import framework_logits

    params = weights if weights is not None else init_params(variant, seed)
    logits = {framework: framework_logits(framework, variant.name, params, images) for framework in NAMES}
    nodes = {}
    with tempfile.TemporaryDirectory(prefix="lenet-onnx-check-") as d:
        for framework in NAMES:
            source = Source(
                variant.name, params, framework, f"seed {seed}" if weights is None else "parity.check --weights", seed=seed if weights is None else None
            )
            report = export(source, Path(d) / f"{framework}.onnx")
            nodes[framework] = report.nodes["total"]
            logits[f"{framework}.onnx"] = run(session(report.path, "cpu"), images)
    values = [logits[name].astype(np.float64) for name in COMPUTATIONS]
    matrix = [[max_abs_diff(a, b) for b in values] for a in values]
    tol = logit_tolerance(logits[NAMES[0]])
    worst = max(max(row) for row in matrix)
    return OnnxResult(variant.name, what, COMPUTATIONS, matrix, float(np.abs(logits[NAMES[0]]).max()), tol, nodes, worst <= tol)
