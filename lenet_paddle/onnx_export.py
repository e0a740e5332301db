"""A paddle LeNet as ONNX bytes, by paddle2onnx (run in a child process by export._worker).

Mirrors lenet_torch/onnx_export.py: the same function, so export/ never spells a framework.
"""

from __future__ import annotations

import os
import sys
import tempfile

# Polygraphy (a paddle2onnx dependency) pip-installs what it lacks when this is "1", and
# paddle2onnx sets it so for its constant folding. This exporter never uses that path
# (optimize_tool="none"); the variable is pinned off anyway, before paddle2onnx is imported,
# and checked after the export.
os.environ["POLYGRAPHY_AUTOINSTALL_DEPS"] = "0"

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle2onnx  # noqa: E402

import lenet_spec  # noqa: E402

from .model import LeNet  # noqa: E402


def export_onnx(variant: lenet_spec.Variant, params: dict[str, np.ndarray], opset: int, input_name: str, output_name: str) -> bytes:
    """paddle.jit.save to a static program, then paddle2onnx at exactly `opset`: the serialized
    ModelProto, batch dynamic.

    Args:
        variant, params: the inference form (lenet_spec.deploy), params in the spec's layout, float32.
        opset: the ONNX opset to write (never upgraded by paddle2onnx).
        input_name, output_name: the graph's input and output names (paddle2onnx names the output
            itself; export.graph.clean renames it to `output_name`).
    """
    model = LeNet(variant, params)
    model.eval()
    c, h, w = variant.input.shape
    with tempfile.TemporaryDirectory() as d:
        prefix = os.path.join(d, "model")
        paddle.jit.save(model, prefix, input_spec=[paddle.static.InputSpec([None, c, h, w], "float32", input_name)])
        program = prefix + (".json" if os.path.exists(prefix + ".json") else ".pdmodel")
        try:
            raw = paddle2onnx.export(
                program, prefix + ".pdiparams", save_file=None, opset_version=opset, auto_upgrade_opset=False,
                enable_onnx_checker=True, enable_optimize=True, optimize_tool="none", verbose=False,
            )  # fmt: skip
        except NameError:  # paddle2onnx logged the failure, then returned a variable it never set
            raise RuntimeError("paddle2onnx failed (its log above says why)") from None
    if "polygraphy" in sys.modules or os.environ.get("POLYGRAPHY_AUTOINSTALL_DEPS") != "0":
        raise RuntimeError("paddle2onnx took its polygraphy path, which may pip-install packages; refusing its output")
    if not isinstance(raw, bytes) or not raw:
        raise RuntimeError("paddle2onnx returned no model")
    return raw
