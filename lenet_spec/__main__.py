"""python -m lenet_spec summary VARIANT [--json]: layers, output shapes and parameter counts."""

from __future__ import annotations

import argparse
import json
import sys

from .variants import VARIANTS, get_variant


def summary_rows(name: str) -> list[dict]:
    """One record per layer: name, kind, output shape (batch axis as -1), trainable parameters."""
    variant = get_variant(name)
    kinds = {variant.input.name: variant.input.kind, **{layer.name: layer.kind for layer in variant.layers}}
    counts = variant.layer_params()
    return [
        {"layer": layer, "kind": kinds[layer], "output_shape": [-1, *shape], "params": counts[layer]}
        for layer, shape in variant.shapes()
    ]


def format_summary(name: str) -> str:
    variant = get_variant(name)
    rows = summary_rows(name)
    line = "-" * 64
    out = [f"{variant.name}: {variant.title}", line, f"{'Layer (type)':<26}{'Output Shape':<24}{'Param #':>14}", "=" * 64]
    for r in rows:
        out.append(f"{r['layer'] + ' (' + r['kind'] + ')':<26}{str(r['output_shape']):<24}{r['params']:>14,}")
    total = variant.num_params()
    out += ["=" * 64, f"Total params: {total:,}", f"Trainable params: {total:,}", "Non-trainable params: 0", line]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lenet_spec", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("summary", help="print a variant's layers, output shapes and parameter counts")
    p.add_argument("variant", help=f"one of: {', '.join(VARIANTS)}")
    p.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    args = parser.parse_args(argv)
    if args.variant not in VARIANTS:
        print(f"lenet_spec: error: unknown variant {args.variant!r}; choose from {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    if args.json:
        variant = get_variant(args.variant)
        print(json.dumps({"variant": variant.name, "total_params": variant.num_params(), "layers": summary_rows(args.variant)}, indent=2))
    else:
        print(format_summary(args.variant))
    return 0


if __name__ == "__main__":
    from lenet_spec.cli import run

    run(main, "lenet_spec")
