"""python -m parity.convert SRC DST: a torch .pt checkpoint to a paddle .pdparams one, or the
reverse; either to or from .safetensors, a format that cannot carry code.

The formats follow the suffixes. The variant comes from SRC (pass --variant, a built-in name or
a .toml spec file, for a plain state dict, or to insist on one); DST carries SRC's spec, so a
network of one's own converts without its spec file. A .safetensors file holds the weights in one framework's layout
(paddle's dense weights are torch's transposed), named in its metadata: by default the
layout of SRC, or --layout's. DST is written to a temporary file and renamed into place; it
never replaces SRC.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lenet_spec import VARIANTS, Variant
from lenet_spec.checkpoint import Checkpoint, CheckpointError, format_of, save_safetensors, state_mismatch
from lenet_spec.cli import VARIANT_HELP, ArgumentParser, UsageError, check_output, run, variant_arg

from lenet_spec.frameworks import NAMES as FRAMEWORKS, REGISTRY, FrameworkMissing, package
from lenet_spec.load import load_checkpoint
from lenet_spec.mapping import MappingError, convert, expected_shapes


def convert_file(
    src: str | os.PathLike, dst: str | os.PathLike, variant: str | Variant | None = None, layout: str | None = None, overwrite: bool = False
) -> tuple[Checkpoint, str]:
    """Convert checkpoint `src` into `dst`, in the format its suffix names.

    Args:
        layout: for a .safetensors `dst`, whose layout to write ('torch' or 'paddle');
            default: `src`'s.
        overwrite: `dst` may replace a checkpoint of a trainer's run (lenet_spec.cli.check_output).
    Returns:
        The checkpoint as read from `src`, and the layout written.
    Raises:
        CheckpointError, MappingError, FrameworkMissing, UsageError: with a one-line reason.
    """
    src_format, dst_format = format_of(src), format_of(dst)
    if layout is not None and dst_format != "safetensors":
        raise UsageError(f"--layout is for a .safetensors DST; {dst} is in {dst_format}'s own layout")
    check_output(dst, "DST", inputs=[src], overwrite=overwrite)
    ckpt = load_checkpoint(src, variant)
    target = layout or (ckpt.framework if dst_format == "safetensors" else dst_format)
    if (dst_format, target) == (src_format, ckpt.framework):
        others = [fw for fw in REGISTRY if fw.name != target]
        suffixes = " or ".join(fw.suffix for fw in others)
        other = suffixes if src_format != "safetensors" else f"{', '.join(fw.suffix for fw in REGISTRY)} or --layout {' or '.join(fw.name for fw in others)}"
        raise UsageError(f"{src} and {dst} would both be {dst_format} files in {target}'s layout; give DST {other}")
    state = convert(ckpt.state, ckpt.spec, ckpt.framework, target)
    source = {
        "framework": ckpt.framework,
        "format": src_format,
        "framework_version": ckpt.meta.get("framework_version"),
        "file": Path(src).name,
        "sha256": ckpt.sha256,
    }
    if dst_format == "safetensors":
        save_safetensors(dst, target, ckpt.spec, state, converted_from=source)
    else:
        package(target).save_state(dst, ckpt.spec, state, converted_from=source)
    return ckpt, target


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m parity.convert", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="checkpoint to read (.pt, .pdparams or .safetensors)")
    parser.add_argument("dst", help="checkpoint to write (.pt, .pdparams or .safetensors)")
    parser.add_argument(
        "--variant",
        type=variant_arg,
        default=None,
        metavar="NAME|SPEC.toml",
        help=f"the variant SRC must hold ({VARIANT_HELP}); required for a plain state dict (default: read from SRC)",
    )
    parser.add_argument("--layout", choices=list(FRAMEWORKS), default=None, help="with a .safetensors DST: write torch's or paddle's layout (default: SRC's)")
    parser.add_argument(
        "--overwrite", action="store_true", help="DST may replace a checkpoint of a trainer's run folder (which --resume would then continue from)"
    )
    args = parser.parse_args(argv)
    try:
        ckpt, target = convert_file(args.src, args.dst, args.variant, args.layout, args.overwrite)
    except (CheckpointError, MappingError, FrameworkMissing, UsageError, OSError) as e:
        print(f"parity.convert: error: {e}", file=sys.stderr)
        return 2  # unusable input, as every command of the project
    print(
        f"wrote {args.dst}: {ckpt.variant}, {len(ckpt.state)} tensors, {ckpt.framework} layout -> {target} layout ({format_of(args.src)} -> "
        f"{format_of(args.dst)} file)"
    )
    if not ckpt.meta:  # a plain state dict: nothing in it names its variant
        others = [v for v in VARIANTS if v != ckpt.variant and not state_mismatch(expected_shapes(v, ckpt.framework), ckpt.state)]
        also = f" (so do {', '.join(others)}'s)" if others else ""
        print(f"note: {args.src} is a plain state dict: its names and shapes match {ckpt.variant}{also}; the variant is taken on your word (--variant)")
    return 0


if __name__ == "__main__":
    run(main, "parity.convert")
