"""A user's torch model read as a chain of ops (lenet_spec.traced), for python -m parity.port.

torch.fx traces the model symbolically: every module of torch.nn is a leaf, and so is a user's own
module that owns parameters directly (seed 004's DownSample, whose forward loops over channels and
which is recognised as a whole: lenet_spec.traced.recognise_subsample). A float64 copy then runs the
traced graph once (torch.fx.Interpreter) on a random batch, so every op has its real input and
output shapes and values. Each node becomes an Op with the line of the user's code that made it
(the tracer's recorded stack); a node outside the vocabulary becomes an `unsupported` op, and a
forward that is not a chain (an op reading two tensors, a tensor read twice) a TraceError.
"""

from __future__ import annotations

import copy
import inspect
import operator
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from lenet_spec.traced import Op, Trace, TraceError, recognise_subsample

_ACTIVATION_MODULES = {nn.ReLU: "relu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.Identity: "identity"}
_ACTIVATION_FUNCTIONS = {
    F.relu: "relu", torch.relu: "relu", torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid", torch.tanh: "tanh", F.tanh: "tanh",
}  # fmt: skip
_ACTIVATION_METHODS = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh"}
_SHAPE_ONLY = {"size", "dim"}


class _Tracer(fx.Tracer):
    """torch.nn's modules are leaves (fx's rule), and so is every module owning parameters directly."""

    def __init__(self):
        super().__init__()
        self.record_stack_traces = True

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, nn.Sequential):
            return False
        return super().is_leaf_module(m, qualname) or any(True for _ in m.parameters(recurse=False))


class _Recorder(fx.Interpreter):
    def __init__(self, gm):
        super().__init__(gm)
        self.values = {}

    def run_node(self, n):
        out = super().run_node(n)
        self.values[n] = out
        return out


def _square(value, what: str) -> tuple[int | None, str]:
    """An int or a square pair as one int; else None and why."""
    if isinstance(value, int):
        return value, ""
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value) and value[0] == value[1]:
        return value[0], ""
    return None, f"{what} {value!r} is not square (the spec's layers are square)"


def _array(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy().copy()


def _where(node: fx.Node, source: str) -> str:
    """FILE:LINE of the user's code that made the node (the last frame of its stack that is not torch's)."""
    frames = re.findall(r'File "([^"]+)", line (\d+)', node.stack_trace or "")
    for file, line in reversed(frames):
        if "/torch/" not in file:
            return f"{Path(file).name}:{line}"
    return Path(source).name if source else ""


def _module_op(m: nn.Module, path: str, x: torch.Tensor, y: torch.Tensor) -> Op:
    """The op that module `m` is, from its attributes (and, for a user's module, its input and output)."""
    kind, attrs, params, why = "", {}, {}, ""
    if isinstance(m, nn.Conv2d):
        k, why_k = _square(m.kernel_size, "kernel_size")
        s, why_s = _square(m.stride, "stride")
        d, why_d = _square(m.dilation, "dilation")
        p, why_p = (None, f"padding {m.padding!r} (a string padding)") if isinstance(m.padding, str) else _square(m.padding, "padding")
        why = why_k or why_s or why_d or why_p
        if not why and m.groups != 1:
            why = f"groups={m.groups} (the spec's convolutions are dense or follow a connection table)"
        if not why and m.padding_mode != "zeros":
            why = f"padding_mode={m.padding_mode!r} (the spec pads with zeros)"
        if not why and m.bias is None:
            why = "bias=False (the spec's convolutions have a bias)"
        kind = "conv"
        attrs = dict(
            in_channels=m.in_channels, out_channels=m.out_channels, kernel=k, stride=s, padding=p, dilation=d, groups=m.groups, bias=m.bias is not None
        )
        params = {"weight": _array(m.weight)} | ({"bias": _array(m.bias)} if m.bias is not None else {})
    elif isinstance(m, nn.Linear):
        kind = "linear"
        attrs = dict(in_features=m.in_features, out_features=m.out_features, bias=m.bias is not None)
        params = {"weight": _array(m.weight)} | ({"bias": _array(m.bias)} if m.bias is not None else {})
        if m.bias is None:
            why = "bias=False (the spec's dense layers have a bias)"
    elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        k, why_k = _square(m.kernel_size, "kernel_size")
        s, why_s = _square(m.stride if m.stride is not None else m.kernel_size, "stride")
        p, why_p = _square(m.padding, "padding")
        why = why_k or why_s or why_p
        kind = "max_pool" if isinstance(m, nn.MaxPool2d) else "avg_pool"
        attrs = dict(kernel=k, stride=s, padding=p, ceil_mode=bool(m.ceil_mode))
        if kind == "max_pool":
            if not why:
                d, why = _square(m.dilation, "dilation")
                if d != 1 and not why:
                    why = f"dilation={m.dilation} (the spec's pools are not dilated)"
            if m.return_indices:
                why = why or "return_indices=True (the spec's pools return values)"
        else:
            attrs["count_include_pad"] = bool(m.count_include_pad)
            if m.divisor_override is not None:
                why = why or f"divisor_override={m.divisor_override} (the spec divides by the window)"
    elif isinstance(m, (nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d)):
        size = m.output_size if isinstance(m.output_size, (tuple, list)) else (m.output_size, m.output_size)
        kind = "adaptive_max_pool" if isinstance(m, nn.AdaptiveMaxPool2d) else "adaptive_avg_pool"
        attrs = dict(output_size=tuple(size))
        if any(v is None for v in size):
            why = f"output_size {m.output_size!r} keeps an input size (the spec fixes both)"
        elif getattr(m, "return_indices", False):
            why = "return_indices=True"
    elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        kind = "batchnorm"
        attrs = dict(features=m.num_features, eps=float(m.eps), momentum=m.momentum, affine=m.affine, track_running_stats=m.track_running_stats)
        if m.momentum is None:
            why = "momentum=None (a cumulative average; the spec's running statistics are exponential)"
        elif not m.affine or not m.track_running_stats:
            why = "affine=False or track_running_stats=False (the spec's BatchNorm has both)"
        else:
            params = {n: _array(getattr(m, n)) for n in ("weight", "bias", "running_mean", "running_var")}
    elif isinstance(m, nn.Dropout):
        kind, attrs = "dropout", dict(p=float(m.p))
    elif isinstance(m, nn.Flatten):
        kind = "flatten"
    elif type(m) in _ACTIVATION_MODULES:
        kind = _ACTIVATION_MODULES[type(m)]
    elif isinstance(m, nn.LeakyReLU):
        kind, attrs = "leaky_relu", dict(slope=float(m.negative_slope))
    elif isinstance(m, (nn.LogSoftmax, nn.Softmax)):
        kind, attrs = ("log_softmax" if isinstance(m, nn.LogSoftmax) else "softmax"), dict(dim=m.dim)
    else:
        own = dict(m.named_parameters(recurse=False))
        pools = [c for c in m.modules() if isinstance(c, nn.AvgPool2d)]
        if set(own) == {"weight", "bias"} and len(pools) == 1 and x.ndim == 4:
            k, _ = _square(pools[0].kernel_size, "kernel_size")
            s, _ = _square(pools[0].stride, "stride")
            pooling = recognise_subsample(_array(x), _array(y), _array(own["weight"]), _array(own["bias"]), k) if k and k == s else None
            if pooling:
                kind = "subsample"
                pool_attr = next((n for n, c in m.named_children() if c is pools[0]), "pool")
                attrs = dict(channels=int(x.shape[1]), kernel=k, pooling=pooling, pool_attr=pool_attr)
                params = {"weight": _array(own["weight"]), "bias": _array(own["bias"])}
        if not kind:
            kind, why = "unsupported", f"a module of its own ({type(m).__name__}) that the spec's vocabulary has no layer for"
    if why:
        kind, attrs, params = "unsupported", dict(reason=why), {}
    return Op(kind, path, type(m).__name__, attrs, params)


def _flatten_op(name: str, x: torch.Tensor, y: torch.Tensor) -> Op:
    if y.ndim == 2 and x.shape[0] == y.shape[0] and y.shape[1] == x[0].numel():
        return Op("flatten", "", name)
    return Op("unsupported", "", name, dict(reason=f"{name} to {tuple(y.shape)} from {tuple(x.shape)} is not a flatten to (N, -1)"))


def _function_op(node: fx.Node, fn, args, kwargs, x, y) -> Op:
    """The op a call_function or call_method node is."""
    name = fn if isinstance(fn, str) else getattr(fn, "__name__", str(fn))

    def arg(i, key, default=None):
        return args[i] if len(args) > i else kwargs.get(key, default)

    if not isinstance(fn, str) and fn in _ACTIVATION_FUNCTIONS:
        return Op(_ACTIVATION_FUNCTIONS[fn], "", name)
    if isinstance(fn, str) and fn in _ACTIVATION_METHODS:
        return Op(_ACTIVATION_METHODS[fn], "", name)
    if fn is F.leaky_relu:
        return Op("leaky_relu", "", name, dict(slope=float(arg(1, "negative_slope", 0.01))))
    if fn in (F.max_pool2d, F.avg_pool2d):
        k, why = _square(arg(1, "kernel_size"), "kernel_size")
        stride = arg(2, "stride") or arg(1, "kernel_size")
        s, why_s = _square(stride, "stride")
        p, why_p = _square(arg(3, "padding", 0), "padding")
        attrs = dict(kernel=k, stride=s, padding=p, ceil_mode=bool(arg(4 if fn is F.avg_pool2d else 5, "ceil_mode", False)))
        why = why or why_s or why_p
        if fn is F.avg_pool2d:
            attrs["count_include_pad"] = bool(arg(5, "count_include_pad", True))
            if arg(6, "divisor_override") is not None:
                why = why or "divisor_override (the spec divides by the window)"
        elif arg(4, "dilation", 1) not in (1, (1, 1)):
            why = why or "a dilated max pool"
        if why:
            return Op("unsupported", "", name, dict(reason=why))
        return Op("max_pool" if fn is F.max_pool2d else "avg_pool", "", name, attrs)
    if fn in (F.log_softmax, F.softmax, torch.log_softmax, torch.softmax) or fn in ("log_softmax", "softmax"):
        kind = "log_softmax" if "log" in name else "softmax"
        return Op(kind, "", name, dict(dim=arg(1, "dim")))
    if fn is torch.flatten or fn == "flatten":
        if arg(1, "start_dim", 0) != 1 or arg(2, "end_dim", -1) != -1:
            return Op("unsupported", "", name, dict(reason=f"{name}(start_dim={arg(1, 'start_dim', 0)}) is not a flatten to (N, -1)"))
        return _flatten_op(name, x, y)
    if fn in ("view", "reshape") or fn is torch.reshape:
        return _flatten_op(name, x, y)
    if fn is F.dropout:
        return Op("dropout", "", name, dict(p=float(arg(1, "p", 0.5)), functional=True))
    return Op("unsupported", "", name, dict(reason=f"{name} is not in the spec's vocabulary"))


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else ""


def _target_name(node: fx.Node) -> str:
    return node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))


def trace(model: nn.Module, input_shape: tuple[int, ...]) -> Trace:
    """The ops of `model`'s forward pass on (2, *input_shape), in call order.

    The model is not changed: a float64 copy in evaluation mode is traced and run.

    Raises:
        TraceError: fx cannot trace the forward (Python control flow on tensor values), its input is
            not one tensor, or it is not a chain of ops.
    """
    source = inspect.getsourcefile(type(model)) or ""
    work = copy.deepcopy(model).to(torch.float64).eval()
    try:
        graph = _Tracer().trace(work)
    except Exception as e:  # noqa: BLE001  (fx's errors on a user's forward are many kinds)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TraceError(
            f"torch.fx cannot trace {type(model).__name__}.forward: {first}; parity.port follows forwards without control flow on tensor values"
        ) from None
    gm = fx.GraphModule(work, graph)
    inputs = [n for n in graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise TraceError(f"{type(model).__name__}.forward takes {len(inputs)} inputs; parity.port ports models of one image tensor")
    x = torch.from_numpy(np.random.default_rng(0).random((2, *input_shape)))
    rec = _Recorder(gm)
    try:
        with torch.no_grad():
            rec.run(x)
    except Exception as e:  # noqa: BLE001  (the user's forward)
        raise TraceError(f"{type(model).__name__} on an input of shape {tuple(input_shape)} (--input) raised {type(e).__name__}: {_first_line(e)}") from None
    ops: list[Op] = []
    previous = inputs[0]
    readers: dict[fx.Node, int] = {}
    output_node = None
    for node in graph.nodes:
        value = rec.values.get(node)
        tensor_args = [a for a in node.all_input_nodes if a.op != "get_attr" and isinstance(rec.values.get(a), torch.Tensor)]
        if node.op == "output" or isinstance(value, torch.Tensor):
            for a in tensor_args:
                readers[a] = readers.get(a, 0) + 1
        if node.op == "output":
            output_node = node
            continue
        if node.op == "placeholder" or not isinstance(value, torch.Tensor):
            continue  # shapes and sizes: not ops
        if node.op == "get_attr":
            continue  # a parameter read in forward: the op that uses it is named
        where = _where(node, source)
        if tensor_args != [previous]:
            names = ", ".join(a.name for a in tensor_args) or "no tensor"
            raise TraceError(
                f"{type(model).__name__}.forward is not a chain of layers: {_target_name(node)} at {where} reads {names}; parity.port follows chains only"
            )
        xin = rec.values[previous]
        if node.op == "call_module":
            op = _module_op(gm.get_submodule(node.target), str(node.target), xin, value)
        else:
            fn = node.target
            if fn in (operator.getitem,) or fn in _SHAPE_ONLY:
                continue
            op = _function_op(node, fn, node.args, node.kwargs, xin, value)
        op.in_shape, op.out_shape, op.where = tuple(xin.shape[1:]), tuple(value.shape[1:]), where
        ops.append(op)
        previous = node
    out = output_node.args[0] if output_node is not None else None
    if not isinstance(out, fx.Node) or out is not previous:
        raise TraceError(
            f"{type(model).__name__}.forward does not return its last op's tensor (it returns {type(rec.values.get(out, out)).__name__}); "
            "port a model that returns one tensor"
        )
    shared = [n.name for n, count in readers.items() if count > 1 and isinstance(rec.values.get(n), torch.Tensor) and n.op != "placeholder"]
    if shared:
        raise TraceError(f"{type(model).__name__}.forward reads {shared[0]} twice: not a chain of layers; parity.port follows chains only")
    return Trace(type(model).__name__, source, tuple(input_shape), ops, tuple(rec.values[out].shape[1:]))
