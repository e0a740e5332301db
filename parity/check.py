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
(parity/gpu.py); --env says what this machine has for the project (lenet_spec/env.py).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from lenet_spec import VARIANTS, get_variant
from lenet_spec.checkpoint import CheckpointError
from lenet_spec.cli import VARIANT_HELP, ArgumentParser, UsageError, add_json_option, check_output, report_to_stderr, run, variant_or_all_arg
from lenet_spec.compare import TRAIN_TOL  # noqa: F401  (tests/test_train.py imports it from here)
from lenet_spec.data import DataError, find_dataset, load_split, to_model_input
from lenet_spec.frameworks import NAMES, FrameworkMissing, gpu_problem
from lenet_spec.load import load_checkpoint
from lenet_spec.mapping import MappingError, convert

from .cases import DIRECTIONS, DTYPES, load_mnist, make_batches, run_case
from .report import HEADER, LEGEND, TRAIN_HEADER, finish, format_row, format_train_row, print_row
from .trajectories import run_training_case


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m parity.check", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--variant",
        default="all",
        type=variant_or_all_arg,
        metavar="NAME|SPEC.toml|all",
        help=f"variant to check: {VARIANT_HELP}, or all built-in ones (default: all)",
    )
    parser.add_argument("--dtype", default="both", choices=["both", *DTYPES], help="dtype to check (default: both)")
    parser.add_argument("--direction", default="both", choices=["both", *DIRECTIONS], help="direction of the weight transfer (default: both)")
    parser.add_argument("--batch", type=int, default=64, help="images per batch (default: 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights and the random images (default: 0)")
    parser.add_argument("--weights", default=None, help="check this checkpoint (.pt, .pdparams or .safetensors) instead of a fresh init")
    parser.add_argument("--data-dir", default=None, help="folder holding MNIST (or mnist/); default: $LENET_DATA/mnist")
    parser.add_argument(
        "--train",
        type=int,
        default=None,
        metavar="STEPS",
        help="instead: train both frameworks STEPS steps side by side and compare every weight after each step",
    )
    parser.add_argument("--augment", action="store_true", help="with --train: apply the random distortions too")
    parser.add_argument(
        "--world-size",
        type=int,
        default=1,
        metavar="N",
        help="with --train: train data-parallel in N processes of each framework (their own "
        "launch APIs, gloo on loopback) and compare with one process and across the "
        "frameworks",
    )
    parser.add_argument(
        "--onnx",
        action="store_true",
        help="instead: export each variant from both frameworks and compare torch, paddle and both ONNX files in onnxruntime (4x4 matrix)",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        choices=["cpu", "gpu"],
        help="where the models run; gpu: torch and paddle on the GPU, compared with each other and with both on the CPU (default: cpu)",
    )
    parser.add_argument(
        "--env",
        action="store_true",
        help="instead: what this machine has for the project (Python, the frameworks and the GPUs they see, "
        "onnxruntime's providers, the data sets), one line with the fix for each problem; exit 1 if there "
        "is one",
    )
    add_json_option(parser)
    args = parser.parse_args(argv)
    if args.env:
        from lenet_spec.env import env_main

        try:
            if args.json not in (None, "-"):
                check_output(args.json, "--json")
        except UsageError as e:
            print(f"parity.check: error: {e}", file=sys.stderr)
            return 2
        return env_main(None if args.json == "-" else args.json, as_json=args.json == "-")
    with report_to_stderr(args.json) as stdout:  # --json alone: stdout carries the JSON, the table goes to stderr
        if stdout is not None:
            args.json = stdout
        return checks(parser, args)


def checks(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Every mode but --env; `args.json` is a PATH, a stream for the JSON, or None."""
    if args.batch < 1:
        parser.error("--batch must be at least 1")
    if args.device == "gpu" and (args.train is not None or args.onnx):
        parser.error("--device gpu compares the forward and backward passes (the default mode); --train and --onnx run on the CPU")

    try:
        if isinstance(args.json, str):
            check_output(args.json, "--json", inputs=[args.weights, args.data_dir, find_dataset("mnist", args.data_dir)])
        weights = None
        names = list(VARIANTS) if args.variant == "all" else [args.variant]  # built-in names, or a Variant: get_variant takes both
        if args.weights is not None:
            ckpt = load_checkpoint(args.weights, None if args.variant == "all" else args.variant)
            names = [ckpt.spec]  # the network the checkpoint carries: no spec file needed
            weights = convert(ckpt.state, ckpt.spec, ckpt.framework, "spec")
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
        print(f"weights: {args.weights} ({get_variant(names[0]).name})")
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
                print_row(format_row(r), r.problems)
    return finish(results, args.json)


def gpu_main(args: argparse.Namespace, names: list[str], dtypes: tuple[str, ...], weights: dict[str, np.ndarray] | None, mnist, note: str) -> int:
    from . import gpu
    from .report import GPU_HEADER, GPU_LEGEND, format_gpu_row

    try:
        problem = next(filter(None, (gpu_problem(framework) for framework in NAMES)), None)
    except FrameworkMissing as e:
        problem = str(e)
    if problem:
        print(f"parity.check: error: {problem}", file=sys.stderr)
        return 2
    print(note)
    for line in gpu.prepare_gpu():
        print(f"GPU: {line}")
    if weights is not None:
        print(f"weights: {args.weights} ({get_variant(names[0]).name})")
    images = f"{args.batch} random images" + (f" + {min(args.batch, len(mnist[1]))} MNIST test images (1x28x28 variants)" if mnist is not None else "")
    print(f"each case: {images}, same weights, TF32 off, deterministic cuDNN\n{GPU_LEGEND}")
    print(GPU_HEADER)
    results = []
    for name in names:
        variant = get_variant(name)
        batches = make_batches(variant, args.batch, args.seed, mnist)
        for dtype in dtypes:
            for r in gpu.run_device_case(variant, dtype, batches, args.seed, weights):
                results.append(r)
                print_row(format_gpu_row(r), r.problems)
    if any(r.layer_tol is None or r.grad_tol is None for r in results):
        print("GPU tolerance not measured yet (lenet_spec/compare.py GPU_LAYER_TOL, GPU_GRAD_TOL): the differences above are reported, not judged")
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
    from .report import DIST_HEADER, format_dist_row

    if args.world_size < 2:
        print(f"parity.check: error: --world-size must be at least 2 (1 is the plain training check), got {args.world_size}", file=sys.stderr)
        return 2
    variants = [get_variant(n) for n in names]
    skipped = [v.name for v in variants if v.has_batchnorm]
    if skipped and len(names) == 1:
        print(
            f"parity.check: error: {variants[0].name} has BatchNorm, which the trainers do not train data-parallel (its statistics would be each "
            f"process's shard's); choose another --variant",
            file=sys.stderr,
        )
        return 2
    if skipped:
        print(f"skipped (BatchNorm, trained in one process only): {', '.join(skipped)}")
    print(
        f"each case: {args.world_size} processes of each framework (torch.multiprocessing, paddle.distributed.spawn; gloo on loopback), "
        f"each training its shard of every global batch, against one process and across the frameworks"
    )
    print(DIST_HEADER)
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
                print(format_dist_row(r), flush=True)
    return finish(results, args.json)


def onnx_main(args: argparse.Namespace, names: list[str], weights: dict[str, np.ndarray] | None, mnist, note: str) -> int:
    from export.exporter import ExportError

    from .onnx_check import run_onnx_case
    from .report import format_onnx

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
