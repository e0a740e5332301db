"""The framework's own exporter, run in a child process by export.exporter.

python -m export._worker FRAMEWORK PARAMS.npz OUT.onnx OPSET

PARAMS.npz holds the variant's name under `__variant__`, the network as spec-file text under
`__spec__` (lenet_spec.specfile: a network of one's own has no name to look up) and its
parameters in the spec's layout. The child builds the inference form (lenet_spec.deploy) and hands it to FRAMEWORK's
`onnx_export.export_onnx` (lenet_torch/onnx_export.py, lenet_paddle/onnx_export.py, found
through lenet_spec.frameworks), then writes the exporter's raw ONNX bytes to OUT. Why a child:
paddle2onnx aborts the whole process on an operator it cannot convert (SIGABRT from C++,
measured on the C3 scatter), and logs other failures instead of raising them; the parent turns
either into one line.
Exit status: 0 written; 1 failed, with the reason as the last stderr line starting "REASON: ".
"""

from __future__ import annotations

import sys

import numpy as np

import lenet_spec
from lenet_spec import specfile
from lenet_spec.deploy import inference_form
from lenet_spec.frameworks import module

from .metadata import INPUT_NAME, OUTPUT_NAME


def main(argv: list[str] | None = None) -> int:
    framework, params_path, out, opset = argv if argv is not None else sys.argv[1:]
    try:
        with np.load(params_path) as f:
            params = {k: f[k] for k in f.files}
        name, spec = str(params.pop("__variant__")), params.pop("__spec__", None)
        variant = specfile.loads(str(spec), params_path) if spec is not None else lenet_spec.get_variant(name)
        variant, params = inference_form(variant, {k: v.astype(np.float32) for k, v in params.items()})
        raw = module(framework, "onnx_export").export_onnx(variant, params, int(opset), INPUT_NAME, OUTPUT_NAME)
        with open(out, "wb") as f:
            f.write(raw)
    except Exception as e:
        print(f"REASON: {type(e).__name__}: {' '.join(str(e).split())[:300]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
