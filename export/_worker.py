"""The framework's own exporter, run in a child process by export.exporter.

python -m export._worker FRAMEWORK PARAMS.npz OUT.onnx OPSET

PARAMS.npz holds the variant's name under `__variant__` and its parameters in the spec's
layout. The child builds the inference form (lenet_spec.deploy) in FRAMEWORK and writes the
exporter's raw ONNX bytes to OUT. Why a child: paddle2onnx aborts the whole process on an
operator it cannot convert (SIGABRT from C++, measured on the C3 scatter), and logs other
failures instead of raising them; the parent turns either into one line.
Exit status: 0 written; 1 failed, with the reason as the last stderr line starting "REASON: ".
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings

import numpy as np

import lenet_spec
from lenet_spec.deploy import inference_form

from .metadata import INPUT_NAME, OUTPUT_NAME

# Polygraphy (a paddle2onnx dependency) pip-installs what it lacks when this is "1", and
# paddle2onnx sets it so for its constant folding. This exporter never uses that path
# (optimize_tool="none"); the variable is pinned off anyway and checked after the export.
os.environ["POLYGRAPHY_AUTOINSTALL_DEPS"] = "0"


def torch_onnx(variant: lenet_spec.Variant, params: dict[str, np.ndarray], opset: int) -> bytes:
    """torch.onnx.export with the dynamo exporter.

    Chosen over the TorchScript exporter on evidence (torch 2.13, lenet5-1998): dynamo folds
    the parameter-only arithmetic and writes 39 nodes with Gemm for Linear; TorchScript keeps
    shape arithmetic and writes 126 even for the dense inference form (137 for the training
    form's scatter), and it is the deprecated path. Cost: about 5 s per export instead of 0.2 s.
    """
    import torch

    from lenet_torch.model import LeNet

    model = LeNet(variant, params).eval()
    c, h, w = variant.input.shape
    example = torch.rand(2, c, h, w)  # batch 2: a batch of 1 would let the exporter specialise on it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model, (example,), dynamo=True, opset_version=opset, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim("N")},), optimize=True, verbose=False,
        )  # fmt: skip
    return program.model_proto.SerializeToString()


def paddle_onnx(variant: lenet_spec.Variant, params: dict[str, np.ndarray], opset: int) -> bytes:
    """paddle.jit.save to a static program, then paddle2onnx at exactly `opset`."""
    import paddle
    import paddle2onnx

    from lenet_paddle.model import LeNet

    model = LeNet(variant, params)
    model.eval()
    c, h, w = variant.input.shape
    with tempfile.TemporaryDirectory() as d:
        prefix = os.path.join(d, "model")
        paddle.jit.save(model, prefix, input_spec=[paddle.static.InputSpec([None, c, h, w], "float32", INPUT_NAME)])
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


EXPORTERS = {"torch": torch_onnx, "paddle": paddle_onnx}


def main(argv: list[str] | None = None) -> int:
    framework, params_path, out, opset = argv if argv is not None else sys.argv[1:]
    try:
        with np.load(params_path) as f:
            params = {k: f[k] for k in f.files}
        variant = lenet_spec.get_variant(str(params.pop("__variant__")))
        variant, params = inference_form(variant, {k: v.astype(np.float32) for k, v in params.items()})
        raw = EXPORTERS[framework](variant, params, int(opset))
        with open(out, "wb") as f:
            f.write(raw)
    except Exception as e:
        print(f"REASON: {type(e).__name__}: {' '.join(str(e).split())[:300]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
