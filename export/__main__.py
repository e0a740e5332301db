"""python -m export CKPT [--out model.onnx] [--opset N] [--check]
python -m export --variant NAME|SPEC.toml --seed S --framework torch|paddle --out model.onnx

A checkpoint (either framework's; its suffix says which) is exported by the framework that
wrote it unless --framework names the other. Without --out, a checkpoint is exported beside
itself (best.pt -> best.onnx), never over a file already there. Exit 0: a checked file was written; 1: --check
found a difference; 2: nothing was written (one line on stderr says why).
"""

from __future__ import annotations

import json
import os
import sys

from pathlib import Path

from lenet_spec.cli import VARIANT_HELP, ArgumentParser, CHECKPOINT_SUFFIXES, HelpFormatter, UsageError, check_output, run, variant_arg
from lenet_spec.frameworks import NAMES


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m export", description="Export a LeNet to ONNX with its own framework's exporter.", formatter_class=HelpFormatter)
    p.add_argument(
        "checkpoint",
        nargs="?",
        default=None,
        help=f"a {', '.join(CHECKPOINT_SUFFIXES[:-1])} or {CHECKPOINT_SUFFIXES[-1]} checkpoint (or use --variant for a freshly built model)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="the ONNX file to write (.onnx; never the checkpoint itself; default: the checkpoint's path with .onnx, if no such file exists)",
    )
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: 18)")
    p.add_argument("--check", action="store_true", help="verify the written file with onnxruntime against the framework model (python -m export.verify)")
    p.add_argument(
        "--variant",
        default=None,
        type=variant_arg,
        metavar="NAME|SPEC.toml",
        help=f"export a freshly built model of this variant ({VARIANT_HELP}); with a checkpoint: the variant of a plain state dict "
        "(a checkpoint of this project carries its spec)",
    )
    p.add_argument("--seed", type=int, default=0, help="initialisation seed of the freshly built model")
    p.add_argument("--framework", default=None, choices=NAMES, help="exporting framework (default: the checkpoint's; required with --variant)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a report")
    args = p.parse_args(argv)
    from lenet_spec.checkpoint import CheckpointError
    from lenet_spec.frameworks import FrameworkMissing

    from .exporter import DEFAULT_OPSET, ExportError, export, fresh, from_checkpoint

    def fail(message: str) -> int:
        print(f"export: error: {message}", file=sys.stderr)
        return 2

    if args.checkpoint is None and (args.variant is None or args.framework is None):
        return fail(f"give a checkpoint, or --variant NAME and --framework {'|'.join(NAMES)} for a freshly built model")
    if args.out is None and args.checkpoint is None:
        return fail("--out is required with --variant: give the ONNX file to write")
    if args.out is None:
        args.out = str(Path(args.checkpoint).with_suffix(".onnx"))
        if os.path.lexists(args.out):  # a file of the user's, or a previous export: replaced only when named
            return fail(f"--out not given and {args.out} exists; pass --out {args.out} to replace it, or another name")
    opset = args.opset if args.opset is not None else DEFAULT_OPSET
    if not 7 <= opset <= 30:
        return fail(f"--opset {opset} is not an ONNX opset; use 18 (the default) or another from 7 up")
    try:
        check_output(args.out, "--out", inputs=[args.checkpoint], suffixes=(".onnx",))
    except UsageError as e:
        return fail(str(e))
    try:
        source = from_checkpoint(args.checkpoint, args.variant, args.framework) if args.checkpoint else fresh(args.variant, args.seed, args.framework)
        report = export(source, args.out, opset)
    except (CheckpointError, ExportError, FrameworkMissing, OSError) as e:
        return fail(str(e))
    result = {
        "file": str(report.path),
        "variant": report.info.variant,
        "framework": f"{report.info.framework} {report.info.framework_version}",
        "source": report.info.source,
        "opset": report.opset,
        "nodes": report.nodes,
        "bytes": report.size,
        "seconds": round(report.seconds, 2),
    }
    status = 0
    if args.check:
        from .metadata import MetadataError
        from .verify import verify

        try:
            result["verify"] = verify(str(report.path), args.checkpoint if args.checkpoint else None, variant=None if args.checkpoint else args.variant)
        except (CheckpointError, MetadataError, FrameworkMissing, ValueError) as e:
            return fail(f"{report.path} was written, but could not be verified: {e}")
        status = 0 if result["verify"]["passed"] else 1
    if args.json:
        print(json.dumps(result))
    else:
        ops = ", ".join(f"{k} {v}" for k, v in report.nodes.items() if k != "total")
        print(f"wrote {report.path}: {report.info.variant} ({report.info.source}) by {result['framework']}, opset {report.opset}, "
              f"{report.nodes['total']} nodes ({ops}), {report.size / 1024:.0f} KiB, {report.seconds:.1f} s")  # fmt: skip
        if args.check:
            v = result["verify"]
            for r in v["comparisons"]:
                print(f"  check ({v['provider']}, {r['images']}, {r['count']} images): max |logit diff| {r['max_abs']:.2e} (tolerance {r['tolerance']:.1e}), "
                      f"argmax agreement {100 * r['argmax_agreement']:.2f}%  {'ok' if r['passed'] else 'FAILED'}")  # fmt: skip
    if status:
        print("export: --check: the ONNX file does not compute what the framework model computes", file=sys.stderr)
    return status


if __name__ == "__main__":
    run(main, "export")
