"""A ported model as torch code a person would write (python -m parity.port): one class named as the
source's, its layers held under the source's names, a forward of one line per op with the shapes as
comments, and `load(path=...)`, which returns the model with the ported weights in evaluation mode.
The file imports only torch. Mirrors lenet_paddle/codegen.py: the same functions, framework words.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from lenet_spec.checkpoint import atomic_write
from lenet_spec.traced import Op, Plan, conv_args, pool_call_args

SUFFIX = ".pt"


def _pool_args(a: dict) -> str:
    args = [f"kernel_size={a['kernel']}"]
    if a["stride"] != a["kernel"]:
        args.append(f"stride={a['stride']}")
    if a["padding"]:
        args.append(f"padding={a['padding']}")
        if a.get("count_include_pad") is False:
            args.append("count_include_pad=False")
    return ", ".join(args)


def module_expr(op: Op, helper: str) -> str:
    """The constructor of the module that computes `op` (`helper`: the subsampling class's name)."""
    a, k = op.attrs, op.kind
    if k == "conv":
        return f"nn.Conv2d({conv_args(a)})"
    if k == "linear":
        return f"nn.Linear({a['in_features']}, {a['out_features']})"
    if k == "max_pool":
        return f"nn.MaxPool2d({_pool_args(a)})"
    if k == "avg_pool":
        return f"nn.AvgPool2d({_pool_args(a)})"
    if k in ("adaptive_max_pool", "adaptive_avg_pool"):
        return f"nn.Adaptive{'Max' if k == 'adaptive_max_pool' else 'Avg'}Pool2d({tuple(a['output_size'])})"
    if k == "batchnorm":
        return f"nn.BatchNorm{'2' if len(op.in_shape) == 3 else '1'}d({a['features']}, eps={a['eps']!r}, momentum={a['momentum']!r})"
    if k == "dropout":
        return f"nn.Dropout({a['p']!r})"
    if k == "flatten":
        return "nn.Flatten()"
    if k == "leaky_relu":
        return f"nn.LeakyReLU({a['slope']!r})"
    if k in ("log_softmax", "softmax"):
        return f"nn.{'LogSoftmax' if k == 'log_softmax' else 'Softmax'}(dim=1)"
    if k == "subsample":
        return f"{helper}({a['channels']}, {a['kernel']})"
    return {"relu": "nn.ReLU()", "sigmoid": "nn.Sigmoid()", "tanh": "nn.Tanh()"}[k]


def call_expr(op: Op, x: str) -> str:
    """`op` written as a function call on `x`."""
    a, k = op.attrs, op.kind
    if k == "max_pool":
        return f"F.max_pool2d({x}, {pool_call_args(a)})"
    if k == "avg_pool":
        return f"F.avg_pool2d({x}, {pool_call_args(a, 'count_include_pad', a.get('count_include_pad', True))})"
    if k in ("adaptive_max_pool", "adaptive_avg_pool"):
        return f"F.{k}2d({x}, {tuple(a['output_size'])})"
    if k == "flatten":
        return f"torch.flatten({x}, 1)"
    if k == "dropout":
        return f"F.dropout({x}, {a['p']!r}, self.training)"
    if k == "leaky_relu":
        return f"F.leaky_relu({x}, {a['slope']!r})"
    if k in ("log_softmax", "softmax"):
        return f"F.{k}({x}, dim=1)"
    return {"relu": f"F.relu({x})", "sigmoid": f"torch.sigmoid({x})", "tanh": f"torch.tanh({x})"}[k]


def helper_class(name: str, pooling: str, pool_attr: str) -> str:
    """The trainable subsampling module, written as seed 004 writes it (an average pool, then a weight and a bias per map)."""
    total = f"self.{pool_attr}(x)" if pooling == "avg" else f"self.{pool_attr}(x) * (self.kernel * self.kernel)"
    return f'''class {name}(nn.Module):
    """LeNet-5's trainable subsampling: per map, window {"mean" if pooling == "avg" else "sum"} * weight + bias."""

    def __init__(self, channels, kernel=2):
        super().__init__()
        self.kernel = kernel
        self.{pool_attr} = nn.AvgPool2d(kernel_size=kernel, stride=kernel)
        self.weight = nn.Parameter(torch.zeros(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        x = {total}  # (N, C, H / kernel, W / kernel)
        return x * self.weight.reshape([1, -1, 1, 1]) + self.bias.reshape([1, -1, 1, 1])
'''


def extra_classes(module_kinds: set[str]) -> list[str]:
    """Classes the generated file defines for layers held as modules of these kinds."""
    return []


def imports(uses_functional: bool) -> list[str]:
    return ["import torch", *(["import torch.nn.functional as F"] if uses_functional else []), "from torch import nn"]


def loader(class_name: str, weights: str) -> tuple[list[str], str]:
    """The imports `load` needs, and `load` itself."""
    return (
        ["from pathlib import Path"],
        f'''WEIGHTS = Path(__file__).with_name("{weights}")


def load(path=WEIGHTS):
    """The model with the weights in `path` (default: WEIGHTS), in evaluation mode."""
    model = {class_name}()
    model.load_state_dict(torch.load(path, weights_only=True))
    model.eval()
    return model
''',
    )


def base_class() -> str:
    return "nn.Module"


def state(plan: Plan, dtype: str) -> dict[str, np.ndarray]:
    """The generated model's state dict as arrays, in torch's layouts and names, `dtype` for floats."""
    out = {}
    for step in plan.steps:
        op = step.op
        if not step.define or not op.params:
            continue
        for local, value in op.params.items():
            out[f"{step.attr}.{local}"] = value.astype(dtype)
        if op.kind == "batchnorm":
            out[f"{step.attr}.num_batches_tracked"] = np.array(0, np.int64)
    return out


def save(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """`arrays` as a torch state dict file (torch.save), written to a temporary file and renamed into place."""
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
    atomic_write(path, lambda tmp: torch.save(tensors, tmp))
