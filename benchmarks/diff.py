"""parity.diff measured: its verdicts on the corpus of hand ports beside PaDiff's, and its cost.

    python -m benchmarks.diff [--section corpus,lenet,resnet,depth] [--no-padiff] [--depths 8,32,128] [--json PATH]

Sections (default: corpus, lenet, depth; resnet takes minutes, ask for it):
- corpus: every Case of tests/ports/corpus.py through parity.diff.compare (as `python -m
  parity.diff` runs it: batch 8, seed 0, the case's --train and --optimizer), its verdict (equal,
  or the first difference's torch layer and cause) against the expectation, Report.seconds and
  the wall time (models loaded by parity.diff.load_factory, then compare); beside it PaDiff
  0.2.0's default and strict rows (benchmarks.padiff; left out, with a note, when PaDiff's python
  is missing). A verdict is right when equal/different matches and, for a wrong port, the layer
  named is the torch layer the corpus expects.
- lenet: seed 004 (CASES[0]), float64 and float32, --train 3, batch 8: the median of 3 compares in
  one process.
- resnet: the hand-written ResNet-18 pair (tests/ports/resnet18_*.py), 3x224x224, batch 8, float64
  and float32, --train 0 and 1: wall seconds and peak memory growth, each in a fresh process,
  against one forward+backward of both models in float64 measured the same way.
- depth: the MLP pair of tests/ports/mlp_*.py, Linear(256,256)+Tanh times D then Linear(256,10), D
  in --depths, batch 64, float64: parity.diff's peak growth against one forward+backward's, per D.

Memory: the measuring process writes "5" to /proc/self/clear_refs right before the measured call
(VmHWM := VmRSS, so building the models is not counted) and reads VmHWM after it: the growth is
VmHWM minus VmRSS at the reset. The baseline's forward+backward is the framework's own
lenet_*/diff.py `run` with no layer hooked (train mode, mean cross-entropy from the primitives,
backward, the gradients copied to NumPy once): parity.diff's own code path without its
recording, replaying and comparing. This module imports neither framework (the import contracts).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lenet_spec.frameworks import NAMES

from .padiff import CORPUS, PadiffMissing, expected, load_cases, padiff_python, run_case

ROOT = Path(__file__).resolve().parent.parent
PORTS = ROOT / "tests" / "ports"
SECTIONS = ("corpus", "lenet", "resnet", "depth")
DEFAULT_SECTIONS = ("corpus", "lenet", "depth")
RESNET = {name: f"{PORTS / f'resnet18_{name}.py'}:ResNet18" for name in NAMES}
DEPTHS = (8, 32, 128)
PADIFF_MODES = ("default", "strict")

MLP = {name: f"{PORTS / f'mlp_{name}.py'}" for name in NAMES}  # the depth section's pair: FILE.py, its factory depthD


# --- verdicts ---
def diff_verdict(report) -> tuple[str, str | None, str | None]:
    """(equal | different, the first difference's torch layer (else paddle's), its cause)."""
    if report.equal:
        return "equal", None, None
    f = report.first_difference
    if f is None:
        return "different", None, None
    return "different", f.torch or f.paddle, f.cause


def is_right(case, verdict: str, layer: str | None) -> bool:
    """The verdict matches the corpus; for a wrong port, the layer named is the expected torch layer
    (a PaDiff layer string counts when it names that dotted path as a whole word)."""
    want = expected(case)
    if want == "equal":
        return verdict == "equal"
    if verdict != "different" or not layer:
        return False
    return layer == want or re.search(rf"(?<![\w.]){re.escape(want)}(?![\w.])", layer) is not None


def _case_inputs(case, batch: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng([seed, 5]).random((batch, *case.input))  # what `python -m parity.diff --input` draws


def diff_case(case, batch: int = 8, seed: int = 0) -> dict:
    """parity.diff on one corpus case, as its command line runs it."""
    from parity.diff import compare, load_factory

    t0 = time.perf_counter()
    models = {side: load_factory(case.spec(side), side) for side in NAMES}
    report = compare(*(models[side] for side in NAMES), _case_inputs(case, batch, seed), train=case.train, optimizer=case.optimizer, seed=seed)
    wall = time.perf_counter() - t0
    verdict, layer, cause = diff_verdict(report)
    return {"verdict": verdict, "layer": layer, "cause": cause, "right": is_right(case, verdict, layer), "seconds": report.seconds, "wall": wall}


def corpus_section(cases=None, padiff: bool = True, timeout: float = 300.0, log=print) -> dict:
    """Every case: parity.diff's verdict and seconds, and PaDiff's default and strict rows."""
    cases = load_cases(CORPUS) if cases is None else cases
    note = None
    py = None
    if padiff:
        try:
            py = padiff_python()
            if not os.path.exists(py):
                raise PadiffMissing(f"no PaDiff python at {py}")
        except PadiffMissing as e:
            note = f"PaDiff left out: {e}"
            py = None
    else:
        note = "PaDiff left out (--no-padiff)"
    rows = []
    for case in cases:
        row = {"case": case.name, "expected": expected(case), "diff": diff_case(case)}
        if py is not None:
            for r in run_case(case, "both", py, timeout):
                row[f"padiff_{r['mode']}"] = {
                    "verdict": r["padiff"],
                    "layer": r["padiff_layer"],
                    "right": is_right(case, r["padiff"], r["padiff_layer"]),
                    "seconds": r["seconds"],
                    "wall": r["wall"],
                    "message": r["message"],
                }
        rows.append(row)
        log(_corpus_line(row), flush=True)
    tally = {"cases": len(rows), "diff_right": sum(r["diff"]["right"] for r in rows)}
    for mode in PADIFF_MODES:
        key = f"padiff_{mode}"
        if any(key in r for r in rows):
            tally[f"{key}_right"] = sum(r.get(key, {}).get("right", False) for r in rows)
    return {"rows": rows, "tally": tally, "note": note}


def _verdict_text(v: dict) -> str:
    if v["verdict"] == "equal":
        return "equal"
    what = v.get("layer") or "-"
    return f"{v['verdict']} {what}" + (f" ({v['cause']})" if v.get("cause") else "")


def _secs(v: dict) -> str:
    s = v.get("seconds")
    return f"{s:.2f}" if isinstance(s, (int, float)) else "-"


def _corpus_line(row: dict) -> str:
    d = row["diff"]
    parts = [f"{row['case']:17} expected {row['expected']:13} parity.diff {_verdict_text(d)} ({'right' if d['right'] else 'WRONG'}, {d['seconds']:.2f} s)"]
    for mode in PADIFF_MODES:
        p = row.get(f"padiff_{mode}")
        if p:
            parts.append(f"PaDiff {mode} {_verdict_text(p)[:40]} ({'right' if p['right'] else 'wrong'}, {_secs(p)} s)")
    return "; ".join(parts)


def corpus_table(section: dict) -> str:
    """The corpus side by side, as a Markdown table."""
    modes = [m for m in PADIFF_MODES if any(f"padiff_{m}" in r for r in section["rows"])]
    head = ["case", "expected", "parity.diff verdict, layer (cause)", "right?", "seconds (compare / wall)"]
    for m in modes:
        head += [f"PaDiff {m}: verdict, layer", "right?", "seconds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in section["rows"]:
        d = r["diff"]
        cells = [r["case"], r["expected"], _verdict_text(d), "yes" if d["right"] else "NO", f"{d['seconds']:.2f} / {d['wall']:.2f}"]
        for m in modes:
            p = r.get(f"padiff_{m}")
            cells += [_verdict_text(p), "yes" if p["right"] else "no", _secs(p)] if p else ["-", "-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    t = section["tally"]
    total = [f"right: parity.diff {t['diff_right']}/{t['cases']}"] + [f"PaDiff {m} {t[f'padiff_{m}_right']}/{t['cases']}" for m in modes]
    lines.append("")
    lines.append(", ".join(total) + (f" ({section['note']})" if section.get("note") else ""))
    return "\n".join(lines)


# --- cost on LeNet ---
def lenet_section(repeats: int = 3, log=print) -> dict:
    """seed 004, both dtypes, --train 3 (its optimizer), batch 8: the median of `repeats` compares in this process."""
    from parity.diff import compare, load_factory

    case = load_cases(CORPUS)[0]
    inputs = _case_inputs(case)
    seconds, walls, equal = [], [], []
    for _ in range(repeats):
        models = {side: load_factory(case.spec(side), side) for side in NAMES}
        t0 = time.perf_counter()
        report = compare(*(models[side] for side in NAMES), inputs, train=3, optimizer=case.optimizer)
        walls.append(time.perf_counter() - t0)
        seconds.append(report.seconds)
        equal.append(report.equal)
    r = {
        "case": case.name,
        "train": 3,
        "optimizer": case.optimizer,
        "batch": len(inputs),
        "dtypes": "float64,float32",
        "seconds_median": statistics.median(seconds),
        "wall_median": statistics.median(walls),
        "seconds": seconds,
        "equal": all(equal),
    }
    log(f"LeNet {case.name}, float64+float32, --train 3 ({case.optimizer}), batch 8: {r['seconds_median']:.2f} s (median of {repeats}: {seconds})", flush=True)
    return r


# --- one measurement in a fresh process ---
def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:  # "5": VmHWM := VmRSS (Linux >= 4.0)
        f.write("5")


def child(job: dict) -> dict:
    """In a fresh process: build both models, reset the peak, then one parity.diff.compare (job
    "kind" "diff") or one forward+backward of each model in float64 ("baseline"); seconds and
    peak growth."""
    from lenet_spec.frameworks import module
    from parity.diff import compare, load_factory

    models = {side: load_factory(job[side], side) for side in NAMES}
    rng = np.random.default_rng([0, 5])
    x = rng.random((job["batch"], *job["input"]))
    labels = np.random.default_rng([0, 11]).integers(0, job["classes"], job["batch"])
    result = {}
    if job["kind"] == "baseline":
        probes = {side: module(side, "diff") for side in NAMES}
        for side in NAMES:
            probes[side].cast(models[side], "float64")
        _reset_peak()
        rss0 = _status_kb("VmRSS")
        t0 = time.perf_counter()
        for side in NAMES:
            run = probes[side].run(models[side], [], [], x, train=True, backward=True, labels=labels)
            assert run.raised is None, run.raised
            del run
        seconds = time.perf_counter() - t0
    else:
        _reset_peak()
        rss0 = _status_kb("VmRSS")
        t0 = time.perf_counter()
        report = compare(*(models[side] for side in NAMES), x, labels, dtypes=tuple(job["dtypes"]), train=job["train"])
        seconds = time.perf_counter() - t0
        result.update(equal=report.equal, report_seconds=report.seconds, first=diff_verdict(report)[1])
    hwm = _status_kb("VmHWM")
    result.update(seconds=seconds, rss_before_mib=rss0 / 1024, peak_growth_mib=(hwm - rss0) / 1024)
    return result


def measure(job: dict, timeout: float = 1800.0) -> dict:
    """`child(job)` in a fresh `python -m benchmarks.diff --child` process."""
    t0 = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "benchmarks.diff", "--child", json.dumps(job)], capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False
    )
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"benchmarks.diff --child {job['kind']} exited {p.returncode}: {(p.stderr.strip().splitlines() or [''])[-1]}")
    r = json.loads(lines[-1])
    r["process_wall"] = time.perf_counter() - t0
    return r


def resnet_section(log=print) -> dict:
    """ResNet-18, batch 8, 3x224x224: parity.diff (float64+float32) at --train 0 and 1, and the baseline."""
    common = {**RESNET, "input": [3, 224, 224], "batch": 8, "classes": 1000}
    base = measure({**common, "kind": "baseline"})
    log(f"ResNet-18 baseline (one forward+backward of each model, float64): {base['seconds']:.1f} s, peak growth {base['peak_growth_mib']:.0f} MiB", flush=True)
    rows = []
    for train in (0, 1):
        r = measure({**common, "kind": "diff", "dtypes": ["float64", "float32"], "train": train})
        r.update(train=train, time_ratio=r["seconds"] / base["seconds"], memory_ratio=r["peak_growth_mib"] / base["peak_growth_mib"])
        rows.append(r)
        log(
            f"ResNet-18 parity.diff float64+float32 --train {train}: {r['seconds']:.1f} s ({r['time_ratio']:.1f}x the baseline), "
            f"peak growth {r['peak_growth_mib']:.0f} MiB ({r['memory_ratio']:.1f}x), equal={r['equal']}",
            flush=True,
        )
    return {"baseline": base, "rows": rows}


def mlp(depth: int) -> dict[str, str]:
    """The depth section's pair with D = `depth`: {framework: FILE.py:depthD} (tests/ports/mlp_*.py)."""
    return {side: f"{MLP[side]}:depth{depth}" for side in NAMES}


def depth_section(depths=DEPTHS, batch: int = 64, log=print) -> dict:
    """Per depth: parity.diff's peak growth (float64, no training) against one forward+backward's."""
    rows = []
    for depth in depths:
        common = {**mlp(depth), "input": [256], "batch": batch, "classes": 10}
        base = measure({**common, "kind": "baseline"})
        d = measure({**common, "kind": "diff", "dtypes": ["float64"], "train": 0})
        n_params = depth * (256 * 256 + 256) + 256 * 10 + 10
        r = {
            "depth": depth,
            "params_mib_per_model": n_params * 8 / 2**20,
            "activations_mib_per_model": (2 * depth + 1) * batch * 256 * 8 / 2**20,  # each Linear's and Tanh's output (the last 10 wide: rounded up)
            "diff_peak_growth_mib": d["peak_growth_mib"],
            "diff_seconds": d["seconds"],
            "baseline_peak_growth_mib": base["peak_growth_mib"],
            "baseline_seconds": base["seconds"],
            "memory_ratio": d["peak_growth_mib"] / base["peak_growth_mib"],
            "equal": d["equal"],
        }
        rows.append(r)
        log(
            f"MLP depth {depth:4}: parity.diff peak growth {r['diff_peak_growth_mib']:7.1f} MiB ({r['diff_seconds']:.2f} s), one forward+backward "
            f"{r['baseline_peak_growth_mib']:7.1f} MiB ({r['baseline_seconds']:.2f} s): {r['memory_ratio']:.2f}x; equal={r['equal']}",
            flush=True,
        )

    first, last = rows[0], rows[-1]
    span = last["depth"] - first["depth"]
    slopes = {}
    if span > 0:
        slopes = {
            "diff_mib_per_layer": (last["diff_peak_growth_mib"] - first["diff_peak_growth_mib"]) / span,
            "baseline_mib_per_layer": (last["baseline_peak_growth_mib"] - first["baseline_peak_growth_mib"]) / span,
        }
        slopes["ratio"] = slopes["diff_mib_per_layer"] / slopes["baseline_mib_per_layer"] if slopes["baseline_mib_per_layer"] > 0 else None
        log(
            f"per added Linear+Tanh: parity.diff {slopes['diff_mib_per_layer']:.2f} MiB, forward+backward {slopes['baseline_mib_per_layer']:.2f} MiB "
            f"({slopes['ratio']:.2f}x)",
            flush=True,
        )
    return {"rows": rows, "slopes": slopes}


def tables(result: dict) -> str:
    """Every section's figures as Markdown tables."""
    out = []
    if "corpus" in result:
        out += ["### The corpus", "", corpus_table(result["corpus"]), ""]
    if "lenet" in result:
        r = result["lenet"]
        out += [
            "### LeNet, seed 004",
            "",
            "| pair | dtypes | --train | batch | seconds (median of 3) | runs |",
            "|---|---|---|---|---|---|",
            f"| {r['case']} | {r['dtypes']} | {r['train']} ({r['optimizer']}) | {r['batch']} | {r['seconds_median']:.2f} | "
            + ", ".join(f"{s:.2f}" for s in r["seconds"])
            + " |",
            "",
        ]
    if "resnet" in result:
        base = result["resnet"]["baseline"]
        out += [
            "### ResNet-18, batch 8, 3x224x224",
            "",
            "| run | seconds | peak growth MiB | time / baseline | memory / baseline |",
            "|---|---|---|---|---|",
            f"| baseline: one forward+backward of each model, float64 | {base['seconds']:.1f} | {base['peak_growth_mib']:.0f} | 1 | 1 |",
        ]
        for r in result["resnet"]["rows"]:
            out.append(
                f"| parity.diff float64+float32, --train {r['train']} (equal: {r['equal']}) | {r['seconds']:.1f} | {r['peak_growth_mib']:.0f} | "
                f"{r['time_ratio']:.1f} | {r['memory_ratio']:.1f} |"
            )
        out.append("")
    if "depth" in result:
        out += [
            "### Memory against depth: MLP, Linear(256,256)+Tanh x D, batch 64, float64",
            "",
            "| D | parameters MiB (one model) | activations MiB (one model) | parity.diff peak growth MiB | forward+backward peak growth MiB | ratio |",
            "|---|---|---|---|---|---|",
        ]
        for r in result["depth"]["rows"]:
            out.append(
                f"| {r['depth']} | {r['params_mib_per_model']:.1f} | {r['activations_mib_per_model']:.1f} | {r['diff_peak_growth_mib']:.1f} | "
                f"{r['baseline_peak_growth_mib']:.1f} | {r['memory_ratio']:.2f} |"
            )
        s = result["depth"]["slopes"]
        if s:
            out += [
                "",
                f"per added layer (D {result['depth']['rows'][0]['depth']} -> {result['depth']['rows'][-1]['depth']}): parity.diff "
                f"{s['diff_mib_per_layer']:.2f} MiB, forward+backward {s['baseline_mib_per_layer']:.2f} MiB",
            ]
        out.append("")
    return "\n".join(out)


def run(sections=DEFAULT_SECTIONS, padiff: bool = True, depths=DEPTHS, log=print) -> dict:
    """The sections asked for, in SECTIONS' order; the figures as JSON-able dicts."""
    result = {}
    if "corpus" in sections:
        result["corpus"] = corpus_section(padiff=padiff, log=log)
    if "lenet" in sections:
        result["lenet"] = lenet_section(log=log)
    if "resnet" in sections:
        result["resnet"] = resnet_section(log=log)
    if "depth" in sections:
        result["depth"] = depth_section(depths, log=log)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.diff", description=__doc__.split("\n\n")[0])
    ap.add_argument("--section", default=",".join(DEFAULT_SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)} (default: {','.join(DEFAULT_SECTIONS)})")
    ap.add_argument("--no-padiff", action="store_true", help="the corpus without PaDiff's rows")
    ap.add_argument("--depths", default=",".join(map(str, DEPTHS)), help="the depth section's D (default: 8,32,128)")
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--child", help=argparse.SUPPRESS)  # one measurement in this fresh process (measure)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(child(json.loads(a.child))), flush=True)
        return 0
    sections = [s for s in a.section.split(",") if s]
    bad = [s for s in sections if s not in SECTIONS]
    if bad:
        print(f"benchmarks.diff: error: unknown section {bad}; sections: {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    result = run(sections, not a.no_padiff, tuple(int(d) for d in a.depths.split(",")))
    result["seconds"] = time.perf_counter() - started
    print()
    print(tables(result))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
