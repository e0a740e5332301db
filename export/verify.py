"""python -m export.verify model.onnx [--ckpt CKPT]: run the file with onnxruntime and compare
it with the framework model, on random images and on the data set's test images when found.

The reference weights are --ckpt, else what the file's metadata names: the seed of a freshly
exported model, or the checkpoint it was exported from (found at its path, same SHA-256).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from lenet_spec.cli import ArgumentParser, HelpFormatter, variant_arg
from lenet_spec.compare import compare_logits as compare
from lenet_spec.frameworks import NAMES

RANDOM_IMAGES = 512


def reference_params(info, ckpt: str | None) -> tuple[dict[str, np.ndarray], str]:
    """The weights the file should hold, in the spec's layout, and where they came from."""
    params, origin, _ = reference(info, ckpt)
    return params, origin


def reference(info, ckpt: str | None, variant=None) -> tuple[dict[str, np.ndarray], str, object]:
    """reference_params, and the network (a lenet_spec.Variant) they are of: a checkpoint's own
    spec, `variant` (a fresh export of a network of one's own, whose name is no built-in's), or
    the built-in variant the metadata names."""
    import lenet_spec

    from .exporter import from_checkpoint

    if ckpt is not None:
        source = from_checkpoint(ckpt)
        if source.variant != info.variant:
            raise ValueError(f"{ckpt} holds {source.variant}, but the ONNX file is {info.variant}")
        return source.params, f"checkpoint {ckpt}", source.network
    if info.seed is not None:
        if variant is not None and variant.name == info.variant:
            return lenet_spec.init_params(variant, info.seed), info.source, variant
        if info.variant not in lenet_spec.VARIANTS:
            raise ValueError(f"the file's metadata names the variant {info.variant!r:.40}, which this project does not have; pass --variant SPEC.toml")
        network = lenet_spec.get_variant(info.variant)
        return lenet_spec.init_params(network, info.seed), info.source, network
    # The metadata is the file's own word: a path it names is loaded only when its bytes have
    # the SHA-256 the export recorded, so a file cannot point verify at another checkpoint.
    path = Path(info.source.removeprefix("checkpoint "))
    if not info.checkpoint_sha256:
        raise ValueError(f"the file names its checkpoint {path} without a SHA-256 to check it by, so it is not loaded; pass --ckpt CKPT")
    if not path.is_file():
        raise ValueError(f"the file was exported from {path}, which is not there; pass --ckpt CKPT")
    source = from_checkpoint(path, expected_sha256=info.checkpoint_sha256)
    if source.variant != info.variant:
        raise ValueError(f"{path} holds {source.variant}, but the ONNX file is {info.variant}")
    return source.params, info.source, source.network


def framework_logits(framework: str, variant: str, params: dict[str, np.ndarray], images: np.ndarray, batch: int = 2048) -> np.ndarray:
    """The training-form model of `framework` (not the inference form the exporter saw)."""
    from lenet_spec.frameworks import bridge, package
    from lenet_spec.mapping import convert

    model = package(framework).build(variant)
    bridge(framework).load_state_numpy(model, convert(params, variant, "spec", framework))
    forward = bridge(framework).forward_numpy
    return np.concatenate([list(forward(model, images[i : i + batch]).values())[-1] for i in range(0, len(images), batch)])


def test_images(dataset: str, data_dir: str | None, limit: int | None) -> np.ndarray | None:
    """The data set's test images as model input, or None when they are not found in the usual
    places (verification never downloads).

    Raises:
        DataError: `data_dir` was given and holds no test set of `dataset`: a folder asked for
            and not found is an error, never random images only.
    """
    from lenet_spec.data import CIFAR_SPLITS, DATASETS, SPLITS, DataError, find_dataset, load_split, to_model_input

    if dataset not in DATASETS:
        return None
    folder = find_dataset(dataset, data_dir, "test")
    if folder is None and data_dir is not None:
        files = ", ".join(CIFAR_SPLITS["test"] if dataset == "cifar10" else (f"{name}[.gz]" for name in SPLITS["test"]))
        raise DataError(f"--data-dir {data_dir}: no {dataset} test files ({files}) here or in {Path(data_dir) / dataset}; "
                        "give the folder that holds them, or leave --data-dir out to compare on random images only")  # fmt: skip
    if folder is None:
        return None
    images = load_split(folder, "test", dataset)[0]
    return to_model_input(images[:limit])


def verify(
    path: str,
    ckpt: str | None = None,
    framework: str | None = None,
    device: str = "auto",
    data_dir: str | None = None,
    limit: int | None = None,
    variant=None,
) -> dict:
    """Every comparison for one file, as a dict (see main's --json). `variant`: the network (a
    lenet_spec.Variant) of a fresh export whose name is no built-in variant's."""
    from .runtime import info_of, provider_of, run, session

    sess = session(path, device)
    info = info_of(sess, path)
    framework = framework or info.framework
    params, origin, network = reference(info, ckpt, variant)
    sets = [("random", np.random.default_rng(0).random((RANDOM_IMAGES, info.channels, info.height, info.width), dtype=np.float32))]
    found = test_images(info.dataset, data_dir, limit)
    if found is not None and found.shape[1:] == (info.channels, info.height, info.width):
        sets.append((f"{info.dataset} test", found))
    results = [compare(framework_logits(framework, network, params, x), run(sess, x), name) for name, x in sets]
    return {
        "file": str(path), "variant": info.variant, "exported_by": f"{info.framework} {info.framework_version}", "reference": f"{framework} model, {origin}",
        "provider": provider_of(sess), "comparisons": [asdict(r) for r in results], "passed": all(r.passed for r in results),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(
        prog="python -m export.verify", description="Compare an exported ONNX file with the framework model, in onnxruntime.", formatter_class=HelpFormatter
    )
    p.add_argument("model", help="an ONNX file written by `python -m export`")
    p.add_argument("--ckpt", default=None, help="checkpoint to compare with (default: the seed or checkpoint named in the file's metadata)")
    p.add_argument("--framework", default=None, choices=NAMES, help="framework of the reference model (default: the one that exported the file)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"], help="onnxruntime provider: CUDA when available (auto), or forced")
    p.add_argument("--data-dir", default=None, help="folder holding the test set (default: the usual places; never downloads)")
    p.add_argument("--limit", type=int, default=None, help="compare on the first N test images only (N >= 1)")
    p.add_argument(
        "--variant",
        default=None,
        type=variant_arg,
        metavar="SPEC.toml",
        help="the network of a file exported fresh (--seed) from a spec file, whose name is no built-in variant's",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a report")
    args = p.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        print(f"export.verify: error: --limit must be at least 1, got {args.limit}", file=sys.stderr)
        return 2
    from lenet_spec.checkpoint import CheckpointError
    from lenet_spec.data import DataError
    from lenet_spec.frameworks import FrameworkMissing

    from .metadata import MetadataError
    from .runtime import RuntimeUnavailable

    try:
        result = verify(args.model, args.ckpt, args.framework, args.device, args.data_dir, args.limit, args.variant)
    except (CheckpointError, DataError, FrameworkMissing, MetadataError, RuntimeUnavailable, ValueError, OSError) as e:
        print(f"export.verify: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['file']}: {result['variant']}, exported by {result['exported_by']}; onnxruntime ran on {result['provider']}")
        print(f"reference: {result['reference']}")
        for r in result["comparisons"]:
            verdict = "ok" if r["passed"] else "FAILED"
            print(
                f"  {r['images']:>20}: {r['count']:6d} images, max |logit diff| {r['max_abs']:.2e} (tolerance {r['tolerance']:.1e}), argmax agreement "
                f"{100 * r['argmax_agreement']:.2f}%  {verdict}"
            )
        if not result["passed"]:
            print("export.verify: the ONNX file does not compute what the framework model computes", file=sys.stderr)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    from lenet_spec.cli import run

    run(main, "export.verify")
