"""A ported model as paddle code a person would write (python -m parity.port): one class named as the
source's, its layers held under the source's names, a forward of one line per op with the shapes as
comments, and `load(path=...)`, which returns the model with the ported weights in evaluation mode.
The file imports only paddle (and pickle, to read its weights as arrays only). Mirrors
lenet_torch/codegen.py: the same functions, framework words.
"""

from __future__ import annotations

import os

import numpy as np
import paddle

from lenet_spec.checkpoint import atomic_write
from lenet_spec.traced import Op, Plan, conv_args, pool_call_args

SUFFIX = ".pdparams"


def _pool_args(a: dict) -> str:
    args = [f"kernel_size={a['kernel']}"]
    if a["stride"] != a["kernel"]:
        args.append(f"stride={a['stride']}")
    if a["padding"]:
        args.append(f"padding={a['padding']}")
        args.append(f"exclusive={not a.get('count_include_pad', True)}")  # paddle's default excludes the padding; torch's includes it
    return ", ".join(args)


def module_expr(op: Op, helper: str) -> str:
    """The constructor of the layer that computes `op` (`helper`: the subsampling class's name)."""
    a, k = op.attrs, op.kind
    if k == "conv":
        return f"nn.Conv2D({conv_args(a)})"
    if k == "linear":
        return f"nn.Linear({a['in_features']}, {a['out_features']})"
    if k == "max_pool":
        return f"nn.MaxPool2D({_pool_args(a)})"
    if k == "avg_pool":
        return f"nn.AvgPool2D({_pool_args(a)})"
    if k in ("adaptive_max_pool", "adaptive_avg_pool"):
        return f"nn.Adaptive{'Max' if k == 'adaptive_max_pool' else 'Avg'}Pool2D({tuple(a['output_size'])})"
    if k == "batchnorm":
        # paddle's momentum is the running average's weight: 1 - torch's
        return f"nn.BatchNorm{'2' if len(op.in_shape) == 3 else '1'}D({a['features']}, momentum={1 - a['momentum']!r}, epsilon={a['eps']!r})"
    if k == "dropout":
        return f"nn.Dropout({a['p']!r})"
    if k == "flatten":
        return "nn.Flatten()"
    if k == "leaky_relu":
        return f"nn.LeakyReLU({a['slope']!r})"
    if k in ("log_softmax", "softmax"):
        return "LogSoftmax()" if k == "log_softmax" else "nn.Softmax(axis=1)"
    if k == "subsample":
        return f"{helper}({a['channels']}, {a['kernel']})"
    return {"relu": "nn.ReLU()", "sigmoid": "nn.Sigmoid()", "tanh": "nn.Tanh()"}[k]


def call_expr(op: Op, x: str) -> str:
    """`op` written as a function call on `x`."""
    a, k = op.attrs, op.kind
    if k == "max_pool":
        return f"F.max_pool2d({x}, {pool_call_args(a)})"
    if k == "avg_pool":
        return f"F.avg_pool2d({x}, {pool_call_args(a, 'exclusive', not a.get('count_include_pad', True))})"
    if k in ("adaptive_max_pool", "adaptive_avg_pool"):
        return f"F.{k}2d({x}, {tuple(a['output_size'])})"
    if k == "flatten":
        return f"paddle.flatten({x}, 1)"
    if k == "dropout":
        return f"F.dropout({x}, {a['p']!r}, training=self.training)"
    if k == "leaky_relu":
        return f"F.leaky_relu({x}, {a['slope']!r})"
    if k == "log_softmax":
        return f"{x} - paddle.logsumexp({x}, axis=1, keepdim=True)"  # F.log_softmax clips at -64 (paddle 3.3.1)
    if k == "softmax":
        return f"F.softmax({x}, axis=1)"
    return {"relu": f"F.relu({x})", "sigmoid": f"F.sigmoid({x})", "tanh": f"paddle.tanh({x})"}[k]


def helper_class(name: str, pooling: str, pool_attr: str) -> str:
    """The trainable subsampling layer, written as seed 004 writes it (an average pool, then a weight and a bias per map)."""
    total = f"self.{pool_attr}(x)" if pooling == "avg" else f"self.{pool_attr}(x) * (self.kernel * self.kernel)"
    return f'''class {name}(nn.Layer):
    """LeNet-5's trainable subsampling: per map, window {"mean" if pooling == "avg" else "sum"} * weight + bias."""

    def __init__(self, channels, kernel=2):
        super().__init__()
        self.kernel = kernel
        self.{pool_attr} = nn.AvgPool2D(kernel_size=kernel, stride=kernel)
        self.weight = self.create_parameter([channels])
        self.bias = self.create_parameter([channels], is_bias=True)

    def forward(self, x):
        x = {total}  # (N, C, H / kernel, W / kernel)
        return x * self.weight.reshape([1, -1, 1, 1]) + self.bias.reshape([1, -1, 1, 1])
'''


LOG_SOFTMAX = '''class LogSoftmax(nn.Layer):
    """log_softmax over the classes: paddle's F.log_softmax clips at -64 (paddle 3.3.1)."""

    def forward(self, x):
        return x - paddle.logsumexp(x, axis=1, keepdim=True)
'''


def extra_classes(module_kinds: set[str]) -> list[str]:
    """Classes the generated file defines for layers held as modules of these kinds."""
    return [LOG_SOFTMAX] if "log_softmax" in module_kinds else []


def imports(uses_functional: bool) -> list[str]:
    return ["import paddle", *(["import paddle.nn.functional as F"] if uses_functional else []), "from paddle import nn"]


def loader(class_name: str, weights: str) -> tuple[list[str], str]:
    """The imports `load` needs, and `load` itself: the weights are read as arrays only (numpy's
    array globals, nothing else), which is all paddle.save writes for a state dict."""
    return (
        ["import pickle", "from pathlib import Path"],
        f'''WEIGHTS = Path(__file__).with_name("{weights}")
# what paddle.save writes for a state dict of arrays; any other global is refused
ARRAY_GLOBALS = {{
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}}


class _Arrays(pickle.Unpickler):
    """Reads a paddle.save state dict as NumPy arrays: nothing in the file is run."""

    def find_class(self, module, name):
        if (module, name) not in ARRAY_GLOBALS:
            raise pickle.UnpicklingError(f"{{module}}.{{name}} is not an array")
        return super().find_class(module, name)


def load(path=WEIGHTS):
    """The model with the weights in `path` (default: WEIGHTS), in evaluation mode."""
    model = {class_name}()
    with open(path, "rb") as f:
        arrays = _Arrays(f).load()
    arrays.pop("StructuredToParameterName@@", None)
    model.set_state_dict({{k: paddle.to_tensor(v) for k, v in arrays.items()}})
    model.eval()
    return model
''',
    )


def base_class() -> str:
    return "nn.Layer"


def state(plan: Plan, dtype: str) -> dict[str, np.ndarray]:
    """The generated model's state dict as arrays, in paddle's layouts and names, `dtype` for floats."""
    renamed = {"running_mean": "_mean", "running_var": "_variance"}
    out = {}
    for step in plan.steps:
        op = step.op
        if not step.define or not op.params:
            continue
        for local, value in op.params.items():
            if op.kind == "linear" and local == "weight":
                value = value.T  # paddle's Linear holds (in, out)
            out[f"{step.attr}.{renamed.get(local, local)}"] = np.ascontiguousarray(value).astype(dtype)
    return out


def save(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """`arrays` as a paddle state dict file (paddle.save), written to a temporary file and renamed into place."""
    tensors = {k: paddle.to_tensor(np.ascontiguousarray(v)) for k, v in arrays.items()}
    atomic_write(path, lambda tmp: paddle.save(tensors, tmp))
