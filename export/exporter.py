"""Export a LeNet to ONNX with its own framework's exporter, clean it, stamp it, write it atomically.

The weights travel in the spec's layout (lenet_spec.mapping), so a checkpoint of either framework
can be exported by either; by default a checkpoint is exported by the framework that wrote it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import lenet_spec
from lenet_spec.checkpoint import SPEC_VERSION, CheckpointError, atomic_write
from lenet_spec import frameworks, specfile
from lenet_spec.variants import DATASET_CLASSES

from .metadata import ModelInfo

DEFAULT_OPSET = 18  # the dynamo exporter's own opset; paddle2onnx 2.1.0 writes it too
# A framework's exporter may have a floor (lenet_spec.frameworks: onnx_min_opset): torch's dynamo
# exporter writes opset 18 and up; asked for less it warns and writes 18, and onnx's version
# converter has no down-adapters for Pad/Mul from there (measured).
WORKER_TIMEOUT = 600  # seconds; a first paddle export compiles nothing, so minutes mean a hang


class ExportError(RuntimeError):
    """No valid ONNX file resulted; the message is one line saying why."""


@dataclass
class Source:
    """What to export: a variant's parameters in the spec's layout, and where they came from."""

    variant: str  # its name
    params: dict[str, np.ndarray]
    framework: str  # the framework that exports it
    origin: str  # "checkpoint PATH" or "seed S"
    checkpoint_sha256: str = ""
    seed: int | None = None
    dataset: str | None = None
    spec: lenet_spec.Variant | None = None  # the network; None: the built-in variant called `variant`

    @property
    def network(self) -> lenet_spec.Variant:
        """The network exported: `spec`, or the built-in variant of its name."""
        return self.spec or lenet_spec.get_variant(self.variant)


def from_checkpoint(
    path: str | os.PathLike, variant: str | lenet_spec.Variant | None = None, framework: str | None = None, expected_sha256: str | None = None
) -> Source:
    """A checkpoint of either framework (or a .safetensors file); exported by the framework whose
    layout it holds unless `framework` says otherwise.

    Args:
        expected_sha256: when given, the file must have this SHA-256 (checked on the bytes read,
            before they are decoded).
    Raises:
        CheckpointError: unreadable, unsafe, wrong variant or hash, mismatched keys (one line).
        lenet_spec.frameworks.FrameworkMissing: a .pt file without torch.
    """
    from lenet_spec.load import load_checkpoint
    from lenet_spec.mapping import MappingError, convert

    ckpt = load_checkpoint(path, variant, expected_sha256)
    try:
        params = convert(ckpt.state, ckpt.spec, ckpt.framework, "spec")
    except MappingError as e:
        raise CheckpointError(f"{path}: {e}") from None
    dataset = ckpt.meta.get("dataset")
    return Source(
        ckpt.variant,
        params,
        framework or ckpt.framework,
        f"checkpoint {path}",
        ckpt.sha256,
        dataset=dataset if isinstance(dataset, str) else None,
        spec=ckpt.spec,  # the network the checkpoint carries: no spec file needed
    )


def fresh(variant: str | lenet_spec.Variant, seed: int, framework: str) -> Source:
    """A freshly built model: the spec's initial weights for `seed` (`variant`: a built-in name or a Variant)."""
    network = lenet_spec.get_variant(variant)
    return Source(network.name, lenet_spec.init_params(network, seed), framework, f"seed {seed}", seed=seed, spec=network)


def framework_version(framework: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    for distribution in frameworks.get(framework).distributions:  # its CPU package, then a GPU one
        try:
            return version(distribution)
        except PackageNotFoundError:
            pass
    return "unknown"


def model_info(source: Source) -> ModelInfo:
    variant = source.network
    dataset = source.dataset or variant.dataset
    c, h, w = variant.input.shape
    classes = DATASET_CLASSES.get(dataset, variant.classes)
    return ModelInfo(source.variant, dataset, tuple(classes), c, h, w, source.framework, framework_version(source.framework), SPEC_VERSION,
                     source.origin, source.checkpoint_sha256, source.seed)  # fmt: skip


def _failure(proc: subprocess.CompletedProcess) -> str:
    """One line from a failed worker's output."""
    lines = [line.strip() for line in (proc.stdout + "\n" + proc.stderr).splitlines() if line.strip()]
    reasons = [line.removeprefix("REASON: ") for line in lines if line.startswith("REASON: ")]
    logged = [line for line in lines if "[ERROR]" in line or "Error:" in line]
    if proc.returncode < 0:
        try:
            sig = signal.Signals(-proc.returncode).name
        except ValueError:
            sig = f"signal {-proc.returncode}"
        return f"the exporter crashed ({sig})" + (f": {logged[0]}" if logged else "")
    return reasons[-1] if reasons else (logged[0] if logged else f"the exporter exited with status {proc.returncode}")


def run_exporter(source: Source, opset: int) -> bytes:
    """The framework exporter's raw ONNX bytes, from a child process (export/_worker.py says why)."""
    env = dict(os.environ, POLYGRAPHY_AUTOINSTALL_DEPS="0")
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with tempfile.TemporaryDirectory(prefix="lenet-export-") as d:
        params, raw = os.path.join(d, "params.npz"), os.path.join(d, "raw.onnx")
        np.savez(params, __variant__=np.array(source.variant), __spec__=np.array(specfile.dumps(source.network)), **source.params)
        try:
            proc = subprocess.run([sys.executable, "-m", "export._worker", source.framework, params, raw, str(opset)],
                                  capture_output=True, text=True, env=env, timeout=WORKER_TIMEOUT)  # fmt: skip
        except subprocess.TimeoutExpired:
            raise ExportError(f"{source.framework}'s exporter did not finish in {WORKER_TIMEOUT} s") from None
        if proc.returncode != 0 or not os.path.exists(raw):
            raise ExportError(f"{source.framework} export of {source.variant} failed: {_failure(proc)}")
        return Path(raw).read_bytes()


@dataclass
class Report:
    path: Path
    info: ModelInfo
    opset: int
    nodes: dict[str, int]
    size: int  # bytes
    seconds: float


def export(source: Source, out: str | os.PathLike, opset: int = DEFAULT_OPSET) -> Report:
    """Export `source` to `out` (written to a temporary file, then renamed).

    Raises:
        ExportError: no valid file resulted (one line); `out` is left as it was.
    """
    import onnx

    from .graph import GraphError, clean, node_counts

    start = time.perf_counter()
    floor = frameworks.get(source.framework).onnx_min_opset
    if floor is not None and opset < floor:
        others = " or ".join(f"--framework {name}" for name in frameworks.NAMES if frameworks.get(name).onnx_min_opset is None)
        raise ExportError(
            f"{source.framework}'s exporter writes opset {floor} and up, not {opset}; use --opset {floor} or "
            f"more" + (f", or export with {others}" if others else "")
        )
    info = model_info(source)
    raw = run_exporter(source, opset)
    try:
        model = clean(raw, info)
    except (GraphError, onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportError(f"{source.framework} export of {source.variant}: invalid ONNX: {' '.join(str(e).split())[:300]}") from None
    written = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if written != opset:
        raise ExportError(f"{source.framework} export of {source.variant}: asked for opset {opset}, the exporter wrote {written}")
    atomic_write(out, lambda tmp: onnx.save(model, tmp))
    return Report(Path(out), info, opset, node_counts(model), Path(out).stat().st_size, time.perf_counter() - start)


__all__ = ["CheckpointError", "DEFAULT_OPSET", "ExportError", "Report", "Source", "export", "fresh", "from_checkpoint"]
