"""python -m benchmarks.distributed: training images/s of the trainers in one process with 2
threads against 2 processes with 1 thread each (torchrun, paddle.distributed.launch; gloo on
loopback), both frameworks, `lenet5` at its recipe's batch and at 256. Each configuration runs
the real command line for 3 epochs on the first N training images; the figure is the best of
epochs 2 and 3 (`images_per_s` in metrics.jsonl: the global images of an epoch over its
seconds), so start-up and the first epoch's warm-up are left out. The configurations run one
after the other, each pair (1x2, 2x1) back to back.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lenet_spec.checkpoint import atomic_write
from lenet_spec.cli import ArgumentParser, JSON_STDOUT, UsageError, add_json_option, check_output, report_to_stderr
from lenet_spec.frameworks import NAMES, get

from .frameworks import bench

ROOT = Path(__file__).resolve().parents[1]


def command(framework: str, processes: int, out: Path, args: list[str]) -> list[str]:
    if processes == 1:
        return [sys.executable, "-m", f"{get(framework).package}.train", *args, "--out", str(out)]
    return bench(framework).launch_command(processes, args, out)


def measure(framework: str, processes: int, threads: int, batch: int, limit: int, folder: Path) -> dict:
    out = folder / f"{framework}-{processes}x{threads}-{batch}"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    args = ["--variant", "lenet5", "--epochs", "3", "--batch-size", str(batch), "--limit", str(limit), "--no-progress", "--device", "cpu"]
    t0 = time.perf_counter()
    proc = subprocess.run(command(framework, processes, out, args), cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"benchmarks.distributed: error: {framework} {processes}x{threads} failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {"framework": framework, "processes": processes, "threads": threads, "batch_size": batch, "images": limit,
            "images_per_s": max(r["images_per_s"] for r in records[1:]), "wall_s": wall, "test_acc": records[-1]["test_acc"]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.distributed", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, default=12800, help="training images per epoch (default: 12800)")
    p.add_argument("--frameworks", default=",".join(NAMES))
    add_json_option(p, "the rows")
    args = p.parse_args(argv)
    if args.json not in (None, JSON_STDOUT):
        try:
            check_output(args.json, "--json")
        except UsageError as e:
            print(f"benchmarks.distributed: error: {e}", file=sys.stderr)
            return 2
    with report_to_stderr(args.json) as stdout:  # --json alone: stdout carries the JSON, the rows go to stderr
        rows = []
        with tempfile.TemporaryDirectory(prefix="lenet-dist-bench-") as d:
            for framework in args.frameworks.split(","):
                for batch in (64, 256):
                    pair = [measure(framework, n, t, batch, args.limit, Path(d)) for n, t in ((1, 2), (2, 1))]
                    for r in pair:
                        r["vs_one_process"] = r["images_per_s"] / pair[0]["images_per_s"]
                        rows.append(r)
                        print(f"{framework:6} batch {batch:4}: {r['processes']} process(es) x {r['threads']} thread(s): {r['images_per_s']:8,.0f} images/s "
                              f"({r['vs_one_process']:.2f}x one process), {r['wall_s']:.0f} s wall for 3 epochs of {args.limit:,}", flush=True)  # fmt: skip
    text = json.dumps(rows, indent=2) + "\n"
    if stdout is not None:
        stdout.write(text)
    elif args.json:
        atomic_write(args.json, lambda tmp: Path(tmp).write_text(text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
