"""PaDiff 0.2.0 (the peer tool, PyPI `padiff`) on the corpus of hand ports, beside parity.diff.

PaDiff installs an import hook over torch and paddle, so it runs in its own virtual environment
(benchmarks/peers/padiff_env.sh builds it) and is driven here through a subprocess: this module imports
only the standard library. Each case of tests/ports/corpus.py is handed to benchmarks/peers/padiff_side.py,
run by the python named in LENET_PADIFF_PYTHON (default /work/padiff-env/bin/python when it exists),
which prints one JSON line per PaDiff mode.

    python -m benchmarks.padiff [--mode default|strict|both] [--corpus PATH] [--timeout S]

prints one JSON row per case and mode: {case, expected ("equal" or the torch layer the corpus
expects to be blamed), mode, padiff (its verdict), padiff_layer, seconds (PaDiff's auto_diff),
wall (the subprocess, imports included), message}.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIDE = Path(__file__).resolve().parent / "peers" / "padiff_side.py"  # not a module of the package: PaDiff's own venv runs it
CORPUS = ROOT / "tests" / "ports" / "corpus.py"
DEFAULT_PYTHON = "/work/padiff-env/bin/python"


class PadiffMissing(RuntimeError):
    """No python with PaDiff: set LENET_PADIFF_PYTHON or build the venv (benchmarks/peers/padiff_env.sh)."""


def padiff_python() -> str:
    """The python of PaDiff's venv: $LENET_PADIFF_PYTHON, else /work/padiff-env/bin/python."""
    py = os.environ.get("LENET_PADIFF_PYTHON")
    if py:
        return py
    if os.path.exists(DEFAULT_PYTHON):
        return DEFAULT_PYTHON
    raise PadiffMissing("no PaDiff python: set LENET_PADIFF_PYTHON, or build one with `bash benchmarks/peers/padiff_env.sh`")


def load_cases(corpus: str | os.PathLike = CORPUS) -> list:
    """CASES of a corpus.py, imported by path (tests/ is not a package the project installs)."""
    spec = importlib.util.spec_from_file_location("_padiff_corpus", str(corpus))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return list(mod.CASES)


def expected(case) -> str:
    """What a right tool says: "equal", or the torch layer the corpus expects blamed (else its phase/cause)."""
    e = case.expect
    if e is None:
        return "equal"
    return e.torch or e.paddle or f"{e.phase}:{e.cause}"


def run_case(
    case, mode: str = "default", python: str | None = None, timeout: float = 300.0, batch: int = 8, seed: int = 0, options: dict | None = None
) -> list[dict]:
    """PaDiff's rows for one corpus case (one per mode run; "both" gives default and strict)."""
    py = python or padiff_python()
    job = {"torch": case.spec("torch"), "paddle": case.spec("paddle"), "input": list(case.input), "batch": batch, "seed": seed, "mode": mode}
    if options is not None:
        job["options"] = options
    base = {"case": case.name, "expected": expected(case)}
    t0 = time.perf_counter()
    try:
        p = subprocess.run([py, str(SIDE), json.dumps(job)], capture_output=True, text=True, timeout=timeout, cwd=tempfile.gettempdir())
    except subprocess.TimeoutExpired:
        return [
            {
                **base,
                "mode": mode,
                "padiff": "timeout",
                "padiff_layer": None,
                "seconds": None,
                "wall": round(time.perf_counter() - t0, 3),
                "message": f"no answer in {timeout:g} s",
            }
        ]
    wall = round(time.perf_counter() - t0, 3)
    rows = []
    for line in p.stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            r = json.loads(line)
        except ValueError:
            continue
        rows.append(
            {
                **base,
                "mode": r.get("mode", mode),
                "padiff": r["verdict"],
                "padiff_layer": r.get("layer"),
                "seconds": r.get("seconds"),
                "wall": wall,
                "message": r.get("message"),
            }
        )
    if not rows:
        tail = (p.stderr.strip().splitlines() or [""])[-1]
        rows.append(
            {
                **base,
                "mode": mode,
                "padiff": "error",
                "padiff_layer": None,
                "seconds": None,
                "wall": wall,
                "message": f"padiff_side.py exited {p.returncode}: {tail}"[:1000],
            }
        )
    return rows


def run_corpus(
    mode: str = "default", corpus: str | os.PathLike = CORPUS, python: str | None = None, timeout: float = 300.0, options: dict | None = None
) -> list[dict]:
    """PaDiff's rows for every case of the corpus, in CASES' order."""
    py = python or padiff_python()
    rows = []
    for case in load_cases(corpus):
        rows.extend(run_case(case, mode, py, timeout, options=options))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.padiff", description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("default", "strict", "both"), default="both")
    ap.add_argument("--corpus", default=str(CORPUS))
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per case (default 300)")
    ap.add_argument("--options", help="PaDiff options as JSON (e.g. '{\"rtol\": 1e-5}'), instead of the mode's")
    a = ap.parse_args(argv)
    try:
        rows = run_corpus(a.mode, a.corpus, timeout=a.timeout, options=json.loads(a.options) if a.options else None)
    except PadiffMissing as e:
        print(e, file=sys.stderr)
        return 2
    for r in rows:
        print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
