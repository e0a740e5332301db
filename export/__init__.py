"""ONNX from either framework, verified with onnxruntime, and prediction from ONNX alone.

- `python -m export CKPT --out model.onnx`: export (export/exporter.py, the framework's own
  exporter in a child process, then export/graph.py's clean-up and metadata).
- `python -m export.verify model.onnx`: onnxruntime against the framework model.
- `python -m export.predict model.onnx IMAGE...`: deployment; imports only onnxruntime, numpy
  and Pillow, so this package's __init__ imports nothing but lenet_spec (NumPy only).
"""

import lenet_spec  # noqa: F401  (a Ctrl-C while the command starts ends in one line: lenet_spec.cli.interrupts_quietly)
