"""One package imported in an interpreter of its own and described in one JSON line on stdout:
lenet_spec.env runs this file's text with `python -c TEXT PACKAGE`, one process a package, so that a
package that raises, hangs or crashes while it is imported takes nothing else down.

The standard library only: nothing of the project is imported here.
"""

import contextlib
import importlib
import importlib.util
import json
import sys
import time

MARK = "lenet-parity-env "  # the line lenet_spec.env reads


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, value) -> bytes:
    """A protobuf field: an int as a varint, bytes length-delimited."""
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def relu_model() -> bytes:
    """The smallest ONNX file worth a session: y = Relu(x), x float (1, 4), opset 13, written
    field by field (onnx may not be installed where onnxruntime is)."""
    dims = b"".join(_field(1, _field(1, n)) for n in (1, 4))  # TensorShapeProto.dim.dim_value
    tensor = _field(1, _field(1, 1) + _field(2, dims))  # TypeProto.tensor_type: elem_type FLOAT, shape
    node = _field(1, b"x") + _field(2, b"y") + _field(4, b"Relu")
    graph = _field(1, node) + _field(2, b"probe") + _field(11, _field(1, b"x") + _field(2, tensor)) + _field(12, _field(1, b"y") + _field(2, tensor))
    return _field(1, 7) + _field(7, graph) + _field(8, _field(2, 13))  # ir_version 7, graph, opset_import


def onnxruntime_info(ort) -> dict:
    """The providers, and whether a CUDA session really starts: onnxruntime lists the CUDA
    provider of onnxruntime-gpu whatever the machine has, and falls back to the CPU without a
    word when the provider cannot start. First onnxruntime.preload_dlls, as export.runtime does."""
    from onnxruntime.capi import build_and_package_info

    out = {
        "cuda": getattr(build_and_package_info, "cuda_version", None) or None,
        "providers": ort.get_available_providers(),
        "preload_dlls": hasattr(ort, "preload_dlls"),
    }
    if "CUDAExecutionProvider" in out["providers"]:
        if out["preload_dlls"]:
            with contextlib.redirect_stdout(sys.stderr), contextlib.suppress(OSError, RuntimeError):
                ort.preload_dlls()
        try:
            sess = ort.InferenceSession(relu_model(), providers=["CUDAExecutionProvider"])
            out["cuda_session"] = sess.get_providers()[0] == "CUDAExecutionProvider"
        except Exception as e:  # onnxruntime's own error types
            out["cuda_session"], out["cuda_error"] = False, f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"
    return out


DETAILS = {"onnxruntime": onnxruntime_info}  # a framework's come from its package's env.py (main's `details`)


def load_details(path: str):
    """`info(module)` of the file at `path` (lenet_torch/env.py, say), loaded without its package."""
    spec = importlib.util.spec_from_file_location("lenet_framework_env", path)
    details = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(details)
    return details.info


def main(name: str, details: str | None = None) -> None:
    """Import `name` and print what it says; `details`: the path of a file whose `info(module)`
    asks it more (a framework's env.py)."""
    info: dict = {}
    start = time.perf_counter()
    try:
        module = importlib.import_module(name)
        info["import_s"] = time.perf_counter() - start
        info["version"] = str(getattr(module, "__version__", "") or "") or None
        info.update((load_details(details) if details else DETAILS.get(name, lambda m: {}))(module))
    except BaseException as e:  # a broken install raises anything; the report says what
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        info["error"] = f"{type(e).__name__}: {first[:200]}".rstrip(": ")
        info["missing"] = isinstance(e, ModuleNotFoundError) and getattr(e, "name", None) == name
    sys.stdout.flush()
    print(MARK + json.dumps(info), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
