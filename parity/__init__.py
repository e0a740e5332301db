"""parity: weight transfer between the torch and paddle LeNets, and the checks that prove them equal.

A library with thin commands on top (`python -m parity.check`, `python -m parity.convert`):
  lenet_spec.compare     rel_diff, the Worst tracker, decision_flips and every tolerance;
  parity.cases           the forward and gradient cases (run_case, make_batches);
  parity.trajectories    training side by side, one step loop (trajectory, Drift, run_training_case);
  parity.gpu, parity.distributed, parity.onnx_check: the GPU, data-parallel and ONNX checks;
  parity.report          the tables, the summary line and the JSON.
Importing this package imports no framework; the checks import the ones they need through
lenet_spec.frameworks.
"""

from lenet_spec.compare import Worst, decision_flips, grad_rel_diffs, rel_diff
from lenet_spec.mapping import MappingError, convert, paddle_to_torch, table, torch_to_paddle

from .cases import Batch, CaseResult, make_batches, run_case
from .trajectories import Drift, TrainResult, run_training_case, trajectory

__all__ = [
    "Batch", "CaseResult", "Drift", "MappingError", "TrainResult", "Worst", "convert", "decision_flips", "grad_rel_diffs",
    "make_batches", "paddle_to_torch", "rel_diff", "run_case", "run_training_case", "table", "torch_to_paddle", "trajectory",
]  # fmt: skip
