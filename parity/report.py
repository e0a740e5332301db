"""Reporting for parity.check: a header, a legend and one row per result for each mode, the
summary line, and the results as JSON."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from lenet_spec import VARIANTS
from lenet_spec.checkpoint import atomic_write
from lenet_spec.compare import TRAIN_TOL
from lenet_spec.frameworks import NAMES

WIDTH = max(12, *(len(v) for v in VARIANTS))  # of the variant column

# --- forward and gradient cases (parity.cases) ---
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

HEADER = (
    f"{'variant':<{WIDTH}} {'direction':<13} {'dtype':<8} {'logit abs':>9} {'logit rel':>9} {'worst layer':<20} {'argmax':>9} {'grad rel':>9} "
    f"{'flips':>5} {'ref rel':>9} {'train rel':>9} {'rt':<3} result"
)


def format_row(r) -> str:
    """One parity.cases.CaseResult."""
    layer = f"{r.worst_layer} {r.worst_layer_rel_diff:.1e}"
    grad = f"{r.grad_max_rel_diff:.1e}" if r.worst_grad else "n/a"  # n/a: every batch had a flip
    train = f"{max(r.train_max_rel_diff, r.buffer_max_rel_diff, r.train_reference_max_rel_diff):.1e}" if r.train_worst_layer else "-"
    return (
        f"{r.variant:<{WIDTH}} {r.direction:<13} {r.dtype:<8} {r.max_abs_diff:>9.1e} {r.max_rel_diff:>9.1e} {layer:<20} "
        f"{f'{r.argmax_agree}/{r.argmax_total}':>9} {grad:>9} {r.decision_flips:>5} {r.reference_max_rel_diff:>9.1e} {train:>9} "
        f"{'ok' if r.roundtrip_exact else 'NO':<3} {'PASS' if r.passed else 'FAIL'}"
    )


# --- training trajectories (parity.trajectories) ---
TRAIN_HEADER = (
    f"{'variant':<{WIDTH}} {'dtype':<8} {'steps':>5} {'data':<7} {'final rel':>9} {'max rel':>9} {'worst param':<22} {'over at':>7} "
    f"{'loss diff':>9} {'eval rel':>9} result"
)


def format_train_row(r) -> str:
    """One parity.trajectories.TrainResult."""
    over = "-" if r.first_step_over is None else str(r.first_step_over)
    return (
        f"{r.variant:<{WIDTH}} {r.dtype:<8} {r.steps:>5} {r.data:<7} {r.final_max_rel_diff:>9.1e} {r.max_rel_diff:>9.1e} "
        f"{r.worst_param:<22} {over:>7} {r.loss_diff:>9.1e} {r.eval_rel_diff:>9.1e} {('PASS' if r.dtype in TRAIN_TOL else 'report') if r.passed else 'FAIL'}"
    )


# --- data-parallel training (parity.distributed) ---
DIST_HEADER = (
    f"{'variant':<12} {'dtype':<8} {'steps':>5} {'compared':<22} {'bound':>7} {'final rel':>9} {'max rel':>9} {'worst param':<14} {'over at':>7} "
    f"{'ranks':<9} result"
)


def format_dist_row(r) -> str:
    """One parity.distributed.DistResult."""
    over = "-" if r.first_step_over is None else str(r.first_step_over)
    ranks = "same" if r.ranks_identical else "DIFFER"
    return (
        f"{r.variant:<12} {r.dtype:<8} {r.steps:>5} {r.pair:<22} {r.tol:>7.0e} {r.final_max_rel_diff:>9.1e} {r.max_rel_diff:>9.1e} {r.worst_param:<14} "
        f"{over:>7} {ranks:<9} "
        f"{'PASS' if r.passed else 'FAIL'}"
    )


# --- the GPU (parity.gpu) ---
GPU_LEGEND = """\
  worst layer  the layer whose outputs differ most (relative), and by how much
  logit rel    max |a - b| over the logits, over max |a|
  argmax       images whose predicted class agrees, of all images of the case (counted, not judged)
  grad rel     worst parameter gradient difference (relative), on batches without flips
  flips        ReLU / max-pool decisions made differently (float32 near-ties)
  result       report: the GPU tolerance is not measured yet (lenet_spec/compare.py), the figures are
               shown, not judged; FAIL: a value that is not finite, or a float64 flip"""

GPU_HEADER = f"{'variant':<{WIDTH}} {'dtype':<8} {'pair':<24} {'worst layer':<20} {'logit rel':>9} {'argmax':>9} {'grad rel':>9} {'flips':>5} result"


def format_gpu_row(r) -> str:
    """One parity.gpu.DeviceResult."""
    grad = f"{r.grad_rel_diff:.1e}" if r.worst_grad else "n/a"  # n/a: every batch had a flip
    verdict = "FAIL" if not r.passed else ("PASS" if r.layer_tol is not None and r.grad_tol is not None else "report")
    return (
        f"{r.variant:<{WIDTH}} {r.dtype:<8} {r.pair:<24} {f'{r.worst_layer} {r.layer_rel_diff:.1e}':<20} {r.logit_rel_diff:>9.1e} "
        f"{f'{r.argmax_agree}/{r.argmax_total}':>9} {grad:>9} {r.decision_flips:>5} {verdict}"
    )


# --- ONNX (parity.onnx_check) ---
def format_onnx(r) -> str:
    """One parity.onnx_check.OnnxResult: its line, then the matrix of every pair."""
    width = 12
    lines = [f"{r.variant}: {r.images}; max |logit diff| (logits up to {r.logit_scale:.3g}; tolerance {r.tolerance:.1e}); "
             f"ONNX nodes: {', '.join(f'{fw} {r.nodes[fw]}' for fw in NAMES)}  {'ok' if r.passed else 'FAILED'}"]  # fmt: skip
    lines.append(" " * width + "".join(f"{n:>{width}}" for n in r.names))
    for name, row in zip(r.names, r.matrix):
        lines.append(f"{name:>{width}}" + "".join(f"{v:>{width}.2e}" for v in row))
    return "\n".join(lines)


def print_row(row: str, problems: list[str] = ()) -> None:
    """A result's row, then each of its problems indented beneath it."""
    print(row, flush=True)
    for problem in problems:
        print(f"    {problem}")


def finish(results: list, json_path) -> int:
    """The summary line, the JSON file if asked for, and the exit status of every mode."""
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    text = json.dumps([asdict(r) for r in results], indent=2) + "\n"
    if hasattr(json_path, "write"):  # --json alone: the real stdout (lenet_spec.cli.report_to_stderr)
        json_path.write(text)
    elif json_path:
        try:
            atomic_write(json_path, lambda tmp: Path(tmp).write_text(text))
        except OSError as e:  # a full disk: atomic_write's one line, the file as it was
            print(f"parity.check: error: {e}", file=sys.stderr)
            return 2
    return 1 if failed else 0
