"""python -m lenet_spec summary VARIANT|SPEC.toml [--json]: layers, output shapes and parameter counts."""

from __future__ import annotations

import json
import math
import sys

from .cli import VARIANT_HELP, ArgumentParser
from .layers import Variant
from .variants import VARIANTS, get_variant, resolve


def summary_rows(name: str | Variant) -> list[dict]:
    """One record per layer: name, kind, output shape (batch axis as -1), trainable parameters.

    The first row is what the user feeds (float NCHW in [0, 1] at the data set's size); the
    model's own padding and normalisation follow as a `preprocess` row when it has them."""
    variant = get_variant(name)
    inp = variant.input
    kinds = {layer.name: layer.kind for layer in variant.layers}
    counts = variant.layer_params()
    buffers = {layer.name: sum(math.prod(b.shape) for b in getattr(layer, "buffers", tuple)()) for layer in variant.layers}
    (_, padded), *rest = variant.shapes()
    rows = [{"layer": inp.name, "kind": inp.kind, "output_shape": [-1, *inp.shape], "params": 0}]
    steps = ([f"pad {inp.pad}"] if inp.pad else []) + (
        [f"x * {inp.scale:g} {'-' if inp.offset < 0 else '+'} {abs(inp.offset):g}"] if (inp.scale, inp.offset) != (1.0, 0.0) else []
    )
    if steps:
        rows.append({"layer": "preprocess", "kind": ", ".join(steps), "output_shape": [-1, *padded], "params": 0})
    return rows + [
        {"layer": layer, "kind": kinds[layer], "output_shape": [-1, *shape], "params": counts[layer], **({"buffers": buffers[layer]} if buffers[layer] else {})}
        for layer, shape in rest
    ]


def format_summary(name: str | Variant) -> str:
    variant = get_variant(name)
    rows = summary_rows(name)
    width = max(26, *(len(f"{r['layer']} ({r['kind']})") + 2 for r in rows))
    total, buffers = variant.num_params(), variant.num_buffer_values()
    extra = f"{'Buffers':>10}" if buffers else ""
    line = "-" * (width + 38 + len(extra))
    out = [f"{variant.name}: {variant.title}", line, f"{'Layer (type)':<{width}}{'Output Shape':<24}{'Param #':>14}{extra}", "=" * len(line)]
    for r in rows:
        count = f"{r.get('buffers', 0):>10,}" if buffers else ""
        out.append(f"{r['layer'] + ' (' + r['kind'] + ')':<{width}}{str(r['output_shape']):<24}{r['params']:>14,}{count}")
    out += [
        "=" * len(line),
        f"Total params: {total + buffers:,}",
        f"Trainable params: {total:,}",
        f"Non-trainable params: {buffers:,}" + (" (buffers: running statistics and batch counts)" if buffers else ""),
        line,
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m lenet_spec", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="{summary}")
    p = sub.add_parser("summary", help="print a variant's layers, output shapes and parameter counts")
    p.add_argument("variant", help=f"{VARIANT_HELP}: one of {', '.join(VARIANTS)}, or SPEC.toml")
    p.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    args = parser.parse_args(argv)
    if args.command is None:  # no command: what there is to summarise
        width = max(map(len, VARIANTS))
        print("\n".join(f"{name:<{width}}  {get_variant(name).title}" for name in VARIANTS))
        print("\nshow one: python -m lenet_spec summary VARIANT|SPEC.toml [--json]")
        return 0
    try:
        variant = resolve(args.variant)
    except ValueError as e:  # an unknown name, or a spec file that cannot be read (SpecError)
        print(f"lenet_spec: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(
            json.dumps(
                {
                    "variant": variant.name,
                    "total_params": variant.num_params(),
                    "buffer_values": variant.num_buffer_values(),
                    "layers": summary_rows(variant),
                },
                indent=2,
            )
        )
    else:
        print(format_summary(variant))
    return 0


if __name__ == "__main__":
    from lenet_spec.cli import run

    run(main, "lenet_spec")
