"""onnxruntime sessions for the exported files: CUDA when it is there, the CPU otherwise.

Imports onnxruntime, numpy and lenet_spec.cli (standard library) only: export.predict runs with nothing else.
"""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np

from lenet_spec.cli import no_gpu

from .metadata import BATCH, INPUT_NAME, OUTPUT_NAME, MetadataError, ModelInfo

DEVICES = ("auto", "cpu", "gpu")


class RuntimeUnavailable(RuntimeError):
    pass


def cuda_build() -> str | None:
    """The CUDA version onnxruntime was built for ('12.x'), None for the CPU package."""
    from onnxruntime.capi import build_and_package_info

    return getattr(build_and_package_info, "cuda_version", None) or None


def providers(device: str = "auto") -> list[str]:
    """Execution providers for `device`: CUDA first when asked for or available, then the CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    cuda = "CUDAExecutionProvider" in available
    if device == "gpu" and not cuda:
        raise RuntimeUnavailable(no_gpu("onnxruntime", ort.__version__, None, f"onnxruntime {ort.__version__} has no CUDAExecutionProvider: it is the CPU package, not onnxruntime-gpu"))
    return ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda and device != "cpu" else ["CPUExecutionProvider"]


def preload_cuda_libraries(ort) -> None:
    """Have onnxruntime-gpu load the CUDA and cuDNN libraries from the nvidia-* wheels in
    site-packages (those torch's CUDA build installed) before its CUDA provider needs them:
    onnxruntime.preload_dlls, onnxruntime 1.21 and later. What it prints goes to stderr; a
    failure here shows when the session falls back to the CPU (`session` says so for --device gpu)."""
    if hasattr(ort, "preload_dlls"):
        with contextlib.redirect_stdout(sys.stderr), contextlib.suppress(OSError, RuntimeError):
            ort.preload_dlls()


def session(path: str | os.PathLike, device: str = "auto", threads: int | None = None):
    """An InferenceSession for `path`, all graph optimisations on, `threads` intra-op threads
    (None: one per core). Raises ValueError (one line) for a file onnxruntime cannot load."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: a missing CUDA library is reported by provider_of, not as a log flood
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = threads
    chosen = providers(device)
    if "CUDAExecutionProvider" in chosen:
        preload_cuda_libraries(ort)
    try:
        sess = ort.InferenceSession(str(path), sess_options=options, providers=chosen)
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/... types
        first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise ValueError(f"{path}: onnxruntime cannot load it ({first[:200]})") from None
    if device == "gpu" and provider_of(sess) != "CUDAExecutionProvider":  # onnxruntime falls back to the CPU without a word
        why = f"onnxruntime {ort.__version__} lists CUDAExecutionProvider but could not start it: no GPU, or the CUDA and cuDNN libraries it needs are not found"
        raise RuntimeUnavailable(no_gpu("onnxruntime", ort.__version__, cuda_build(), why))
    return sess


def provider_of(sess) -> str:
    """The provider that runs the graph (the first one the session really registered)."""
    return sess.get_providers()[0]


MAX_SIDE = 256  # pixels, an input's height or width: LeNets take 28 or 32; more is a damaged or hostile file (verify's 512 random 3x256x256 images are 400 MB)


def _concrete(dim) -> bool:
    return isinstance(dim, int) and not isinstance(dim, bool) and dim > 0


def info_of(sess, where: str) -> ModelInfo:
    """The file's lenet-parity metadata, checked against the graph it describes.

    The input's channels, height and width and the number of classes are taken from the graph
    (input [N, C, H, W], output [N, classes]) and must agree with the metadata.
    Raises:
        MetadataError: one line, when the file has no metadata, another interface, sizes that are
            not concrete or out of range, or metadata that disagrees with the graph.
    """
    info = ModelInfo.from_props(dict(sess.get_modelmeta().custom_metadata_map), where)
    inputs, outputs = sess.get_inputs(), sess.get_outputs()
    if [i.name for i in inputs] != [INPUT_NAME] or [o.name for o in outputs] != [OUTPUT_NAME]:
        raise MetadataError(f"{where}: expected input {INPUT_NAME!r} and output {OUTPUT_NAME!r}, found {[i.name for i in inputs]} and {[o.name for o in outputs]}")
    shape, out = list(inputs[0].shape), list(outputs[0].shape)  # e.g. ['N', 1, 28, 28] and ['N', 10]
    if len(shape) != 4 or not all(_concrete(d) for d in shape[1:]) or _concrete(shape[0]):
        raise MetadataError(f"{where}: the graph's input {INPUT_NAME!r} has shape {shape}; expected [{BATCH}, channels, height, width]: any batch, fixed sizes")
    if len(out) != 2 or not _concrete(out[1]):
        raise MetadataError(f"{where}: the graph's output {OUTPUT_NAME!r} has shape {out}; expected [{BATCH}, classes] with a fixed number of classes")
    channels, height, width = shape[1:]
    if channels not in (1, 3) or not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE) or out[1] < 2:
        raise MetadataError(f"{where}: the graph takes {shape} and gives {out}; expected 1 or 3 channels, sides of 1 to {MAX_SIDE} pixels, 2 classes or more")
    if (info.channels, info.height, info.width) != (channels, height, width) or len(info.classes) != out[1]:
        raise MetadataError(
            f"{where}: metadata says input [{BATCH}, {info.channels}, {info.height}, {info.width}] and {len(info.classes)} classes, "
            f"but the graph takes {shape} and gives {out}; export it again"
        )
    return info


def run(sess, images: np.ndarray) -> np.ndarray:
    """Logits (N, classes) for float32 images (N, C, H, W) in [0, 1]."""
    return sess.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(images, dtype=np.float32)})[0]
