"""The measurement behind parity.diff's float32 factors (parity/diff.py, FLOAT32_FACTOR): on right
ports only, how far the two frameworks' float32 results stand apart, over the float32 rounding
floor measured in the same run (the smaller of each framework's float32-against-float64
difference), per phase.

    python -m benchmarks.diff_floor [--seeds 6] [--batches 8,64] [--json PATH]

Right ports: the corpus's (tests/ports/corpus.py, expect None) and the project's seven variants
(lenet_torch's model against lenet_paddle's). Prints one line per run and, last, the worst ratio
of each phase with the run it came from.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

from lenet_spec import VARIANTS, get_variant
from lenet_spec.cli import ArgumentParser, add_json_option, report_to_stderr, run
from lenet_spec.frameworks import NAMES, module
from parity.diff import compare, load_factory

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "ports" / "corpus.py"


def right_ports() -> list[tuple[str, object, tuple[int, ...], int, str]]:
    """(name, a function making the (torch, paddle) pair, input shape, steps, optimizer) of every right port."""
    spec = importlib.util.spec_from_file_location("_corpus", CORPUS)
    corpus = importlib.util.module_from_spec(spec)
    sys.modules["_corpus"] = corpus
    spec.loader.exec_module(corpus)
    ports = [(c.name, lambda c=c: tuple(load_factory(c.spec(fw), fw) for fw in NAMES), c.input, c.train, c.optimizer) for c in corpus.CASES if c.expect is None]
    for v in VARIANTS:
        ports.append((v, lambda v=v: tuple(module(fw, "model").build(v, seed=k) for k, fw in enumerate(NAMES)), get_variant(v).input.shape, 2, "sgd"))
    return ports


def measure(seeds: int, batches: tuple[int, ...]) -> list[dict]:
    rows = []
    for seed in range(seeds):
        for batch in batches:
            for name, make, shape, steps, optimizer in right_ports():
                x = np.random.default_rng([seed, 99]).random((batch, *shape))
                report = compare(*make(), x, train=steps, optimizer=optimizer, seed=seed)
                row = {"port": name, "seed": seed, "batch": batch, "equal": report.equal, "seconds": round(report.seconds, 2)}
                row.update({f"{p.phase}/{p.mode}": round(p.ratio, 3) for p in report.phases if p.dtype == "float32" and p.phase in ("forward", "backward")})
                row["flips"] = sum(p.flips for p in report.phases)
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = ArgumentParser(prog="python -m benchmarks.diff_floor", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=6, help="seeds 0..N-1 of the images, labels and masks (default: 6)")
    ap.add_argument("--batches", default="8,64", help="batch sizes, comma-separated (default: 8,64)")
    add_json_option(ap, "every run's ratios")
    args = ap.parse_args(argv)
    with report_to_stderr(args.json) as stdout:
        rows = measure(args.seeds, tuple(int(b) for b in args.batches.split(",")))
        for phase in sorted({k for r in rows for k in r if "/" in k}):
            worst = max(rows, key=lambda r: r.get(phase, 0.0))
            print(f"worst {phase}: {worst[phase]:.1f} ({worst['port']}, seed {worst['seed']}, batch {worst['batch']})")
        print(f"{len(rows)} runs, {sum(not r['equal'] for r in rows)} not equal")
    if args.json:
        text = json.dumps(rows, indent=1) + "\n"
        (stdout.write(text) if stdout is not None else Path(args.json).write_text(text))
    return 0


if __name__ == "__main__":
    run(main, "benchmarks.diff_floor")
