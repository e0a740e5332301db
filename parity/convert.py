"""python -m parity.convert SRC DST: a torch .pt checkpoint to a paddle .pdparams one, or the reverse.

The direction follows the suffixes. The variant comes from SRC (pass --variant for a plain
state dict, or to insist on one). DST is written to a temporary file and renamed into place.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lenet_spec import VARIANTS
from lenet_spec.checkpoint import Checkpoint, CheckpointError, framework_of

from .frameworks import FrameworkMissing, package
from .mapping import MappingError, convert


def convert_file(src: str | os.PathLike, dst: str | os.PathLike, variant: str | None = None) -> Checkpoint:
    """Convert checkpoint `src` into `dst`, the other framework's format.

    Returns:
        The checkpoint as read from `src`.
    Raises:
        CheckpointError, MappingError, FrameworkMissing: with a one-line reason.
    """
    src_fw, dst_fw = framework_of(src), framework_of(dst)
    if src_fw == dst_fw:
        raise CheckpointError(f"{src} and {dst} are both {src_fw} checkpoints; give DST the other framework's suffix (.pt or .pdparams)")
    if Path(src).resolve() == Path(dst).resolve():
        raise CheckpointError(f"{src}: source and destination are the same file")
    ckpt = package(src_fw).load(src, variant)
    state = convert(ckpt.state, ckpt.variant, src_fw, dst_fw)
    source = {"framework": src_fw, "framework_version": ckpt.meta.get("framework_version"), "file": Path(src).name}
    package(dst_fw).save_state(dst, ckpt.variant, state, converted_from=source)
    return ckpt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parity.convert", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="checkpoint to read (.pt or .pdparams)")
    parser.add_argument("dst", help="checkpoint to write, in the other framework's format")
    parser.add_argument("--variant", choices=list(VARIANTS), default=None, help="the variant SRC must hold; required for a plain state dict (default: read from SRC)")
    args = parser.parse_args(argv)
    try:
        ckpt = convert_file(args.src, args.dst, args.variant)
    except (CheckpointError, MappingError, FrameworkMissing) as e:
        print(f"parity.convert: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.dst}: {ckpt.variant}, {len(ckpt.state)} tensors, {framework_of(args.src)} -> {framework_of(args.dst)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
