"""onnxruntime sessions for the exported files: CUDA when it is there, the CPU otherwise.

Imports onnxruntime, numpy and lenet_spec.cli (standard library) only: export.predict runs with nothing else.
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
import sys

import numpy as np

from lenet_spec.cli import no_gpu

from .metadata import BATCH, EXPORTED_OPS, INPUT_NAME, MAX_ATTRIBUTE_INT, MAX_INITIALIZER_VALUES, MAX_NODES, OUTPUT_NAME, MetadataError, ModelInfo

MAX_MODEL_BYTES = 64 * 2**20  # an ONNX file, read before it is checked: the largest export (lenet-caffe) is 1.7 MB

DEVICES = ("auto", "cpu", "gpu")


class RuntimeUnavailable(RuntimeError):
    pass


class NotAnExport(ValueError):
    """An ONNX file whose graph is not one the exporters write (checked before onnxruntime sees it)."""


# ONNX's protobuf field numbers (onnx/onnx.proto3), for the few messages the check reads. The
# wire format is read here because export.predict runs without the onnx package.
_MODEL_GRAPH, _MODEL_TRAINING, _MODEL_FUNCTIONS = 7, 20, 25
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_INPUT, _GRAPH_OUTPUT, _GRAPH_SPARSE = 1, 5, 11, 12, 15
_NODE_INPUT, _NODE_OP, _NODE_ATTRIBUTE, _NODE_DOMAIN = 1, 4, 5, 7
_ATTR_NAME, _ATTR_I, _ATTR_INTS = 1, 3, 8
_ATTR_NESTED = {5: "a tensor", 6: "a subgraph", 10: "tensors", 11: "subgraphs", 22: "a sparse tensor", 23: "sparse tensors"}
_TENSOR_DIMS, _TENSOR_TYPE, _TENSOR_INT64, _TENSOR_NAME, _TENSOR_RAW, _TENSOR_EXTERNAL, _TENSOR_LOCATION = 1, 2, 7, 8, 9, 13, 14
_INT64 = 7  # TensorProto.INT64


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("a damaged varint")
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if byte < 0x80:
            return value, i


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """A protobuf message's fields as (number, value): an int for varints, bytes for
    length-delimited ones (sub-messages, strings, packed lists); fixed-width fields skipped."""
    out, i = [], 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            length, i = _varint(buf, i)
            if i + length > len(buf):
                raise ValueError("a field runs past its message")
            value, i = buf[i : i + length], i + length
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
            continue
        else:
            raise ValueError(f"wire type {wire}")
        out.append((number, value))
    return out


def _ints(fields, number: int) -> list[int]:
    """A repeated int64 field, packed or not, as signed values."""
    values = []
    for n, v in fields:
        if n == number:
            if isinstance(v, int):
                values.append(v)
            else:
                i = 0
                while i < len(v):
                    x, i = _varint(v, i)
                    values.append(x)
    return [x - 2**64 if x >= 2**63 else x for x in values]


def _text(fields, number: int) -> str:
    return next((v.decode("utf-8", "replace")[:60] for n, v in fields if n == number and isinstance(v, bytes)), "")


def _graph_problem(data: bytes) -> str | None:
    """Why the serialized ModelProto is not a graph the exporters write, or None when it is one:
    only EXPORTED_OPS, no subgraphs or local functions, initializers inline and of bounded size,
    small integer attributes, Pad's pads a small constant, one input and one output."""
    model = _fields(data)
    numbers = {n for n, _ in model}
    if _MODEL_FUNCTIONS in numbers or _MODEL_TRAINING in numbers:
        return "it holds local functions or training graphs, which the exporters never write"
    graphs = [v for n, v in model if n == _MODEL_GRAPH]
    if len(graphs) != 1 or isinstance(graphs[0], int):
        return "it has no graph"
    graph = _fields(graphs[0])
    if any(n == _GRAPH_SPARSE for n, _ in graph):
        return "it holds sparse initializers, which the exporters never write"
    constants: dict[str, list[int] | None] = {}
    for n, v in graph:
        if n != _GRAPH_INITIALIZER:
            continue
        tensor = _fields(v)
        name, dims = _text(tensor, _TENSOR_NAME), _ints(tensor, _TENSOR_DIMS)
        if any(n in (_TENSOR_EXTERNAL, _TENSOR_LOCATION) and v for n, v in tensor):
            return f"initializer {name!r} is stored outside the file, which the exporters never do"
        if any(d < 0 for d in dims) or math.prod(dims) > MAX_INITIALIZER_VALUES:
            return f"initializer {name!r} has {math.prod(dims):,} values ({len(dims)} dimensions), more than the {MAX_INITIALIZER_VALUES:,} an export holds"
        int64 = _ints(tensor, _TENSOR_TYPE) == [_INT64]
        raw = next((v for n, v in tensor if n == _TENSOR_RAW), None)
        constants[name] = (np.frombuffer(raw, "<i8").tolist() if raw is not None and len(raw) % 8 == 0 else _ints(tensor, _TENSOR_INT64)) if int64 else None
    nodes = [_fields(v) for n, v in graph if n == _GRAPH_NODE]
    if len(nodes) > MAX_NODES:
        return f"it has {len(nodes):,} nodes, more than the {MAX_NODES:,} an export may have"
    for node in nodes:
        op, domain = _text(node, _NODE_OP), _text(node, _NODE_DOMAIN)
        if domain not in ("", "ai.onnx") or op not in EXPORTED_OPS:
            return f"it uses op {domain + '.' if domain else ''}{op or '(none)'}, which the exporters never write"
        for attribute in (_fields(v) for n, v in node if n == _NODE_ATTRIBUTE):
            name = _text(attribute, _ATTR_NAME)
            nested = next((what for n, _ in attribute if (what := _ATTR_NESTED.get(n))), None)
            if nested:
                return f"op {op}'s attribute {name!r} holds {nested}, which the exporters never write"
            if any(abs(x) > MAX_ATTRIBUTE_INT for x in _ints(attribute, _ATTR_I) + _ints(attribute, _ATTR_INTS)):
                return f"op {op}'s attribute {name!r} holds a value beyond +-{MAX_ATTRIBUTE_INT}, which the exporters never write"
        if op == "Pad":
            inputs = [v.decode("utf-8", "replace") for n, v in node if n == _NODE_INPUT]
            pads = constants.get(inputs[1]) if len(inputs) > 1 else None
            if pads is None or any(not 0 <= p <= MAX_ATTRIBUTE_INT for p in pads):
                return f"op Pad's pads are not a constant of 0 to {MAX_ATTRIBUTE_INT}, which the exporters never write"
    inputs, outputs = sum(n == _GRAPH_INPUT for n, _ in graph), sum(n == _GRAPH_OUTPUT for n, _ in graph)
    if (inputs, outputs) != (1, 1):
        return f"it has {inputs} inputs and {outputs} outputs; an export has one of each"
    return None


def read_model(path: str | os.PathLike) -> bytes:
    """An ONNX file's bytes, checked to be a graph the exporters write before onnxruntime sees it.

    Raises:
        NotAnExport: one line naming what the file holds that no export does.
        ValueError: one line, for a file that cannot be read, or too large.
    """
    try:
        with open(path, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ValueError(f"{path}: not a regular file")
            data = f.read(MAX_MODEL_BYTES + 1)
    except OSError as e:
        raise ValueError(f"{path}: cannot be read ({e.strerror or type(e).__name__})") from None
    if len(data) > MAX_MODEL_BYTES:
        raise ValueError(f"{path}: more than {MAX_MODEL_BYTES:,} bytes; an export of this project is under 2 MB")
    try:
        problem = _graph_problem(data)
    except (ValueError, IndexError, RecursionError) as e:
        problem = f"it is not a readable ONNX file ({str(e)[:100]})"
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
    (None: one per core). The file is checked by `read_model` first, and the session made from
    the bytes checked. Raises ValueError (one line) for a file that is not an export of this
    project (NotAnExport) or that onnxruntime cannot load."""
    import onnxruntime as ort

    data = read_model(path)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: a missing CUDA library is reported by provider_of, not as a log flood
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = threads
    chosen = providers(device)
    if "CUDAExecutionProvider" in chosen:
        preload_cuda_libraries(ort)
    try:
        sess = ort.InferenceSession(data, sess_options=options, providers=chosen)
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
