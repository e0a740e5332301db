"""onnxruntime sessions for the exported files: CUDA when it is there, the CPU otherwise.

Imports onnxruntime, onnx (to check a graph before onnxruntime sees it), numpy, lenet_spec.cli
(standard library) and lenet_spec.checkpoint (NumPy: to name a checkpoint given for a model)
only: export.predict runs with nothing else.
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
import sys
from pathlib import Path

import numpy as np

from lenet_spec.cli import no_gpu

from .metadata import (
    BATCH,
    EXPORTED_OPS,
    INPUT_NAME,
    MAX_ATTRIBUTE_INT,
    MAX_INITIALIZER_VALUES,
    MAX_NODES,
    MAX_TOTAL_PER_IMAGE,
    MAX_VALUES_PER_IMAGE,
    OUTPUT_NAME,
    MetadataError,
    ModelInfo,
)

MAX_MODEL_BYTES = 64 * 2**20  # an ONNX file, read before it is checked: the largest export (lenet-caffe) is 1.7 MB

DEVICES = ("auto", "cpu", "gpu")


class RuntimeUnavailable(RuntimeError):
    pass


class NotAnExport(MetadataError):
    """An ONNX file whose graph is not one the exporters write (checked before onnxruntime sees it)."""


MAX_RUN_BATCH = 1024  # images in one onnxruntime call (`run` splits more): the graph's shapes are checked at this batch


def _shapes_problem(model, onnx) -> str | None:
    """Why the graph's tensors could be larger than an export's, worked out by onnx's shape
    inference with the batch at MAX_RUN_BATCH (shapes grow with the batch, never shrink: checked
    at the most a call carries, they bound every call); None when every tensor's shape is known
    and within MAX_VALUES_PER_IMAGE, and all of them together within MAX_TOTAL_PER_IMAGE, per image."""
    graph = model.graph
    dims = graph.input[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else d.dim_param[:20] or "?" for d in dims]
    if len(dims) != 4 or dims[0].HasField("dim_value") or not all(d.HasField("dim_value") for d in dims[1:]):
        return f"the graph's input {INPUT_NAME!r} has shape {shape}; expected [{BATCH}, channels, height, width]: any batch, fixed sizes"
    batch = dims[0]
    batch.Clear()
    batch.dim_value = MAX_RUN_BATCH
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as e:  # onnx raises InferenceError, ValidationError...
        return f"its shapes cannot be worked out ({' '.join(str(e).split())[:120]})"
    total = 0
    for value in [*inferred.graph.value_info, *inferred.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if not value.type.tensor_type.HasField("shape") or not all(d.HasField("dim_value") and d.dim_value >= 0 for d in dims):
            return f"the shape of {value.name[:60]!r} is not fixed by its input's, as in every export"
        size = math.prod(d.dim_value for d in dims)
        if size > MAX_VALUES_PER_IMAGE * MAX_RUN_BATCH:
            return f"{value.name[:60]!r} holds {size / MAX_RUN_BATCH:,.0f} values per image, more than the {MAX_VALUES_PER_IMAGE:,} of any export's tensor"
        total += size
    if total > MAX_TOTAL_PER_IMAGE * MAX_RUN_BATCH:
        return f"its tensors hold {total / MAX_RUN_BATCH:,.0f} values per image, more than the {MAX_TOTAL_PER_IMAGE:,} of any export"
    return None


def _graph_problem(data: bytes) -> str | None:
    """Why the serialized ModelProto is not a graph the exporters write, or None when it is one:
    only EXPORTED_OPS, no subgraphs or local functions, initializers inline and of bounded size,
    small integer attributes, Pad's pads a small constant, one input and one output, and every
    tensor's shape fixed and bounded (`_shapes_problem`: two initializers that broadcast, say)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as e:  # protobuf's DecodeError
        raise ValueError(f"not a readable ONNX file ({str(e)[:100]})") from None
    graph = model.graph
    if model.functions or model.training_info:
        return "it holds local functions or training graphs, which the exporters never write"
    if not model.HasField("graph"):
        return "it has no graph"
    if graph.sparse_initializer:
        return "it holds sparse initializers, which the exporters never write"
    constants = {}
    for tensor in graph.initializer:
        name = tensor.name[:60]
        if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
            return f"initializer {name!r} is stored outside the file, which the exporters never do"
        dims = list(tensor.dims)
        if any(d < 0 for d in dims) or math.prod(dims) > MAX_INITIALIZER_VALUES:
            return f"initializer {name!r} has {math.prod(dims):,} values ({len(dims)} dimensions), more than the {MAX_INITIALIZER_VALUES:,} an export holds"
        if tensor.data_type == onnx.TensorProto.INT64:
            constants[tensor.name] = numpy_helper.to_array(tensor).ravel().tolist()
    if len(graph.node) > MAX_NODES:
        return f"it has {len(graph.node):,} nodes, more than the {MAX_NODES:,} an export may have"
    nested = {
        onnx.AttributeProto.TENSOR: "a tensor",
        onnx.AttributeProto.GRAPH: "a subgraph",
        onnx.AttributeProto.TENSORS: "tensors",
        onnx.AttributeProto.GRAPHS: "subgraphs",
        onnx.AttributeProto.SPARSE_TENSOR: "a sparse tensor",
        onnx.AttributeProto.SPARSE_TENSORS: "sparse tensors",
    }
    for node in graph.node:
        op, domain = node.op_type[:60], node.domain[:60]
        if domain not in ("", "ai.onnx") or op not in EXPORTED_OPS:
            return f"it uses op {domain + '.' if domain else ''}{op or '(none)'}, which the exporters never write"
        for attribute in node.attribute:
            name = attribute.name[:60]
            if attribute.type in nested or attribute.HasField("t") or attribute.HasField("g") or attribute.graphs or attribute.tensors:
                return f"op {op}'s attribute {name!r} holds {nested.get(attribute.type, 'a tensor or subgraph')}, which the exporters never write"
            if any(abs(x) > MAX_ATTRIBUTE_INT for x in [attribute.i, *attribute.ints]):
                return f"op {op}'s attribute {name!r} holds a value beyond +-{MAX_ATTRIBUTE_INT}, which the exporters never write"
        if op == "Pad":
            pads = constants.get(node.input[1]) if len(node.input) > 1 else None
            if pads is None or any(not 0 <= p <= MAX_ATTRIBUTE_INT for p in pads):
                return f"op Pad's pads are not a constant of 0 to {MAX_ATTRIBUTE_INT}, which the exporters never write"
    if (len(graph.input), len(graph.output)) != (1, 1):
        return f"it has {len(graph.input)} inputs and {len(graph.output)} outputs; an export has one of each"
    return _shapes_problem(model, onnx)


def _checkpoint_problem(path: str | os.PathLike, data: bytes) -> str | None:
    """The line for a checkpoint given where an ONNX file is wanted (its first bytes say so,
    lenet_spec.checkpoint.sniff, or its suffix: .pt, .pdparams, .safetensors), naming the
    command that exports it; None for any other file. Protobuf's own complaint names neither."""
    from lenet_spec.checkpoint import DESCRIPTIONS, FORMATS, SUFFIXES, sniff

    path = Path(path)
    found = sniff(data) or FORMATS.get(path.suffix)
    if found is None:
        return None
    ckpt = path if path.suffix in FORMATS else path.with_suffix(SUFFIXES[found])
    how = f"export it first: python -m export {ckpt} --out {ckpt.with_suffix('.onnx')}"
    return f"{path} holds {DESCRIPTIONS[found]}, not an ONNX file; " + (how if ckpt == path else f"rename it to {ckpt} and {how}")


def read_model(path: str | os.PathLike) -> bytes:
    """An ONNX file's bytes, checked to be a graph the exporters write before onnxruntime sees it.

    Raises:
        NotAnExport: one line naming what the file holds that no export does (a checkpoint:
            the command that exports it).
        ValueError: one line, for a file that cannot be read, or too large.
    """
    try:
        with open(path, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ValueError(f"{path}: not a regular file")
            data = f.read(MAX_MODEL_BYTES + 1)
    except OSError as e:
        raise ValueError(f"{path}: cannot be read ({e.strerror or type(e).__name__})") from None
    if problem := _checkpoint_problem(path, data):
        raise NotAnExport(problem)
    if len(data) > MAX_MODEL_BYTES:
        raise ValueError(f"{path}: more than {MAX_MODEL_BYTES:,} bytes; an export of this project is under 2 MB")
    try:
        problem = _graph_problem(data)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"{path}: cannot load it: {str(e)[:160]}; export the model with `python -m export`") from None
    if problem:
        raise NotAnExport(f"{path}: not an export of this project: {problem}; export the model with `python -m export`")
    return data


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
        raise RuntimeUnavailable(
            no_gpu(
                "onnxruntime", ort.__version__, None, f"onnxruntime {ort.__version__} has no CUDAExecutionProvider: it is the CPU package, not onnxruntime-gpu"
            )
        )
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
    (None: one per core). The file is checked by `read_model` first, and the session made from
    the bytes checked. Raises ValueError (one line) for a file that is not an export of this
    project (NotAnExport) or that onnxruntime cannot load."""
    import onnxruntime as ort

    chosen = providers(device)  # no CUDA provider under --device gpu: that line first, whatever the file
    data = read_model(path)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: a missing CUDA library is reported by provider_of, not as a log flood
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = threads
    if "CUDAExecutionProvider" in chosen:
        preload_cuda_libraries(ort)
    try:
        sess = ort.InferenceSession(data, sess_options=options, providers=chosen)
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/... types
        first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise ValueError(f"{path}: onnxruntime cannot load it ({first[:200]})") from None
    if device == "gpu" and provider_of(sess) != "CUDAExecutionProvider":  # onnxruntime falls back to the CPU without a word
        why = (
            f"onnxruntime {ort.__version__} lists CUDAExecutionProvider but could not start it: no GPU, or the CUDA and cuDNN libraries it needs are not found"
        )
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
        raise MetadataError(
            f"{where}: expected input {INPUT_NAME!r} and output {OUTPUT_NAME!r}, found {[i.name for i in inputs]} and {[o.name for o in outputs]}"
        )
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
    """Logits (N, classes) for float32 images (N, C, H, W) in [0, 1], at most MAX_RUN_BATCH
    images a call: the batch the graph's shapes were checked at (`read_model`)."""
    calls = [
        sess.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(images[i : i + MAX_RUN_BATCH], dtype=np.float32)})[0]
        for i in range(0, max(len(images), 1), MAX_RUN_BATCH)
    ]
    return calls[0] if len(calls) == 1 else np.concatenate(calls)
