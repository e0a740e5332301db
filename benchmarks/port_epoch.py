"""One epoch of MNIST training of a hand-ported torch / paddle pair, both from the same weights: the
report of a ported model beside parity.diff's proof (that proof is step for step on a few batches;
this is a whole epoch, each framework on its own).

    python -m benchmarks.port_epoch TORCH PADDLE [--limit N] [--loss cross_entropy|nll] [--json [PATH]]

TORCH and PADDLE are FILE.py:NAME or module.path:NAME, loaded as parity.diff loads them
(parity.diff.load_factory), each framework's generator seeded with --seed first. The torch model's
initial weights are copied into the paddle model (parity.diff.copy_weights: parity.diff's pairing
and copy), then each trains one epoch with lenet_torch/epoch.py and lenet_paddle/epoch.py (mirrored:
the same batch order, optimizer rule and loss formula) and is scored on MNIST's 10,000 test images.

The data: MNIST's train split (the first --limit images when given), pixels in [0, 1] normalised as
pytorch/examples does, (x - 0.1307) / 0.3081 (--no-normalise: left in [0, 1]). The defaults are
pytorch/examples' MNIST run: batch 64, Adadelta lr 1.0 (rho 0.9, epsilon 1e-6 on both sides), its
first epoch (StepLR's gamma takes effect after it). --loss nll for a model returning
log-probabilities (pytorch/examples' Net), cross_entropy (the default) for logits. Dropout draws from
each framework's own generator, so the two runs agree in accuracy, not step by step. A model without
dropout takes the same steps up to float32 rounding, which grows over an epoch: tests/ports/right_relu_*.py,
the full epoch, measured 2026-12-02: test accuracy 0.9850 (torch) and 0.9868 (paddle), final loss 0.0067 and
0.0070, 15.6 s and 24.4 s on one thread each (torch on its default two threads on this shared 2-core
machine: 0.9858 in 169.6 s).

Prints: framework, test accuracy, final loss (the last step's), the mean loss of the last 10% of
steps, seconds of training (each framework on --threads CPU threads, default 1; the seconds include
its first step's set-up). This module imports neither framework (the import contracts).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from lenet_spec.cli import JSON_STDOUT, ArgumentParser, UsageError, add_json_option, check_output, report_to_stderr, run
from lenet_spec.data import DataError, find_dataset, load_split, to_model_input
from lenet_spec.frameworks import NAMES, FrameworkMissing, module
from parity.diff import DiffError, copy_weights, load_factory

MEAN, STD = 0.1307, 0.3081  # pytorch/examples' MNIST normalisation


def normalise(x: np.ndarray) -> np.ndarray:
    """Pixels in [0, 1] as pytorch/examples feeds them: (x - 0.1307) / 0.3081, float32."""
    return ((x - np.float32(MEAN)) / np.float32(STD)).astype(np.float32)


def load_mnist(data_dir: str | None, limit: int | None, normalised: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, test images, test labels): float32 (N, 1, 28, 28) and int64."""
    out = []
    for split in ("train", "test"):
        folder = find_dataset("mnist", data_dir, split)
        if folder is None:
            raise UsageError(f"MNIST's {split} split not found (looked in --data-dir or $LENET_DATA/mnist); give --data-dir FOLDER")
        images, labels = load_split(folder, split, "mnist")  # DataError: a file there is not MNIST's
        if split == "train" and limit is not None:
            images, labels = images[:limit], labels[:limit]
        x = to_model_input(images, np.float32)
        out += [normalise(x) if normalised else x, labels.astype(np.int64)]
    return tuple(out)


def measure(torch_spec: str, paddle_spec: str, data, *, batch=64, lr=1.0, optimizer="adadelta", loss="cross_entropy", seed=0, threads=1) -> dict:
    """Both models built, the torch weights copied into the paddle one, each trained one epoch and
    scored: {"copied": tensors copied, "rows": [one dict per framework]}."""
    x_train, y_train, x_test, y_test = data
    models = {}
    for side, spec in zip(NAMES, (torch_spec, paddle_spec)):
        module(side, "diff").seed(seed)
        models[side] = load_factory(spec, side)
    copied = copy_weights(models["torch"], models["paddle"], x_train[:2])
    rows = []
    for side in NAMES:
        epoch = module(side, "epoch")
        epoch.set_threads(threads)
        start = time.perf_counter()
        losses = epoch.train_epoch(models[side], x_train, y_train, batch=batch, lr=lr, optimizer=optimizer, loss=loss, seed=seed)
        seconds = time.perf_counter() - start
        tail = losses[-max(1, len(losses) // 10) :]
        rows.append(
            {
                "framework": side,
                "model": torch_spec if side == "torch" else paddle_spec,
                "test_accuracy": epoch.accuracy(models[side], x_test, y_test),
                "final_loss": losses[-1],
                "tail_loss": float(np.mean(tail)),
                "steps": len(losses),
                "seconds": round(seconds, 2),
                "losses": losses,
            }
        )
    return {"copied": copied, "rows": rows}


def format_table(result: dict) -> str:
    lines = [f"{'framework':<10} {'test accuracy':>13} {'final loss':>10} {'last 10%':>9} {'steps':>6} {'seconds':>8}"]
    for r in result["rows"]:
        lines.append(f"{r['framework']:<10} {r['test_accuracy']:>13.4f} {r['final_loss']:>10.4f} {r['tail_loss']:>9.4f} {r['steps']:>6} {r['seconds']:>8.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = ArgumentParser(prog="python -m benchmarks.port_epoch", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("torch", metavar="TORCH", help="the torch model: FILE.py:NAME or module.path:NAME")
    ap.add_argument("paddle", metavar="PADDLE", help="the paddle model: FILE.py:NAME or module.path:NAME")
    ap.add_argument("--limit", type=int, default=None, metavar="N", help="train on the first N training images (default: all 60,000)")
    ap.add_argument("--batch", type=int, default=64, help="batch size (default: 64)")
    ap.add_argument("--lr", type=float, default=1.0, help="learning rate (default: 1.0, pytorch/examples' Adadelta)")
    ap.add_argument("--optimizer", default="adadelta", choices=("adadelta", "sgd", "momentum", "adam"), help="(default: adadelta)")
    ap.add_argument("--loss", default="cross_entropy", choices=("cross_entropy", "nll"), help="cross_entropy of logits, nll of log-probabilities")
    ap.add_argument("--seed", type=int, default=0, help="the models' initialisation, the batch order and the dropout generators (default: 0)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads of each framework, the same on both sides (default: 1)")
    ap.add_argument("--no-normalise", dest="normalise", action="store_false", help="feed pixels in [0, 1], not (x - 0.1307) / 0.3081")
    ap.add_argument("--data-dir", default=None, metavar="FOLDER", help="the folder holding MNIST (default: $LENET_DATA/mnist, then the usual places)")
    add_json_option(ap, "the table's rows and every step's loss")
    args = ap.parse_args(argv)
    try:
        if args.limit is not None and args.limit < 1:
            raise UsageError(f"--limit {args.limit}: give a positive number of images")
        if args.threads < 1:
            raise UsageError(f"--threads {args.threads}: give a positive number of threads")
        if args.batch < 1:
            raise UsageError(f"--batch {args.batch}: give a positive batch size")
        if args.json and args.json != JSON_STDOUT:
            check_output(args.json, "--json", inputs=[args.data_dir] if args.data_dir else [])
        with report_to_stderr(args.json) as stdout:
            data = load_mnist(args.data_dir, args.limit, args.normalise)
            settings = dict(batch=args.batch, lr=args.lr, optimizer=args.optimizer, loss=args.loss, seed=args.seed, threads=args.threads)
            result = measure(args.torch, args.paddle, data, **settings)
            print(f"{len(data[0])} training images, batch {args.batch}, {args.optimizer} lr {args.lr}, {args.loss}")
            print(f"{result['copied']} tensors copied torch -> paddle: both start from the same weights")
            print(format_table(result))
        if args.json:
            settings = {k: getattr(args, k) for k in (*NAMES, "limit", "batch", "lr", "optimizer", "loss", "seed", "threads", "normalise")}
            text = json.dumps({"settings": settings, **result}, indent=1) + "\n"
            (stdout.write(text) if stdout is not None else Path(args.json).write_text(text))
    except (DiffError, UsageError, DataError, FrameworkMissing, OSError) as e:
        print(f"benchmarks.port_epoch: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    run(main, "benchmarks.port_epoch")
