"""python -m parity.check --env: what this machine has for the project, in one screen.

Python; the GPUs the machine has (nvidia-smi, else /proc/driver/nvidia/gpus), seen without any
framework; numpy; torch and paddle (version, CUDA build or not, the GPUs each sees); onnxruntime
(version, providers, and whether a CUDA session really starts); onnx, onnxscript, paddle2onnx;
the data sets found and where. Each package is imported in an interpreter of its own
(lenet_spec/_probe.py), all at once, so that one broken install hides nothing else. Then one line a
problem, with its fix. Exit status 1 when there is a problem, else 0; a package the project can
do without (paddle2onnx, say) is a note when absent, not a problem.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .checkpoint import atomic_write
from .data import DATASETS, dataset_dirs, holds
from .frameworks import REGISTRY

PROBE = Path(__file__).with_name("_probe.py")
PROBE_TIMEOUT_S = 120.0  # for all the imports together; torch or paddle starting CUDA takes seconds
PACKAGES = ("numpy", *(fw.import_name for fw in REGISTRY), "onnxruntime", "onnx", "onnxscript", "paddle2onnx")
DISTRIBUTIONS = {  # import name -> the pip packages that provide it
    "numpy": ("numpy",),
    **{fw.import_name: fw.distributions for fw in REGISTRY},
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "onnx": ("onnx",),
    "onnxscript": ("onnxscript",),
    "paddle2onnx": ("paddle2onnx",),
}
WHAT_FOR = {  # what a package that is not installed takes away
    "numpy": "everything (pip install -e .)",
    **{fw.import_name: f"the {fw.name} models, training and parity" for fw in REGISTRY},
    "onnxruntime": "running exported files (export.verify, export.predict)",
    "onnx": "exporting (python -m export)",
    "onnxscript": "exporting from torch",
    "paddle2onnx": "exporting from paddle",
}
GUIDE = "docs/INSTALL-GPU.md"


@dataclass
class Report:
    python: dict
    gpus: dict  # what the machine has, seen without any framework
    packages: dict  # import name -> {installed: [dists], version, error, cuda, gpus, ...}
    datasets: dict  # name -> folder holding both splits, or None
    problems: list[dict] = field(default_factory=list)  # {problem, fix}
    notes: list[str] = field(default_factory=list)
    probe_s: float = 0.0


def installed(name: str) -> list[str]:
    """'dist version' of every pip package installed that provides the import `name`."""
    found = []
    for dist in DISTRIBUTIONS[name]:
        try:
            found.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            pass
    return found


def details_file(name: str) -> list[str]:
    """[the path of lenet_<fw>/env.py] for a framework's import name (what the probe asks it), else []."""
    for fw in REGISTRY:
        if fw.import_name == name:
            spec = importlib.util.find_spec(fw.package)  # the package is found, not imported
            return [str(Path(spec.submodule_search_locations[0]) / "env.py")] if spec and spec.submodule_search_locations else []
    return []


def probe_all(names: tuple[str, ...] = PACKAGES, timeout: float | None = None) -> dict[str, dict]:
    """Each package imported in its own interpreter, all at the same time; what each said, or
    why it said nothing ({"error": ...})."""
    timeout = PROBE_TIMEOUT_S if timeout is None else timeout
    text = PROBE.read_text()
    procs = {
        n: subprocess.Popen([sys.executable, "-c", text, n, *details_file(n)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace")
        for n in names
    }
    deadline = time.monotonic() + timeout
    out = {}
    for name, proc in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            out[name] = {"error": f"import {name} did not finish in {timeout:.0f} s"}
            continue
        line = next((s for s in reversed(stdout.splitlines()) if s.startswith("lenet-parity-env ")), None)
        if line is not None:
            out[name] = json.loads(line.removeprefix("lenet-parity-env "))
        elif proc.returncode < 0:
            out[name] = {"error": f"import {name} crashed the interpreter (signal {-proc.returncode})"}
        else:
            last = next((s.strip() for s in reversed(stderr.splitlines()) if s.strip()), f"exit status {proc.returncode}")
            out[name] = {"error": f"import {name} ended without a word ({last[:200]})"}
    return out


def machine_gpus() -> dict:
    """The NVIDIA GPUs of the machine, its driver and the newest CUDA the driver runs, from
    nvidia-smi (else the driver's /proc entries): no framework is asked."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
            summary = subprocess.run([smi], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            return {"found": [], "source": "nvidia-smi", "error": f"nvidia-smi did not answer ({e})"}
        if listing.returncode != 0:
            first = next((s.strip() for s in (listing.stdout + listing.stderr).splitlines() if s.strip()), f"exit status {listing.returncode}")
            return {"found": [], "source": "nvidia-smi", "error": f"nvidia-smi failed: {first[:200]}"}
        names = [re.sub(r"^GPU \d+: | \(UUID: .*\)$", "", s.strip()) for s in listing.stdout.splitlines() if s.startswith("GPU ")]
        driver = re.search(r"Driver Version:\s*(\S+)", summary.stdout)
        cuda = re.search(r"CUDA Version:\s*(\S+)", summary.stdout)
        return {"found": names, "source": "nvidia-smi", "driver": driver and driver.group(1), "cuda": cuda and cuda.group(1)}
    proc = Path("/proc/driver/nvidia/gpus")
    if proc.is_dir() and any(proc.iterdir()):
        names = []
        for gpu in sorted(proc.iterdir()):
            try:
                model = re.search(r"Model:\s*(.+)", (gpu / "information").read_text(errors="replace"))
            except OSError:  # no such file, or not readable: the bus id names it
                model = None
            names.append(model.group(1).strip() if model else gpu.name)
        return {"found": names, "source": "/proc/driver/nvidia/gpus", "driver": None, "cuda": None}
    return {"found": [], "source": None}


def found_datasets() -> dict[str, str | None]:
    """Each data set's folder holding both splits, where the project's commands look."""
    return {ds: next((str(d) for d in dataset_dirs(ds) if holds(ds, d, "train") and holds(ds, d, "test")), None) for ds in DATASETS}


def cuda_tag(driver_cuda: str | None) -> str:
    """The wheel tag of the CUDA builds to take for a driver: torch's and paddle's cu130 for a
    CUDA 13 driver, their cu126 for CUDA 12 (the driver runs builds of its major version)."""
    return "cu130" if driver_cuda and int(driver_cuda.split(".")[0]) >= 13 else "cu126"


def diagnose(report: Report) -> None:
    """The problems (each with its fix) and notes of a report."""
    pk, gpus = report.packages, report.gpus["found"]
    tag = cuda_tag(report.gpus.get("cuda"))

    def problem(text: str, fix: str) -> None:
        report.problems.append({"problem": text, "fix": fix})

    failed = {}  # error -> the first package that gave it
    for name in PACKAGES:
        info = pk[name]
        if info.get("error") in failed:  # paddle2onnx imports paddle, onnxscript onnx: one cause, one problem
            info["because"] = failed[info["error"]]
        elif info.get("error") and (info["installed"] or not info.get("missing")):
            failed[info["error"]] = name
            dist = (info["installed"] or [name])[0].split()[0]
            problem(f"import {name} fails: {info['error']}", f"reinstall it: pip install --force-reinstall --no-deps {dist}")
        elif info.get("error"):
            report.notes.append(f"{name} is not installed: needed for {WHAT_FOR[name]}")
    pairs = [(fw.import_name, fw.distributions) for fw in REGISTRY if len(fw.distributions) == 2] + [("onnxruntime", DISTRIBUTIONS["onnxruntime"])]
    for name, (cpu, gpu) in pairs:
        if len(pk[name]["installed"]) == 2:
            problem(f"{cpu} and {gpu} are both installed, and both provide `{name}` (the one installed last overwrote the other's files)",
                    f"pip uninstall -y {cpu} {gpu}, then install the one you want ({GUIDE})")  # fmt: skip
    for fw in REGISTRY:
        info = pk[fw.import_name]
        if gpus and info.get("version") and not info.get("cuda"):
            named = f" ({fw.distributions[0]})" if fw.distributions[0] != fw.import_name else ""
            fix = fw.gpu_install.format(base=info["version"].split("+")[0], tag=tag)
            problem(f"this machine has a GPU but {fw.name} {info['version']} is a CPU build{named}", f"{fix} ({GUIDE})")
    for fw in REGISTRY:
        name, info = fw.name, pk[fw.import_name]
        if gpus and info.get("cuda") and not info.get("gpus"):
            driver = f"the driver runs CUDA {report.gpus['cuda']} at most" if report.gpus.get("cuda") else "check the driver with nvidia-smi"
            problem(
                f"{name} {info['version']} is built for CUDA {info['cuda']} but sees no GPU ({driver})",
                f"install {name}'s build for the driver's CUDA ({tag}), or update the NVIDIA driver ({GUIDE})",
            )
    ort = pk["onnxruntime"]
    if "CUDAExecutionProvider" in ort.get("providers", []) and not ort.get("cuda_session"):
        why = ort.get("cuda_error") or "it fell back to the CPU"
        where = f"CUDA {ort.get('cuda') or '?'} and cuDNN 9 libraries" + (
            " (torch's CUDA wheels bring them; onnxruntime.preload_dlls loads them)" if ort.get("preload_dlls") else ""
        )
        fix = (
            f"give it {where}, or install the CPU package onnxruntime instead"
            if gpus
            else ("this machine has no GPU: pip uninstall -y onnxruntime-gpu && pip install onnxruntime")
        )
        problem(f"onnxruntime {ort.get('version')} lists CUDAExecutionProvider but cannot start it ({why})", f"{fix} ({GUIDE})")
    elif gpus and ort.get("version") and "CUDAExecutionProvider" not in ort.get("providers", []):
        report.notes.append(
            "onnxruntime runs exported files on the CPU only; for the GPU: pip uninstall -y onnxruntime && pip install onnxruntime-gpu (" + GUIDE + ")"
        )
    if report.datasets["mnist"] is None:
        looked = ", ".join(str(d) for d in dataset_dirs("mnist")[:3])
        lenet_data = "" if os.environ.get("LENET_DATA") else "; $LENET_DATA is not set"
        problem(
            f"no MNIST found (looked in {looked}, ...{lenet_data})",
            "set LENET_DATA to a folder holding mnist/, or let `python -m lenet_torch.train` download it",
        )


def collect() -> Report:
    """Everything the report says, its problems and notes included."""
    start = time.perf_counter()
    probed = probe_all()
    packages = {name: {"installed": installed(name), **probed[name]} for name in PACKAGES}
    report = Report(
        python={"version": platform.python_version(), "executable": sys.executable, "platform": f"{platform.system()} {platform.machine()}"},
        gpus=machine_gpus(), packages=packages, datasets=found_datasets(),
    )  # fmt: skip
    report.probe_s = time.perf_counter() - start
    diagnose(report)
    return report


def describe(name: str, info: dict) -> str:
    """One package's line of the report."""
    if info.get("because"):
        return f"BROKEN: it imports {info['because']}, which fails"
    if info.get("error"):
        return "not installed" if info.get("missing") and not info["installed"] else f"BROKEN: {info['error']}"
    dists = ", ".join(info["installed"]) or "not from pip"
    text = f"{info.get('version')} ({dists})"
    if name in (fw.import_name for fw in REGISTRY):
        build = f"CUDA {info['cuda']} build, cuDNN {info['cudnn']}" if info.get("cuda") else "CPU build"
        seen = f"sees {len(info['gpus'])} GPU{'s' * (len(info['gpus']) != 1)}" + (f": {info['gpus'][0]}" if info["gpus"] else "")
        text += f", {build}" + (f", {seen}" if info.get("cuda") else "")
    if name == "onnxruntime":
        text += (
            f", {'CUDA ' + info['cuda'] + ' build' if info.get('cuda') else 'CPU build'}; providers "
            f"{', '.join(p.removesuffix('ExecutionProvider') for p in info['providers'])}"
        )
        if "cuda_session" in info:
            text += f"; CUDA session {'starts' if info['cuda_session'] else 'FAILS'}"
    return text


def format_report(r: Report) -> str:
    """The report for people: a line a thing, then the notes, then each problem and its fix."""
    g = r.gpus
    if g["found"]:
        gpu = f"{len(g['found'])}: {g['found'][0]}" + (f" (+{len(g['found']) - 1} more)" if len(g["found"]) > 1 else "")
        gpu += (f"; driver {g['driver']}, runs CUDA up to {g['cuda']}" if g.get("driver") else "") + f" [{g['source']}]"
    else:
        gpu = g.get("error") or "none found (no nvidia-smi on PATH, no /proc/driver/nvidia/gpus)"
    lines = ["lenet-parity: what this machine has (python -m parity.check --env)",
             f"{'python':<12} {r.python['version']} ({r.python['executable']}, {r.python['platform']})", f"{'GPU':<12} {gpu}"]  # fmt: skip
    lines += [f"{name:<12} {describe(name, r.packages[name])}" for name in PACKAGES]
    lines += [f"{'data':<12} " + "; ".join(f"{ds} {folder or 'not found'}" for ds, folder in r.datasets.items())]
    lines += [f"note: {n}" for n in r.notes]
    lines += [f"PROBLEM: {p['problem']}\n  fix: {p['fix']}" for p in r.problems]
    lines.append(
        f"{len(r.problems)} problem{'s' * (len(r.problems) != 1)}" + (" found" if r.problems else "") + f"; every package imported in its own process "
        f"({r.probe_s:.1f} s)"
    )
    return "\n".join(lines)


def env_main(json_path: str | None = None, as_json: bool = False) -> int:
    """The report on stdout (JSON with `as_json`), and as JSON in `json_path` if given; 1 when a problem was found."""
    report = collect()
    text = json.dumps(asdict(report), indent=2) + "\n"
    if json_path:
        try:
            atomic_write(json_path, lambda tmp: Path(tmp).write_text(text))
        except OSError as e:  # a full disk: atomic_write's one line, the file as it was
            print(f"parity.check: error: {e}", file=sys.stderr)
            return 2
    print(text, end="") if as_json else print(format_report(report))
    return 1 if report.problems else 0
